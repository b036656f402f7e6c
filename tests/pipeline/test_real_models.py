"""Models that are not the zoo's shape, end to end: a text encoder with token ids and a mask, a ViT-like logits
classifier, a two-headed model, and an artifact that outputs NaN."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.cli import EXIT_USER_ERROR, EXIT_VALIDATION_FAILED, main

SEQ = 16
VOCAB = 100


def _text_encoder():
    import torch

    class TextEncoder(torch.nn.Module):
        """Token ids + attention mask -> masked mean of contextual embeddings, L2-normalized."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, 32)
            self.mix = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 32))
            self.norm = torch.nn.LayerNorm(32)

        def forward(self, input_ids, attention_mask):
            hidden = self.norm(self.embed(input_ids) + self.mix(self.embed(input_ids)))
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return torch.nn.functional.normalize(pooled, dim=-1)

    torch.manual_seed(0)
    return TextEncoder().eval()


def _token_data(count: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, size=(count, SEQ)).astype(np.int64)
    lengths = rng.integers(4, SEQ + 1, size=count)
    mask = (np.arange(SEQ)[None] < lengths[:, None]).astype(np.int64)
    return {"input_ids": ids * mask, "attention_mask": mask}


@pytest.fixture(scope="module")
def text_encoder_files(tmp_path_factory):
    """The text encoder as a `.pt2` (two int64 inputs), with evaluation and calibration `.npz` files."""
    import torch

    folder = tmp_path_factory.mktemp("text-encoder")
    model = _text_encoder()
    example = tuple(torch.from_numpy(a[:1]) for a in _token_data(1, 0).values())
    torch.export.save(torch.export.export(model, example), folder / "encoder.pt2")
    np.savez(folder / "eval.npz", **_token_data(64, 1))
    np.savez(folder / "calibration.npz", **_token_data(64, 2))
    return folder


@pytest.mark.parametrize("target, mode", [("executorch", "dynamic-int8"), ("tflite", "none")])
def test_a_text_encoder_with_token_ids_and_a_mask_exports_and_is_judged_as_an_embedding(
        text_encoder_files, tmp_path, target, mode, capsys):
    folder = text_encoder_files
    out = tmp_path / "artifact"
    code = main(["export", str(folder / "encoder.pt2"), "--target", target, "--quantize", mode,
                 "--eval-data", str(folder / "eval.npz"), "--calibration", str(folder / "calibration.npz"),
                 "--out", str(out), "--json"])
    manifest = json.loads(capsys.readouterr().out)
    assert code == 0, manifest["validation"]
    assert [s["name"] for s in manifest["input_signature"]] == ["input_ids", "attention_mask"]
    assert {s["dtype"] for s in manifest["input_signature"]} == {"int64"}
    validation = manifest["validation"]
    assert validation["task"] == "embedding" and validation["passed"]
    assert validation["headline"]["metric"] == "cosine_mean" and validation["headline"]["value"] > 0.99
    with np.load(out / "eval.npz") as data:
        assert set(data.files) == {"input_ids", "attention_mask"}


def test_data_that_does_not_match_the_inputs_is_refused_before_any_work(text_encoder_files, tmp_path, capsys):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((4, SEQ), np.float32))
    code = main(["export", str(text_encoder_files / "encoder.pt2"), "--target", "executorch",
                 "--eval-data", str(wrong), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert "input_ids: [1,16] int64; attention_mask: [1,16] int64" in err
    assert not (tmp_path / "out").exists()


def test_an_unknown_tolerance_name_lists_the_valid_ones(text_encoder_files, tmp_path, capsys):
    code = main(["export", str(text_encoder_files / "encoder.pt2"), "--target", "executorch",
                 "--eval-data", str(text_encoder_files / "eval.npz"), "--tolerance", "min_cosine=0.9",
                 "--out", str(tmp_path / "out")])
    assert code == EXIT_USER_ERROR
    assert "min_cosine_mean" in capsys.readouterr().err


def _vit():
    import torch

    class TinyViT(torch.nn.Module):
        """8x8 digits as 16 patches of 2x2: patch embedding, one attention block, LayerNorm, GELU, logits out."""

        def __init__(self) -> None:
            super().__init__()
            self.patch = torch.nn.Conv2d(1, 32, kernel_size=2, stride=2)
            self.position = torch.nn.Parameter(torch.zeros(1, 16, 32))
            self.norm1 = torch.nn.LayerNorm(32)
            self.attention = torch.nn.MultiheadAttention(32, 4, batch_first=True)
            self.norm2 = torch.nn.LayerNorm(32)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 32))
            self.head = torch.nn.Linear(32, 10)

        def forward(self, x):
            tokens = self.patch(x).flatten(2).transpose(1, 2) + self.position
            normed = self.norm1(tokens)
            tokens = tokens + self.attention(normed, normed, normed, need_weights=False)[0]
            tokens = tokens + self.mlp(self.norm2(tokens))
            return self.head(tokens.mean(1))  # logits: no softmax

    return TinyViT()


