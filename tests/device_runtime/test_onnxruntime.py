"""ONNX Runtime behind the Session interface: providers, the on-device script's program, and the harness."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from device_runtime import RUNTIMES, default_runtime
from device_runtime.device_scripts import edge_bench
from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.harness import resolve_request, run_benchmark
from pipeline.core.errors import RuntimeUnavailableError, UnknownNameError

QUICK = Protocol(warmup_runs=3, min_runs=30, min_duration_s=0.3)


@pytest.fixture(scope="module")
def onnx_artifact(torch_model_path, tmp_path_factory):
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from quantize import quantization_config

    out = tmp_path_factory.mktemp("onnx") / "digits-int8"
    export_bundle(load_model(str(torch_model_path)), "onnx", quantization_config("int8"), out)
    return out


def test_onnx_artifacts_default_to_onnxruntime_on_cpu():
    runtime = RUNTIMES.get(default_runtime("onnx"))
    assert runtime.name == "onnxruntime" and runtime.default_delegate == "cpu"
    assert runtime.is_available("cpu").ok
    with pytest.raises(UnknownNameError, match="Unknown ONNX Runtime delegate 'gpu'"):
        runtime.load("model.onnx", "gpu")


def test_missing_xnnpack_provider_is_unavailable_with_the_reason():
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "XnnpackExecutionProvider" in available:
        pytest.skip("this onnxruntime wheel has XNNPACK")
    availability = RUNTIMES.get("onnxruntime").is_available("xnnpack")
    assert not availability.ok
    assert availability.reason == ("this onnxruntime wheel has no XNNPACK execution provider "
                                   f"(it has: {', '.join(available)})")
    with pytest.raises(RuntimeUnavailableError, match="no XNNPACK execution provider"):
        RUNTIMES.get("onnxruntime").load("model.onnx", "xnnpack")


def test_session_matches_a_plain_inference_session(onnx_artifact):
    import onnxruntime as ort

    with np.load(onnx_artifact / "eval.npz") as data:
        x = next(data[name] for name in data.files if name != "y")[:8]
    session = RUNTIMES.get("onnxruntime").load(onnx_artifact / "model.onnx", "cpu", threads=1)
    try:
        assert session.delegate_used == "cpu"
        (signature,) = session.input_signatures()
        assert signature.dtype == "float32" and signature.shape[0] == 1
        ours = session.run(x)
    finally:
        session.close()
    plain = ort.InferenceSession(str(onnx_artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    name = plain.get_inputs()[0].name
    expected = np.concatenate([plain.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_the_copied_script_runs_the_onnx_model(onnx_artifact, tmp_path):
    copy = tmp_path / "edge_bench.py"
    copy.write_bytes(Path(edge_bench.__file__).read_bytes())
    spec = importlib.util.spec_from_file_location("edge_bench_onnx_copy", copy)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        out = tmp_path / "result.json"
        assert module.main([str(onnx_artifact), "--threads", "1", "--delegate", "cpu", "--device-name", "board",
                            "--warmup", "2", "--min-runs", "10", "--min-seconds", "0.1", "--out", str(out)]) == 0
    finally:
        del sys.modules[spec.name]
    import json

    record = json.loads(out.read_text())
    assert record["delegate_used"] == "cpu" and record["artifact"]["target"] == "onnx"
    assert record["result"]["accuracy"] > 0.9 and record["result"]["latency_ms_p50"] > 0


def test_benchmark_on_host_through_the_harness(onnx_artifact):
    m = run_benchmark(resolve_request(onnx_artifact, None, None, "host", 1, QUICK))
    assert m.status == "ok", m.error
    assert (m.runtime, m.delegate_requested, m.delegate_used, m.kind) == ("onnxruntime", "cpu", "cpu", "measured")
    info = m.result["backend_info"]
    assert info["graph_optimization_level"] == "ORT_ENABLE_ALL" and info["intra_op_num_threads"] == 1
    assert info["execution_providers"] == ["CPUExecutionProvider"]
    assert m.result["accuracy"] > 0.9 and m.result["runs"] >= QUICK.min_runs
    assert "onnxruntime" in m.context["versions"]


def test_xnnpack_request_is_recorded_unavailable_not_run(onnx_artifact):
    import onnxruntime as ort

    if "XnnpackExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime wheel has XNNPACK")
    m = run_benchmark(resolve_request(onnx_artifact, "onnxruntime", "xnnpack", "host", 1, QUICK))
    assert m.status == "unavailable" and "no XNNPACK execution provider" in m.error and m.delegate_used is None


@pytest.mark.slow
def test_emulated_device_slows_the_worker(onnx_artifact):
    host = run_benchmark(resolve_request(onnx_artifact, None, None, "pixel-3a-1t", 1, QUICK))
    slowed = run_benchmark(resolve_request(onnx_artifact, None, None, "pixel-3a-1t", 1, QUICK, active_fraction=0.25))
    assert host.status == slowed.status == "ok", (host.error, slowed.error)
    assert slowed.kind == "emulated" and slowed.context["throttle_applied"]
    assert slowed.result["latency_ms_p50"] > 2.0 * host.result["latency_ms_p50"]
