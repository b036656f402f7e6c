"""TF.js in real headless Chromium (needs `apt-get install chromium` and the `playwright` package).

Tolerances: cpu and wasm run the same float32 kernels as Node (1e-4 against Node and the source);
webgl and webgpu compute in shaders (float32 textures on SwiftShader, possibly half floats on a real
GPU), so they get 1e-3. On SwiftShader all four agree with Node to about 1e-6.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from device_runtime import chromium, tfjs_browser
from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.tfjs_browser import TFJSBrowserRuntime
from device_runtime.tfjs_node import TFJSNodeRuntime
from pipeline.core.errors import ArtifactError, DataError, RuntimeUnavailableError, UnknownNameError

pytestmark = pytest.mark.browser

ATOL = {"cpu": 1e-4, "wasm": 1e-4, "webgl": 1e-3, "webgpu": 1e-3}
QUICK = Protocol(warmup_runs=3, min_runs=20, min_duration_s=0.2)
NODE_KEYS = {"load_ms", "first_inference_ms", "runs", "duration_s", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
             "latency_ms_mean", "latency_ms_std", "latency_cv", "latency_ms_min", "latency_ms_max", "accuracy",
             "samples", "peak_rss_bytes", "tfjs_version"}


@pytest.fixture(scope="module")
def digits(artifacts, keras_model_path):
    """The exported TF.js digits CNN, 32 of its eval samples, and the source's and Node's outputs on them."""
    from pipeline.intake import load_model

    artifact = artifacts["tfjs-fp32"]
    with np.load(artifact / "eval.npz") as data:
        x, y = next(data[name] for name in data.files if name != "y")[:32], data["y"][:32]
    node = TFJSNodeRuntime().load(artifact, "cpu").run(x)
    return {"artifact": artifact, "x": x, "y": y, "source": load_model(str(keras_model_path)).predict(x), "node": node}


@pytest.fixture(scope="module")
def sessions(digits):
    """Opens one browser session per backend on first use (wasm with 2 threads); closes them all at the end."""
    opened = {}

    def get(backend: str) -> tfjs_browser.TFJSBrowserSession:
        if backend not in opened:
            availability = TFJSBrowserRuntime().is_available(backend)
            assert availability.ok, availability.reason
            opened[backend] = TFJSBrowserRuntime().load(digits["artifact"], backend, threads=2 if backend == "wasm" else None)
        return opened[backend]

    yield get
    for session in opened.values():
        session.close()


@pytest.mark.parametrize("backend", list(ATOL))
def test_outputs_agree_with_node_and_the_source(sessions, digits, backend):
    session = sessions(backend)
    outputs = session.run(digits["x"])
    assert session.delegate == backend
    assert outputs.shape == (32, 10) and outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, digits["node"], atol=ATOL[backend])
    np.testing.assert_allclose(outputs, digits["source"], atol=ATOL[backend])


@pytest.mark.parametrize("backend", list(ATOL))
def test_benchmark_returns_sane_stats(sessions, digits, backend):
    result = sessions(backend).benchmark(digits["x"], digits["y"], QUICK)
    assert set(result) >= NODE_KEYS
    assert result["runs"] >= QUICK.min_runs and result["duration_s"] >= QUICK.min_duration_s
    assert 0 < result["latency_ms_min"] <= result["latency_ms_p50"] <= result["latency_ms_p90"]
    assert result["latency_ms_p90"] <= result["latency_ms_p99"] <= result["latency_ms_max"]
    assert result["load_ms"] > 0 and result["first_inference_ms"] > 0
    assert result["accuracy"] > 0.8 and result["samples"] == 32 and result["tfjs_version"] == "4.22.0"
    info = result["backend_info"]
    assert info["cross_origin_isolated"] is True and info["timer_resolution_ms"] <= 0.02  # not coarsened to 0.1 ms
    assert result["browser_version"].count(".") == 3


@pytest.mark.parametrize("backend,key", [("webgl", "renderer"), ("webgpu", "architecture")])
def test_gpu_backends_name_their_device(sessions, digits, backend, key):
    info = sessions(backend).benchmark(digits["x"], digits["y"], QUICK)["backend_info"]
    assert info[key]
    if not Path("/dev/dri").exists():  # no GPU here: Chromium falls back to its software GPU
        assert "swiftshader" in info[key].lower()
        assert info["device_kind"] == "software GPU (SwiftShader)"


def test_wasm_is_cross_origin_isolated_and_threaded(sessions):
    session = sessions("wasm")
    assert session.browser.call("() => self.crossOriginIsolated") is True
    info = session.info["backend_info"]
    assert info["simd"] is True and info["multithread"] is True
    assert info["threads"] == info["threads_requested"] == 2


def test_unknown_backend_lists_the_options(digits):
    with pytest.raises(UnknownNameError, match="Unknown TF.js backend 'wsam'. Available: cpu, wasm, webgl, webgpu. Did you mean 'wasm'"):
        TFJSBrowserRuntime().load(digits["artifact"], "wsam")


def test_missing_model_json_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match=r"model.json does not exist; export one with `pipeline export"):
        TFJSBrowserRuntime().load(tmp_path / "model.json", "cpu")


def test_missing_weight_shard_names_the_file(digits, tmp_path):
    shutil.copy(digits["artifact"] / "model.json", tmp_path)
    with pytest.raises(ArtifactError, match=r"stage 'load'.*group1-shard1of1.bin could not be read \(HTTP 404"):
        TFJSBrowserRuntime().load(tmp_path, "cpu")


def test_input_of_the_wrong_shape_is_a_data_error(sessions):
    with pytest.raises(DataError, match=r"samples of shape \[8, 8, 3\] but the model takes \[8, 8, 1\]"):
        sessions("cpu").run(np.zeros((2, 8, 8, 3), np.float32))


def test_webgpu_without_an_adapter_is_unavailable(digits, monkeypatch):
    monkeypatch.setattr(tfjs_browser, "EXTRA_FLAGS", {})  # no --enable-unsafe-webgpu: no SwiftShader adapter
    with pytest.raises(RuntimeUnavailableError, match=r"webgpu backend.*(no WebGPU adapter|navigator.gpu is missing).*Use another backend"):
        TFJSBrowserRuntime().load(digits["artifact"], "webgpu")


@pytest.mark.parametrize("target,attribute,expected", [
    (tfjs_browser, "find_chromium", "Chromium not found: apt-get install chromium (or run `make setup`)"),
    (tfjs_browser, "playwright_installed", "Playwright is not installed: pip install playwright"),
])
def test_availability_explains_missing_pieces(monkeypatch, target, attribute, expected):
    monkeypatch.setattr(target, attribute, lambda: None)
    availability = TFJSBrowserRuntime().is_available("wasm")
    assert not availability.ok and expected in availability.reason


def test_availability_explains_a_missing_runner_install(monkeypatch, tmp_path):
    monkeypatch.setattr(tfjs_browser, "RUNNER_DIR", tmp_path)
    availability = TFJSBrowserRuntime().is_available("webgpu")
    assert not availability.ok
    assert "tf.min.js" in availability.reason and "tf-backend-webgpu.min.js" in availability.reason
    assert "run `make setup`" in availability.reason
    with pytest.raises(RuntimeUnavailableError, match="TF.js browser files not installed"):
        TFJSBrowserRuntime().load(tmp_path / "model.json", "webgpu")


def test_server_isolates_and_serves_only_its_files(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("no")
    server = chromium.LocalServer({"/page.js": tmp_path / "model" / "model.json"}, tmp_path / "model")
    base = server.start()
    try:
        with urllib.request.urlopen(f"{base}/model/model.json") as response:
            assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            assert response.headers["Content-Type"] == "application/json" and response.read() == b"{}"
        for path in ("/model/../secret.txt", "/model/%2e%2e/secret.txt", "/other.js"):
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(f"{base}{path}")
    finally:
        server.stop()
