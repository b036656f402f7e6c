import importlib
import shutil

import numpy as np
import pytest

from pipeline.core.errors import IntakeError
from pipeline.intake import load_model
from pipeline.intake.card import card_path, read_card
from pipeline.zoo import ZOO
from pipeline.zoo.materialize import materialize, read_index, shipped_model
from pipeline.zoo.reproduce import reproduce

TRAINED = [(name, framework) for name, entry in ZOO.items() if entry.pretrained is None for framework in entry.builders]
SUFFIX = {"keras": "keras", "torch": "pt2"}
shipping = importlib.import_module("pipeline.zoo.materialize")  # the module, whose weights folder a test moves


def test_every_trained_zoo_model_ships_hashed_weights_and_a_card_saying_how_it_was_trained():
    assert sorted(read_index()) == sorted(f"{name}-{framework}.{SUFFIX[framework]}" for name, framework in TRAINED)
    for name, framework in TRAINED:
        entry, card = ZOO.get(name), read_card(shipped_model(name, framework))
        assert (card.name, card.dataset) == (name, entry.dataset)
        assert card.seed == card.training["seed"] == entry.train_config.seed
        assert card.training["epochs"] == entry.train_config.epochs
        assert card.training["test_accuracy"] >= entry.min_test_accuracy
        assert {"python", "numpy", "tensorflow" if framework == "keras" else "torch"} <= set(card.training["versions"])


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_materialize_copies_the_shipped_model_that_its_card_describes(tmp_path, framework):
    made = materialize("digits-cnn", framework, tmp_path / f"digits.{SUFFIX[framework]}")
    shipped = shipped_model("digits-cnn", framework)
    assert made.origin == "shipped" and made.seconds < 5
    assert made.path.read_bytes() == shipped.read_bytes()
    assert card_path(made.path).read_text() == card_path(shipped).read_text()
    bundle = load_model(str(made.path))
    accuracy = np.mean(np.argmax(bundle.predict(bundle.eval_data), axis=-1) == bundle.eval_data.y)
    assert accuracy == pytest.approx(made.test_accuracy, abs=1e-6)
    assert "Copied the shipped weights of digits-cnn" in made.describe()


def test_a_shipped_file_that_does_not_match_the_index_is_refused(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    shutil.copytree(shipping.WEIGHTS_DIR, weights)
    monkeypatch.setattr(shipping, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(shipping, "INDEX", weights / "index.json")
    damaged = weights / "digits-cnn-torch.pt2"
    damaged.write_bytes(damaged.read_bytes()[:-1])
    with pytest.raises(IntakeError, match="digits-cnn-torch.pt2 does not match"):
        materialize("digits-cnn", "torch", tmp_path / "m.pt2")
    assert not (tmp_path / "m.pt2").exists()


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_pipeline_train_reproduces_the_shipped_digits_cnn(tmp_path, framework):
    result = reproduce("digits-cnn", framework, tmp_path / f"digits.{SUFFIX[framework]}")
    assert result.matches(max_accuracy_gap=0.01, min_agreement=0.97), result.describe()
    assert read_card(tmp_path / f"digits.{SUFFIX[framework]}").training["command"].startswith("pipeline train digits-cnn")