@pytest.fixture(scope="module")
def trained_vit():
    import torch

    from pipeline.core.datasets import load_dataset

    splits = load_dataset("digits")
    train = splits.train.in_layout("NCHW")
    torch.manual_seed(0)
    model = _vit()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(train.x), torch.from_numpy(train.y).long()
    for _ in range(15):
        for start in range(0, len(x), 64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[start:start + 64]), y[start:start + 64]).backward()
            optimizer.step()
    return model.eval(), splits


@pytest.mark.slow
@pytest.mark.parametrize("target", ["tflite", "executorch"])
def test_a_vit_like_logits_classifier_passes_int8_validation_when_agreement_and_accuracy_hold(
        trained_vit, tmp_path, target):
    import torch

    from pipeline import export

    model, splits = trained_vit
    test, calibration = splits.test.in_layout("NCHW"), splits.calibration.in_layout("NCHW")
    artifact = export(model, target, "int8", example_inputs=torch.zeros(1, 1, 8, 8), eval_data=(test.x, test.y),
                      calibration=calibration.x, out=tmp_path / target)
    validation = artifact.validation
    assert validation["task"] == "classification" and validation["passed"], validation["failures"]
    assert validation["outputs"][0]["kind"] == "logits"
    assert validation["source_accuracy"] > 0.85
    assert validation["top1_agreement"] >= 0.95


def _two_heads():
    import keras

    image = keras.Input((8, 8, 1), name="image")
    extra = keras.Input((4,), name="extra")
    features = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image))
    joined = keras.layers.Concatenate()([features, extra])
    classes = keras.layers.Dense(10, activation="softmax", name="classes")(joined)
    box = keras.layers.Dense(4, name="box")(joined)
    return keras.Model([image, extra], [classes, box])


def test_a_two_input_two_output_keras_model_is_judged_per_output(tmp_path):
    from pipeline import export

    rng = np.random.default_rng(0)
    data = {"image": rng.uniform(size=(32, 8, 8, 1)).astype(np.float32),
            "extra": rng.normal(size=(32, 4)).astype(np.float32)}
    artifact = export(_two_heads(), "tflite", "none", eval_data=data, task="regression", out=tmp_path / "a")
    validation = artifact.validation
    assert validation["passed"], validation["failures"]
    assert len(validation["outputs"]) == 2
    outputs = artifact.run({name: array[:3] for name, array in data.items()})
    assert isinstance(outputs, dict) and sorted(a.shape for a in outputs.values()) == [(3, 4), (3, 10)]


def test_an_artifact_that_outputs_nan_fails_validation_and_the_manifest_stays_strict_json(tmp_path, capsys):
    import torch

    class Broken(torch.nn.Module):
        def forward(self, x):
            return torch.log(x - 2.0)  # inputs in [0, 1]: every output NaN

    model_file = tmp_path / "broken.pt2"
    torch.export.save(torch.export.export(Broken(), (torch.zeros(1, 6),)), model_file)
    data = tmp_path / "eval.npz"
    np.savez(data, x=np.random.default_rng(0).uniform(size=(8, 6)).astype(np.float32))
    out = tmp_path / "out"
    code = main(["export", str(model_file), "--target", "executorch", "--eval-data", str(data), "--out", str(out)])
    assert code == EXIT_VALIDATION_FAILED
    assert "NaN" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text(), parse_constant=lambda name: pytest.fail(name))
    assert manifest["validation"]["passed"] is False


def test_a_torch_model_returning_a_dict_names_its_outputs_by_key():
    import torch

    from pipeline.intake.memory import bundle_from_object

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scores = torch.nn.Linear(8, 3)
            self.boxes = torch.nn.Linear(8, 4)

        def forward(self, x):
            return {"scores": self.scores(x).softmax(-1), "boxes": self.boxes(x)}

    bundle = bundle_from_object(Detector().eval(), example_inputs=torch.zeros(1, 8)).with_outputs()
    assert [(spec.name, spec.shape) for spec in bundle.outputs] == [("scores", (None, 3)), ("boxes", (None, 4))]
