"""qat-int8 on the digits CNN: TFMOT (Keras) and PT2E (PyTorch) QAT exports that validate, shrink and keep accuracy."""

from dataclasses import replace

import pytest

from pipeline.core.errors import ConfigError, DataError, UnsupportedRouteError
from pipeline.export import export_bundle
from pipeline.intake import load_model
from quantize import QUANTIZATION_MODES, QatInt8Config, quantization_config

QAT = QatInt8Config(fine_tune_epochs=2)
ROUTES = [("keras", "tflite"), ("torch", "tflite"), ("torch", "executorch")]


@pytest.fixture(scope="module")
def bundles(keras_model_path, torch_model_path):
    return {"keras": load_model(str(keras_model_path)), "torch": load_model(str(torch_model_path))}


@pytest.fixture(scope="module")
def exports(bundles, tmp_path_factory):
    """(framework, target) -> (fp32 manifest, qat-int8 manifest, qat-int8 artifact directory)."""
    root = tmp_path_factory.mktemp("qat")
    results = {}
    for framework, target in ROUTES:
        bundle = bundles[framework]
        fp32 = export_bundle(bundle, target, quantization_config("none"), root / f"{framework}-{target}-fp32")
        qat = export_bundle(bundle, target, QAT, root / f"{framework}-{target}-qat")
        results[framework, target] = (fp32.manifest, qat.manifest, qat.out_dir)
    return results


def test_qat_int8_is_a_registered_mode_with_checked_options():
    assert QUANTIZATION_MODES.get("qat-int8") is QatInt8Config
    assert quantization_config("qat-int8", fine_tune_epochs=1) == QatInt8Config(fine_tune_epochs=1)
    assert QatInt8Config().to_json() == {"mode": "qat-int8", "fine_tune_epochs": 3, "learning_rate": 1e-4,
                                         "batch_size": 32, "seed": 0}
    with pytest.raises(ConfigError, match="fine_tune_epochs must be an integer >= 1.*choose --quantize int8"):
        QatInt8Config(fine_tune_epochs=0)
    with pytest.raises(ConfigError, match="learning_rate must be > 0"):
        QatInt8Config(learning_rate=0)


@pytest.mark.parametrize("framework,target", ROUTES)
def test_qat_export_validates_shrinks_and_keeps_accuracy(exports, framework, target):
    fp32, qat, _ = exports[framework, target]
    validation = qat["validation"]
    assert validation["passed"], validation["failures"]
    assert validation["tolerances"]["max_abs_error"] is None  # judged on agreement and accuracy
    # a .pte carries ~2 KB more fixed overhead: 0.3006x here, the same bytes as post-training int8
    assert qat["size_bytes"] <= (0.30 if target == "tflite" else 0.31) * fp32["size_bytes"]
    assert validation["artifact_accuracy"] >= 0.99 * fp32["validation"]["artifact_accuracy"]


@pytest.mark.parametrize("framework,target", ROUTES)
def test_manifest_records_the_fine_tune(exports, framework, target):
    _, qat, _ = exports[framework, target]
    [stage] = qat["stages"]
    assert stage["name"] == "quantize" and stage["config"] == QAT.to_json()
    effect = stage["effect"]
    assert effect["fine_tune_epochs"] == 2 and effect["fine_tune_seconds"] > 0 and effect["train_samples"] > 1000
    assert effect["loss"] == "cross-entropy" and effect["fidelity"]["data"] == "evaluation data"
    assert effect["accuracy_before"] == pytest.approx(qat["validation"]["source_accuracy"], abs=1e-6)
    assert effect["accuracy_after"] >= 0.99 * effect["accuracy_before"]
    tool = "tensorflow-model-optimization" if framework == "keras" else "prepare_qat_pt2e"
    assert tool in stage["tool"]


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_tflite_qat_is_full_integer_inside(exports, framework):
    """Only the model's float input and output stay float32: weights and activations are int8."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    _, qat, out_dir = exports[framework, "tflite"]
    details = Interpreter(model_path=str(out_dir / "model.tflite")).get_tensor_details()
    floats = [d for d in details if d["dtype"] == np.float32]
    assert max(int(np.prod(d["shape"])) for d in floats) <= 64  # 8x8 input, 10 probabilities
    assert sum(d["dtype"] == np.int8 for d in details) >= 8


@pytest.mark.parametrize("framework,target", ROUTES)
def test_qat_without_training_data_names_the_fix(bundles, tmp_path, framework, target):
    bundle = replace(bundles[framework], train_data=None)
    with pytest.raises(DataError, match=r"needs training data.*Pass --train-data FILE\.npz.*`pipeline train`.*"
                       r"--quantize int8"):
        export_bundle(bundle, target, QAT, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_qat_is_not_expressible_for_tfjs(bundles, tmp_path, framework):
    with pytest.raises(UnsupportedRouteError, match="'qat-int8' cannot be expressed for target tfjs"):
        export_bundle(bundles[framework], "tfjs", QAT, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_qat_is_refused_on_the_keras_onnx_bridge_to_executorch(bundles, tmp_path):
    with pytest.raises(UnsupportedRouteError, match=r"'qat-int8' cannot be expressed for target executorch from a keras "
                       r"model: QAT fine-tunes the source model.*Options: none, dynamic-int8, int8\. .*torch -> executorch"):
        export_bundle(bundles["keras"], "executorch", QAT, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_qat_needs_a_keras_model_not_a_saved_model(bundles, tmp_path):
    saved_model = replace(bundles["keras"], framework="tensorflow")
    with pytest.raises(UnsupportedRouteError, match=r"'qat-int8' cannot be expressed for target tflite from a tensorflow "
                       r"model: QAT fine-tunes a Keras model.*export the Keras model \(\.keras\) instead"):
        export_bundle(saved_model, "tflite", QAT, tmp_path / "out")
