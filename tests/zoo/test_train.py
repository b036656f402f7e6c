import json

import pytest

from pipeline.errors import ConfigError, UnknownNameError
from pipeline.intake.card import card_path
from pipeline.zoo import ZOO
from pipeline.zoo.train import train_zoo_model


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_reference_cnn_reaches_zoo_accuracy_and_writes_a_card(model_paths, framework):
    card = json.loads(card_path(model_paths[framework]).read_text())
    assert card["dataset"] == "digits"
    assert card["training"]["test_accuracy"] >= ZOO.get("digits-cnn").min_test_accuracy


def test_both_frameworks_build_the_same_architecture():
    import numpy as np

    entry = ZOO.get("digits-cnn")
    keras_params = entry.builders["keras"]().count_params()
    torch_params = sum(int(np.prod(p.shape)) for p in entry.builders["torch"]().parameters())
    assert keras_params == torch_params == 38282


def test_unknown_zoo_model_suggests_the_closest(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean 'digits-cnn'"):
        train_zoo_model("digit-cnn", "torch", tmp_path / "m.pt2")


def test_wrong_extension_for_framework_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\.pt2"):
        train_zoo_model("digits-cnn", "torch", tmp_path / "m.keras")
    assert not list(tmp_path.iterdir())


def test_mobilenet_class_model_is_the_same_in_both_frameworks():
    import numpy as np
    import torch

    from pipeline.zoo import mobilenet_v2

    keras_model = mobilenet_v2.build_keras()
    torch_model = mobilenet_v2.build_torch().eval()
    keras_params = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    torch_params = sum(p.numel() for p in torch_model.parameters())
    assert keras_params == torch_params == 86664
    assert keras_model.output_shape == (None, 8)
    assert tuple(torch_model(torch.zeros(2, 3, 64, 64)).shape) == (2, 8)
