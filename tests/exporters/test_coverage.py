"""Quantization coverage read back from every target's artifact, and the Keras -> ExecuTorch Dense head fix."""

import numpy as np
import pytest

from device_runtime.executorch_runtime import ExecuTorchRuntime
from exporters.coverage import FLOAT_SHARE_WARNING, StoredTensor, summarize
from exporters.routes import tf_to_executorch
from pipeline.core.datasets.base import Dataset
from pipeline.export import export_bundle
from pipeline.intake import load_model
from quantize import quantization_config


@pytest.fixture(scope="module")
def bundles(model_paths):
    return {framework: load_model(str(path)) for framework, path in model_paths.items()}


def _tensors(float_bytes: int) -> list[StoredTensor]:
    return [StoredTensor("conv/w", "int8", (900,), 900, quantized=True),
            StoredTensor("conv/b", "int32", (25,), 100, quantized=True),
            StoredTensor("head/w", "float32", (float_bytes // 4,), float_bytes, read_by="FULLY_CONNECTED"),
            StoredTensor("shape", "int32", (2,), 8)]  # an integer constant without quantization is not a weight


def test_summary_warns_when_a_quantized_export_keeps_over_a_tenth_in_float():
    kept = summarize(_tensors(400), "int8")
    assert kept["weight_bytes"] == 1400 and kept["bytes_by_dtype"] == {"float32": 400, "int32": 100, "int8": 900}
    assert kept["quantized_share"] == round(900 / 1400, 4) and kept["float_share"] == round(400 / 1400, 4)
    assert kept["float_tensors"] == [{"name": "head/w", "dtype": "float32", "shape": [100], "size_bytes": 400,
                                      "read_by": "FULLY_CONNECTED"}]
    assert "int8 export keeps 29% of its weight bytes" in kept["warning"] and "head/w [100] 400 B" in kept["warning"]
    small = summarize(_tensors(100), "int8")  # 100 / 1100 = 9.1%
    assert small["float_share"] < FLOAT_SHARE_WARNING and "warning" not in small


def test_float_export_and_fp16_count_their_own_type():
    plain = summarize(_tensors(400), "none")
    assert plain["stored_as"] == "float (not quantized)" and plain["quantized_share"] == 0.0
    assert "float_tensors" not in plain and "warning" not in plain
    halves = summarize([StoredTensor("w", "float16", (100,), 200), StoredTensor("b", "float32", (10,), 40)], "fp16")
    assert halves["quantized_share"] == round(200 / 240, 4) and halves["float_tensor_count"] == 1
    assert "warning" in halves  # 40 / 240 = 17% left in float32


def test_tflite_int8_and_fp16_manifests_record_coverage(bundles, tmp_path):
    int8 = export_bundle(bundles["keras"], "tflite", quantization_config("int8"), tmp_path / "int8").manifest
    coverage = int8["quantization_coverage"]
    assert coverage["stored_as"] == "int8/uint8" and coverage["quantized_share"] > 0.9
    assert coverage["float_bytes"] == 0 and coverage["bytes_by_dtype"]["int32"] > 0  # biases: int32 with scales
    assert "warning" not in coverage
    fp16 = export_bundle(bundles["keras"], "tflite", quantization_config("fp16"), tmp_path / "fp16").manifest
    coverage = fp16["quantization_coverage"]
    assert coverage["stored_as"] == "float16" and coverage["quantized_share"] > 0.9
    assert coverage["weight_bytes"] < int8["quantization_coverage"]["weight_bytes"] * 2.5


def test_onnx_int8_counts_weights_not_scales(bundles, tmp_path):
    manifest = export_bundle(bundles["torch"], "onnx", quantization_config("int8"), tmp_path / "onnx").manifest
    coverage = manifest["quantization_coverage"]
    assert coverage["quantized_share"] > 0.9 and "warning" not in coverage
    assert all("DequantizeLinear" not in t["read_by"] for t in coverage["float_tensors"])  # scales are not weights
    float32 = export_bundle(bundles["torch"], "onnx", quantization_config("none"), tmp_path / "fp32").manifest
    assert float32["quantization_coverage"]["float_share"] == 1.0
    params = float32["quantization_coverage"]["weight_bytes"]
    assert coverage["quantized_bytes"] == pytest.approx(params / 4, rel=0.05)  # every float weight, one byte each


def test_tfjs_uint8_reads_the_weights_manifest(bundles, tmp_path):
    manifest = export_bundle(bundles["keras"], "tfjs", quantization_config("uint8"), tmp_path / "tfjs").manifest
    coverage = manifest["quantization_coverage"]
    assert coverage["stored_as"] == "uint8" and coverage["quantized_share"] == 1.0
    assert coverage["float_tensor_count"] == 0 and "warning" not in coverage


def test_matmul_on_a_constant_weight_becomes_linear():
    import torch

    class MatMulAdd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w", torch.randn(6, 4))
            self.register_buffer("b", torch.randn(4))
            self.register_buffer("v", torch.randn(4, 3))

        def forward(self, x):
            return torch.matmul(torch.add(torch.matmul(x, self.w), self.b), self.v)

    module = torch.fx.symbolic_trace(MatMulAdd())
    x = torch.randn(2, 6)
    expected = module(x)
    rewritten = tf_to_executorch.matmul_to_linear(module)
    targets = [n.target for n in rewritten.graph.nodes if n.op == "call_function"]
    assert targets == [torch.nn.functional.linear] * 2  # the add folded in as the first linear's bias
    torch.testing.assert_close(rewritten(x), expected)


def _dense_head_bundle(tmp_path):
    """A small CNN whose untrained classifier has a zero bias, so tf2onnx writes it as a bare MatMul."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(8, 3, bias_initializer="random_normal"),
                              keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(400),
                              keras.layers.ReLU(), keras.layers.Dense(10)])
    model.save(tmp_path / "head.keras")
    x = np.random.default_rng(0).uniform(0, 1, (16, 12, 12, 3)).astype(np.float32)
    data = Dataset("noise", {"x": x}, None, "NHWC")
    return load_model(str(tmp_path / "head.keras")).with_data(eval_data=data, calibration_data=data)


@pytest.mark.slow
def test_keras_dense_head_is_quantized_through_the_executorch_bridge(tmp_path, monkeypatch):
    bundle = _dense_head_bundle(tmp_path)
    int8 = quantization_config("int8", calibration_samples=16)
    fixed = export_bundle(bundle, "executorch", int8, tmp_path / "fixed", run_validation=False).manifest
    coverage = fixed["quantization_coverage"]
    assert coverage["float_share"] < FLOAT_SHARE_WARNING and "warning" not in coverage
    assert not [t for t in coverage["float_tensors"] if t["read_by"].startswith("FullyConnected.filter")]
    session = ExecuTorchRuntime().load(tmp_path / "fixed" / "model.pte", "xnnpack")
    x = bundle.eval_data.x
    outputs, reference = session.run(x), bundle.predict(x)
    assert np.max(np.abs(outputs - reference)) < 0.1 * np.ptp(reference)  # the quantized head still computes it
    # without the rewrite both Dense layers stay float matmuls, and the coverage record says so
    monkeypatch.setattr(tf_to_executorch, "matmul_to_linear", lambda module: module)
    kept = export_bundle(bundle, "executorch", int8, tmp_path / "kept", run_validation=False).manifest
    assert kept["quantization_coverage"]["float_share"] > 0.5 and "warning" in kept["quantization_coverage"]
    assert fixed["size_bytes"] < kept["size_bytes"] / 2


def test_executorch_reads_weights_inside_the_xnnpack_delegate(bundles, tmp_path):
    int8 = export_bundle(bundles["torch"], "executorch", quantization_config("int8"), tmp_path / "int8",
                         run_validation=False).manifest
    coverage = int8["quantization_coverage"]
    assert coverage["quantized_share"] > 0.9 and "warning" not in coverage
    matrices = sum(p.numel() for p in bundles["torch"].model.state_dict().values() if p.dim() > 1)
    assert coverage["quantized_bytes"] == matrices  # every conv / linear weight, one byte each
    assert int8["size_bytes"] > coverage["weight_bytes"]


def test_export_summary_prints_the_coverage_warning(capsys, tmp_path):
    from pipeline.cli.commands import _print_export_summary

    manifest = {"source": {"path": "m.keras"}, "model_file": "model.pte", "size_bytes": 10, "size_bytes_gzip": 9,
                "export_seconds": 1.0, "validation": {"skipped": True},
                "quantization_coverage": summarize(_tensors(400), "int8")}
    _print_export_summary(tmp_path, manifest)
    printed = capsys.readouterr().out
    assert "quantization: 64.3% of 1,400 weight bytes in int8/uint8, 28.6% in float (1 tensor(s))" in printed
    assert "WARNING: int8 export keeps 29% of its weight bytes" in printed


def test_report_lists_the_coverage_warning(tmp_path):
    import json

    from pipeline.core.records import Measurement
    from pipeline.report import load_entries, render_html, render_markdown
    from pipeline.results import insert_measurement, open_store, record_export

    folder = tmp_path / "artifacts" / "head" / "executorch-int8"
    folder.mkdir(parents=True)
    coverage = summarize(_tensors(400), "int8")
    (folder / "manifest.json").write_text(json.dumps({
        "target": "executorch", "source": {"framework": "keras", "path": "models/head.keras", "task": "classification"},
        "stages": [{"name": "quantize", "config": {"mode": "int8"}}], "size_bytes": 1500, "size_bytes_gzip": 1400,
        "validation": {"passed": None, "skipped": True}, "delegation": {}, "quantization_coverage": coverage}))
    with open_store(tmp_path / "results.sqlite") as connection:
        record_export(connection, {"key": "head-int8", "model": "head", "framework": "keras", "variant": "int8",
                                   "target": "executorch", "status": "ok", "artifact_dir": str(folder)})
        insert_measurement(connection, Measurement(
            kind="measured", status="ok", artifact_dir=str(folder), manifest_sha256="0" * 64, target="executorch",
            runtime="executorch", delegate_requested="xnnpack", delegate_used="xnnpack", threads=1,
            device_profile="host", result={"latency_ms_p50": 1.0, "latency_ms_p90": 1.2, "latency_ms_mean": 1.0,
                                           "runs": 50}, context={"inputs": "eval.npz"}).to_json())
    entries = load_entries(tmp_path / "results.sqlite")
    assert entries[0].coverage_warning == coverage["warning"]
    assert f"- quantization: keras int8 executorch: {coverage['warning']}" in render_markdown(entries)
    assert "quantization: keras int8 executorch: int8 export keeps 29%" in render_html(entries)
