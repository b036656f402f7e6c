import numpy as np
import pytest

from pipeline.core.errors import ConfigError
from pipeline.intake import load_model
from pipeline.intake.card import read_card
from pipeline.zoo.outliers import DEFAULT_CHANNELS, DEFAULT_FACTOR, write_outlier_model


def _first_conv_weights(bundle):
    if bundle.framework == "keras":
        return np.moveaxis(bundle.model.layers[0].get_weights()[0], -1, 0)  # HWIO -> OHWI
    return bundle.model.state_dict()["0.weight"].numpy()


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_float_outputs_equal_the_source_model(model_paths, outlier_paths, framework):
    source, rescaled = load_model(str(model_paths[framework])), load_model(str(outlier_paths[framework]))
    assert rescaled.eval_data is not None and rescaled.calibration_data is not None  # the card came along
    assert read_card(outlier_paths[framework]).training["outliers"]["factor"] == DEFAULT_FACTOR
    ratio = _first_conv_weights(rescaled) / _first_conv_weights(source)
    assert np.allclose(ratio[list(DEFAULT_CHANNELS)], DEFAULT_FACTOR)
    assert np.allclose(np.delete(ratio, DEFAULT_CHANNELS, axis=0), 1.0)
    x = source.eval_data.inputs
    np.testing.assert_allclose(rescaled.predict(x), source.predict(x), atol=1e-4)


def test_int8_tflite_misses_the_accuracy_budget(outlier_paths, tmp_path):
    from pipeline.export import export_bundle
    from quantize import quantization_config

    bundle = load_model(str(outlier_paths["keras"]))
    validation = export_bundle(bundle, "tflite", quantization_config("int8"), tmp_path / "int8").manifest["validation"]
    metrics = validation["outputs"][0]["metrics"]
    assert not validation["passed"]
    assert metrics["accuracy_drop"] > 0.015
    assert metrics["source_accuracy"] > 0.95  # the float model is still the trained one


@pytest.mark.parametrize(("options", "message"), [
    ({"factor": 0.0}, "factor must be > 0"),
    ({"channels": (3, 16)}, "channels must be a non-empty subset of 0..15"),
    ({"channels": ()}, "channels must be a non-empty subset"),
])
def test_bad_rescaling_is_refused(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        write_outlier_model("torch", tmp_path / "m.pt2", tmp_path, **options)


def test_wrong_suffix_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="saved as '.keras'"):
        write_outlier_model("keras", tmp_path / "m.pt2", tmp_path)
