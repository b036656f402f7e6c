"""ONNX Runtime Web in real headless Chromium (needs `apt-get install chromium`, `playwright` and `npm ci` in
device_runtime/ort_browser).

Tolerances: wasm runs float32 CPU kernels like ONNX Runtime's Python CPU provider (1e-4); webgpu computes in
shaders (SwiftShader here, possibly half floats on a real GPU), so 1e-3. Measured here: both agree to about 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest

from device_runtime import RUNTIMES, runtimes_for
from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.harness import resolve_request, run_benchmark
from device_runtime.ort_browser import OrtBrowserRuntime
from pipeline.core.errors import ArtifactError, DataError, UnknownNameError

QUICK = Protocol(warmup_runs=3, min_runs=20, min_duration_s=0.2)
LENGTH = 16


def python_ort(model_file, feed):
    """Every output of the Python ONNX Runtime (CPU provider), one sample a run, concatenated."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    count = len(next(iter(feed.values())))
    runs = [session.run(None, {name: array[i:i + 1] for name, array in feed.items()}) for i in range(count)]
    return [np.concatenate(parts) for parts in zip(*runs, strict=True)]


def eval_feed(artifact, count=32):
    with np.load(artifact / "eval.npz") as data:
        return {name: data[name][:count] for name in data.files if name != "y"}, data["y"][:count]


@pytest.fixture(scope="module")
def digits_onnx(torch_model_path, tmp_path_factory):
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from quantize import quantization_config

    out = tmp_path_factory.mktemp("ort-web") / "digits-onnx"
    export_bundle(load_model(str(torch_model_path)), "onnx", quantization_config("none"), out)
    return out


def test_registered_for_onnx_and_refuses_unknown_providers():
    assert runtimes_for("onnx") == ("onnxruntime", "ort-browser")
    runtime = RUNTIMES.get("ort-browser")
    assert runtime.delegates == ("wasm", "webgpu") and runtime.default_delegate == "wasm"
    availability = runtime.is_available("webgl")
    assert not availability.ok and "wasm, webgpu" in availability.reason
    with pytest.raises(UnknownNameError, match="webgpu"):
        runtime.load("model.onnx", "webgpuu")


@pytest.mark.browser
def test_damaged_model_and_wrong_feed_are_reported(digits_onnx, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all")
    with pytest.raises(ArtifactError, match="not a readable ONNX model"):
        OrtBrowserRuntime().load(broken, "wasm")
    session = OrtBrowserRuntime().load(digits_onnx / "model.onnx", "wasm", threads=1)
    try:
        with pytest.raises(DataError, match="model's inputs are input"):
            session.run_outputs({"a": np.zeros((1, 1, 8, 8), np.float32), "b": np.zeros((1, 4), np.float32)})
    finally:
        session.close()


@pytest.mark.slow
@pytest.mark.browser
def test_digits_on_wasm_threads_matches_python_onnxruntime(digits_onnx):
    feed, _ = eval_feed(digits_onnx)
    session = OrtBrowserRuntime().load(digits_onnx / "model.onnx", "wasm", threads=2)
    try:
        (page,) = session.run_outputs(feed)
        info = session.info["backend_info"]
    finally:
        session.close()
    (reference,) = python_ort(digits_onnx / "model.onnx", feed)
    assert page.shape == reference.shape == (32, 10)
    np.testing.assert_allclose(page, reference, atol=1e-4)
    assert session.info["cross_origin_isolated"] and info["threads"] == 2 and info["multithread"]
    assert info["wasm_binaries"] == ["ort-wasm-simd-threaded.wasm"]


@pytest.mark.slow
@pytest.mark.browser
def test_benchmark_row_through_the_harness(digits_onnx):
    measurement = run_benchmark(resolve_request(digits_onnx, "ort-browser", "wasm", "host", 1, QUICK))
    assert measurement.status == "ok", measurement.error
    result = measurement.result
    assert measurement.runtime == "ort-browser" and measurement.delegate_used == "wasm"
    assert result["runs"] >= 20 and 0 < result["latency_ms_p50"] < 50
    assert result["accuracy"] is not None and result["accuracy"] > 0.9
    assert result["ort_web_version"].startswith("1.") and result["backend_info"]["threads"] == 1
    assert result["backend_info"]["timer_resolution_ms"] < 0.05  # isolated: performance.now() not coarsened
    assert measurement.context["versions"].get("playwright")


@pytest.mark.slow
@pytest.mark.browser
def test_webgpu_is_labelled_with_its_adapter(digits_onnx):
    measurement = run_benchmark(resolve_request(digits_onnx, "ort-browser", "webgpu", "host", 1, QUICK))
    if measurement.status == "unavailable":
        pytest.skip(measurement.error)
    assert measurement.status == "ok", measurement.error
    info = measurement.result["backend_info"]
    expected = "software GPU (SwiftShader)" if "swiftshader" in str(info.get("architecture")).lower() else "GPU"
    assert info["device_kind"] == expected and info["wasm_binaries"] == ["ort-wasm-simd-threaded.asyncify.wasm"]
    feed, _ = eval_feed(digits_onnx, 8)
    session = OrtBrowserRuntime().load(digits_onnx / "model.onnx", "webgpu")
    try:
        (page,) = session.run_outputs(feed)
    finally:
        session.close()
    np.testing.assert_allclose(page, python_ort(digits_onnx / "model.onnx", feed)[0], atol=1e-3)


@pytest.mark.slow
@pytest.mark.browser
def test_int64_token_ids_run_as_bigint(tmp_path):
    """A two-input text encoder (int64 ids and mask): the page gets them as BigInt64Array inputs by name, and the
    embeddings match Python ONNX Runtime."""
    import torch
    import torch.nn.functional as F

    from pipeline.core.datasets import Dataset
    from pipeline.export import export_bundle
    from pipeline.intake.memory import bundle_from_object
    from quantize import quantization_config

    class TextEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens, self.proj = torch.nn.Embedding(100, 32), torch.nn.Linear(32, 32)

        def forward(self, input_ids, attention_mask):
            h = F.gelu(self.proj(self.tokens(input_ids)))
            weights = attention_mask.unsqueeze(-1).to(h.dtype)
            return F.normalize((h * weights).sum(1) / weights.sum(1).clamp(min=1.0), dim=-1)

    rng = np.random.default_rng(0)
    mask = (np.arange(LENGTH)[None] < rng.integers(4, LENGTH + 1, 12)[:, None]).astype(np.int64)
    feed = {"input_0": rng.integers(1, 100, (12, LENGTH)).astype(np.int64) * mask, "input_1": mask}
    torch.manual_seed(0)
    bundle = bundle_from_object(TextEncoder().eval(), example_inputs=tuple(torch.from_numpy(a[:1]) for a in feed.values()))
    bundle = bundle.with_data(eval_data=Dataset("t", feed, None, "NC"))
    export_bundle(bundle, "onnx", quantization_config("none"), tmp_path / "enc")
    session = OrtBrowserRuntime().load(tmp_path / "enc" / "model.onnx", "wasm", threads=1)
    try:
        assert [(s.name, s.dtype) for s in session.input_signatures()] == [("input_0", "int64"), ("input_1", "int64")]
        (page,) = session.run_outputs(feed)
    finally:
        session.close()
    np.testing.assert_allclose(page, python_ort(tmp_path / "enc" / "model.onnx", feed)[0], atol=1e-4)
    assert page.shape == (12, 32) and np.allclose(np.linalg.norm(page, axis=1), 1.0, atol=1e-5)
