"""The TF.js route: convert with the official converter -> run in Node.js (cpu, wasm) -> compare with the source."""

import json

import numpy as np
import pytest

from device_runtime.tfjs_node import TFJSNodeRuntime
from exporters.routes.tf_to_tfjs import convert_tf_to_tfjs
from pipeline.core.errors import ExportError, UnsupportedRouteError
from pipeline.intake import load_model
from quantize import quantization_config

MODES = ["none", "fp16", "uint8", "uint16"]


@pytest.fixture(scope="module")
def bundle(keras_model_path):
    return load_model(str(keras_model_path))


@pytest.fixture(scope="module")
def exports(bundle, tmp_path_factory):
    """Every mode converted once for this module: mode -> (out_dir, stages)."""
    root = tmp_path_factory.mktemp("tfjs")
    return {mode: (root / mode, convert_tf_to_tfjs(bundle, root / mode, quantization_config(mode))) for mode in MODES}


def _weight_bytes(out_dir):
    return sum(path.stat().st_size for path in out_dir.glob("group*.bin"))


@pytest.mark.parametrize("mode", MODES)
def test_writes_a_graph_model_with_quantized_weights(exports, mode):
    out_dir, stages = exports[mode]
    model = json.loads((out_dir / "model.json").read_text())
    assert model["format"] == "graph-model"
    assert model["convertedBy"] == "TensorFlow.js Converter v4.22.0"
    shards = [name for group in model["weightsManifest"] for name in group["paths"]]
    assert shards and all((out_dir / name).is_file() for name in shards)
    float_weights = [w for g in model["weightsManifest"] for w in g["weights"] if w["dtype"] == "float32"]
    dtypes = {w.get("quantization", {}).get("dtype") for w in float_weights}
    assert dtypes == {None if mode == "none" else {"fp16": "float16"}.get(mode, mode)}
    assert [s.config["mode"] for s in stages] == ([] if mode == "none" else [mode])


def test_quantized_weights_are_smaller(exports):
    fp32 = _weight_bytes(exports["none"][0])
    assert _weight_bytes(exports["fp16"][0]) <= 0.55 * fp32
    assert _weight_bytes(exports["uint16"][0]) <= 0.55 * fp32
    assert _weight_bytes(exports["uint8"][0]) <= 0.30 * fp32


@pytest.mark.parametrize("backend", ["cpu", "wasm"])
@pytest.mark.parametrize("mode", MODES)
def test_node_outputs_agree_with_the_source(bundle, exports, mode, backend):
    session = TFJSNodeRuntime().load(exports[mode][0] / "model.json", backend)
    x = bundle.eval_data.x
    outputs = session.run(x)
    source = bundle.predict(x)
    assert session.delegate == backend
    assert outputs.shape == source.shape == (360, 10)
    if mode == "none":
        np.testing.assert_allclose(outputs, source, atol=1e-4)
    assert np.mean(outputs.argmax(1) == source.argmax(1)) >= 0.99


def test_many_small_shards_are_read_in_manifest_order(bundle, tmp_path):
    convert_tf_to_tfjs(bundle, tmp_path, quantization_config("none"), shard_size_bytes=16 * 1024)
    assert len(list(tmp_path.glob("group1-shard*.bin"))) > 5
    x = bundle.eval_data.x[:40]
    outputs = TFJSNodeRuntime().load(tmp_path / "model.json", "wasm").run(x)
    np.testing.assert_allclose(outputs, bundle.predict(x), atol=1e-4)


def test_saved_model_source_keeps_its_dynamic_batch(bundle, tmp_path):
    bundle.model.export(str(tmp_path / "saved"), verbose=False)
    saved = load_model(str(tmp_path / "saved"))
    assert saved.framework == "tensorflow"
    convert_tf_to_tfjs(saved, tmp_path / "tfjs", quantization_config("none"))
    session = TFJSNodeRuntime().load(tmp_path / "tfjs" / "model.json", "cpu")
    outputs = session.run(bundle.eval_data.x)
    assert session.last_report["batch"] == 360
    np.testing.assert_allclose(outputs, bundle.predict(bundle.eval_data.x), atol=1e-4)


@pytest.mark.parametrize("mode", ["dynamic-int8", "int8"])
def test_integer_compute_modes_are_refused_with_the_options(bundle, tmp_path, mode):
    with pytest.raises(UnsupportedRouteError, match=rf"'{mode}'.*TF.js quantizes weights only.*Options: none, fp16, uint8, uint16\."):
        convert_tf_to_tfjs(bundle, tmp_path, quantization_config(mode))
    assert not (tmp_path / "model.json").exists()


def test_op_without_tfjs_kernel_is_named(tmp_path):
    import tensorflow as tf

    class LogGamma(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x):
            return tf.math.lgamma(x) + 1.0

    module = LogGamma()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.__call__)
    with pytest.raises(ExportError, match=r"op\(s\) Lgamma have no TF.js kernels"):
        convert_tf_to_tfjs(load_model(str(tmp_path / "saved")), tmp_path / "out", quantization_config("none"))


@pytest.mark.parametrize("mode", ["none", "uint8"])
def test_tfjs_target_end_to_end_manifest(bundle, tmp_path, mode):
    from pipeline.export import export_bundle

    result = export_bundle(bundle, "tfjs", quantization_config(mode), tmp_path / "tfjs")
    manifest = result.manifest
    assert manifest["validation"]["passed"], manifest["validation"]["failures"]
    assert manifest["validation"]["runtime"] == "tfjs-node" and manifest["validation"]["delegate"] == "wasm"
    assert "model.json" in [f["name"] for f in manifest["files"]]
    assert any(name.endswith(".bin") for name in (f["name"] for f in manifest["files"]))
    assert "_FusedConv2D" in manifest["delegation"]["graph_ops"]
    assert manifest["size_bytes"] == sum(p.stat().st_size for p in result.out_dir.iterdir() if p.name not in ("manifest.json", "eval.npz"))


def test_torch_reaches_tfjs_through_onnx(torch_model_path, tmp_path):
    from pipeline.export import export_bundle

    result = export_bundle(load_model(str(torch_model_path)), "tfjs", quantization_config("none"), tmp_path / "tfjs")
    manifest = result.manifest
    assert manifest["validation"]["passed"] and manifest["validation"]["top1_agreement"] >= 0.99
    assert manifest["validation"]["max_abs_error"] <= 1e-4
    assert "onnx2tf" in manifest["route"] and "onnx2tf" in manifest["toolchain"]
