"""LiteRT's GPU accelerator: found by running it (a software GPU, SwiftShader's Vulkan, where the host has no GPU),
named by the adapter it selects, and agreeing with the CPU interpreter."""

import numpy as np
import pytest

from device_runtime import RUNTIMES, gpu
from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.harness import resolve_request, run_benchmark
from device_runtime.profiles import PROFILES

QUICK = Protocol(warmup_runs=2, min_runs=10, min_duration_s=0.0)
SWIFTSHADER = gpu.CHROMIUM_DIR / gpu.SWIFTSHADER_ICD


@pytest.fixture(scope="module")
def float_artifact(torch_model_path, tmp_path_factory):
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from quantize import quantization_config

    bundle = load_model(str(torch_model_path))
    out = tmp_path_factory.mktemp("litert-gpu") / "artifact"
    export_bundle(bundle, "tflite", quantization_config("none"), out)
    return bundle, out


@pytest.fixture
def gpu_or_skip():
    availability = RUNTIMES.get("litert").is_available("gpu")
    if not availability.ok:
        pytest.skip(availability.reason)
    return availability


def test_adapter_lines_give_the_device_label():
    software = gpu.parse_adapter("I0000 environment.cc:532] Selected adapter: SwiftShader Device (Subzero), "
                                 "arch=swiftshader, vendor=google, backend=Vulkan, adapterType=CPU / Software\nnext")
    assert software.software and software.label == "software GPU (SwiftShader Vulkan)"
    assert software.describe().endswith("adapterType=CPU / Software")
    real = gpu.parse_adapter("Selected adapter: NVIDIA GeForce RTX 3060, arch=ampere, vendor=nvidia, "
                             "backend=Vulkan, adapterType=Discrete GPU")
    assert not real.software and real.label == "NVIDIA GeForce RTX 3060"
    assert gpu.parse_adapter("INTERNAL: No adapters found") is None


@pytest.mark.skipif(not SWIFTSHADER.is_file(), reason="no SwiftShader Vulkan driver (Debian's chromium package)")
def test_swiftshader_makes_the_gpu_delegate_available_and_names_it():
    availability = RUNTIMES.get("litert").is_available("gpu")
    assert availability.ok, availability.reason
    assert availability.device.startswith("software GPU (SwiftShader Vulkan): SwiftShader Device")


def test_without_a_vulkan_stack_the_reason_says_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu, "CHROMIUM_DIR", tmp_path)
    monkeypatch.setattr(gpu.ctypes.util, "find_library", lambda name: None)
    gpu.find_gpu.cache_clear()
    try:
        availability = RUNTIMES.get("litert").is_available("gpu")
    finally:
        gpu.find_gpu.cache_clear()
    assert not availability.ok and availability.device == ""
    assert "no Vulkan loader (libvulkan.so.1) on the system" in availability.reason
    assert f"no SwiftShader Vulkan driver ({tmp_path / gpu.SWIFTSHADER_ICD}" in availability.reason


def test_gpu_session_matches_the_cpu_interpreter(float_artifact, gpu_or_skip):
    bundle, out = float_artifact
    runtime = RUNTIMES.get("litert")
    x = bundle.eval_data.x[:64]
    on_gpu, on_cpu = runtime.load(out / "model.tflite", "gpu"), runtime.load(out / "model.tflite", "cpu", 1)
    try:
        assert on_gpu.delegate_used == "gpu" and "CONV_2D" in on_gpu.op_names()
        assert on_gpu.op_names() == on_cpu.op_names()  # the flatbuffer's ops, as the interpreter's plan lists them
        y_gpu, y_cpu = on_gpu.run(x), on_cpu.run(x)
    finally:
        on_gpu.close()
        on_cpu.close()
    assert y_gpu.shape == y_cpu.shape
    np.testing.assert_allclose(y_gpu, y_cpu, atol=1e-4)
    assert (y_gpu.argmax(1) == y_cpu.argmax(1)).all()


def test_a_gpu_row_names_its_adapter_and_times_the_computed_outputs(float_artifact, gpu_or_skip):
    m = run_benchmark(resolve_request(float_artifact[1], "litert", "gpu", "host", 1, QUICK))
    assert m.status == "ok", m.error
    info = m.result["backend_info"]
    assert m.delegate_used == "gpu" and info["device_kind"] == gpu_or_skip.device.split(":")[0]
    assert info["fully_accelerated"] and info["ops_accelerated"] == info["ops_total"] > 0
    # the accelerator's run only queues work: a timed call that read nothing back would take microseconds
    assert m.result["latency_ms_p50"] > 0.05 and m.result["accuracy"] > 0.8


def test_gpu_delegates_are_offered_by_the_host_only():
    assert {"gpu", "webgl", "webgpu", "wasm"} <= set(PROFILES.get("host").delegates)
    for name in PROFILES.names():
        if name != "host":
            assert not {"gpu", "webgl", "webgpu"} & set(PROFILES.get(name).delegates), name


def test_an_emulated_phone_refuses_the_gpu_delegate(float_artifact):
    m = run_benchmark(resolve_request(float_artifact[1], "litert", "gpu", "pixel-3a-1t", 1, QUICK))
    assert m.status == "unavailable" and "profile pixel-3a-1t has no gpu delegate" in m.error


@pytest.mark.browser
@pytest.mark.slow
def test_tfjs_in_chromium_on_webgl_is_labelled_with_its_gpu(keras_model_path, tmp_path):
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from quantize import quantization_config

    export_bundle(load_model(str(keras_model_path)), "tfjs", quantization_config("none"), tmp_path / "tfjs")
    m = run_benchmark(resolve_request(tmp_path / "tfjs", "tfjs-browser", "webgl", "host", 1, QUICK))
    assert m.status == "ok", m.error
    assert m.delegate_used == "webgl"
    kind = m.result["backend_info"]["device_kind"]
    assert kind == "GPU" or kind.startswith("software GPU (")
    if SWIFTSHADER.is_file() and "swiftshader" in m.result["backend_info"]["renderer"].lower():
        assert kind == "software GPU (SwiftShader)"
