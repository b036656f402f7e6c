"""Intake of every supported format through the one `load_model` path, and its refusals."""

import argparse
import pickle

import numpy as np
import pytest

from pipeline.core.errors import ConfigError, IntakeError
from pipeline.intake import load_model


@pytest.mark.parametrize("framework,layout,shape", [("keras", "NHWC", [None, 8, 8, 1]), ("torch", "NCHW", [None, 1, 8, 8])])
def test_zoo_models_come_with_signature_and_data(model_paths, framework, layout, shape):
    bundle = load_model(str(model_paths[framework]))
    assert bundle.framework == framework
    assert list(bundle.input_spec.shape) == shape
    assert bundle.input_spec.layout == layout
    assert len(bundle.eval_data) == 360 and len(bundle.calibration_data) == 200
    assert len(bundle.source.sha256) == 64
    probabilities = bundle.predict(bundle.eval_data.x)
    assert probabilities.shape == (360, 10)
    assert np.mean(probabilities.argmax(1) == bundle.eval_data.y) >= 0.97


def test_saved_model_directory(keras_model_path, tmp_path):
    keras_bundle = load_model(str(keras_model_path))
    saved = tmp_path / "saved"
    keras_bundle.model.export(str(saved), verbose=False)
    bundle = load_model(str(saved))
    assert bundle.framework == "tensorflow" and bundle.source.format == "saved_model"
    assert list(bundle.input_spec.shape) == [None, 8, 8, 1]
    x = keras_bundle.eval_data.x[:16]
    np.testing.assert_allclose(bundle.predict(x), keras_bundle.predict(x), atol=1e-6)


def test_factory_with_safe_state_dict(tmp_path):
    import torch

    from pipeline.zoo.digits_cnn import build_torch

    torch.manual_seed(1)
    weights = tmp_path / "weights.pt"
    reference = build_torch().eval()
    torch.save(reference.state_dict(), weights)
    bundle = load_model("pipeline.zoo.digits_cnn:build_torch", weights=weights, input_shape=(1, 1, 8, 8))
    assert bundle.source.format == "factory" and bundle.eval_data is None
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(bundle.predict(x), expected, atol=1e-6)


def test_factory_needs_an_input_shape():
    with pytest.raises(ConfigError, match="--input-shape"):
        load_model("pipeline.zoo.digits_cnn:build_torch")


def test_weights_holding_pickled_objects_are_refused(tmp_path):
    import torch

    weights = tmp_path / "weights.pt"
    torch.save({"layer": argparse.Namespace(payload=1)}, weights)
    with pytest.raises(IntakeError, match="pickled objects are refused"):
        load_model("pipeline.zoo.digits_cnn:build_torch", weights=weights, input_shape=(1, 1, 8, 8))


@pytest.mark.parametrize("name", ["model.pt", "model.pkl"])
def test_pickled_checkpoints_are_never_opened(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(IntakeError, match="never unpickled"):
        load_model(str(path))


def test_unsupported_format_lists_what_is_supported(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x01")
    with pytest.raises(IntakeError, match=r"Supported: a Keras `.keras` file"):
        load_model(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(IntakeError, match="does not exist"):
        load_model(str(tmp_path / "nope.keras"))


@pytest.mark.parametrize("suffix", [".keras", ".pt2"])
def test_corrupt_and_truncated_files(model_paths, tmp_path, suffix):
    source = model_paths["keras" if suffix == ".keras" else "torch"]
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(b"\x00garbage" * 100)
    for path in (truncated, garbage):
        with pytest.raises(IntakeError, match="Could not read"):
            load_model(str(path))


def test_input_shape_that_contradicts_the_model(keras_model_path):
    with pytest.raises(IntakeError, match=r"does not match the model's input image: \[-1,8,8,1\]"):
        load_model(str(keras_model_path), input_shape=(1, 8, 8, 3))


def test_pt2_loading_never_falls_back_to_full_unpickling(tmp_path):
    """torch.export.load retries with weights_only=False on failure; intake forbids that retry."""
    import torch

    from pipeline.intake.torch_intake import _tensors_only_unpickling

    payload = tmp_path / "object.bin"
    torch.save(argparse.Namespace(payload=1), payload)
    with _tensors_only_unpickling(), pytest.raises(pickle.UnpicklingError):
        torch.load(payload, weights_only=False)
    assert isinstance(torch.load(payload, weights_only=False), argparse.Namespace)
