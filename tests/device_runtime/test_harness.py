"""The isolated benchmark worker: real measurements, emulated devices, and failures that are recorded, not raised."""

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.harness import BenchRequest, resolve_request, run_benchmark, throttled_protocol
from device_runtime.profiles import PROFILES
from pipeline.core.errors import ConfigError, DataError, UnknownNameError

QUICK = Protocol(warmup_runs=3, min_runs=30, min_duration_s=0.3)


def test_litert_measurement_is_complete_and_labelled(artifacts):
    request = resolve_request(artifacts["tflite-fp32"], None, None, "host", 1, QUICK)
    m = run_benchmark(request)
    assert m.status == "ok", m.error
    assert m.kind == "measured" and m.delegate_used == "xnnpack" and m.runtime == "litert"
    r = m.result
    assert r["runs"] >= 30 and r["duration_s"] >= 0.3
    assert 0 < r["latency_ms_p50"] <= r["latency_ms_p90"] <= r["latency_ms_p99"]
    assert r["peak_rss_bytes"] > 10 * 2**20
    assert r["accuracy"] >= 0.95 and r["samples"] == 256
    assert len(m.manifest_sha256) == 64 and m.context["versions"]["ai-edge-litert"]


@pytest.mark.parametrize("name,runtime", [("executorch-fp32", "executorch"), ("tfjs-fp32", "tfjs-node")])
def test_other_runtimes_measure_too(artifacts, name, runtime):
    m = run_benchmark(resolve_request(artifacts[name], None, None, "host", 1, QUICK))
    assert m.status == "ok", m.error
    assert m.runtime == runtime and m.result["latency_ms_p50"] > 0 and m.result["accuracy"] >= 0.95


def test_reference_kernels_are_reported_as_cpu(artifacts):
    m = run_benchmark(resolve_request(artifacts["tflite-fp32"], None, "cpu", "host", 1, QUICK))
    assert m.status == "ok" and m.delegate_used == "cpu"


def test_duty_cycle_throttle_really_slows_the_worker(artifacts):
    profile = PROFILES.get("pixel-3a-1t")
    base = resolve_request(artifacts["tflite-fp32"], None, None, "pixel-3a-1t", 1, QUICK)
    fast = run_benchmark(base)
    slow = run_benchmark(dataclasses.replace(base, active_fraction=0.2))
    assert fast.kind == slow.kind == "emulated" and profile.anchor is not None
    assert slow.result["latency_ms_mean"] > 2 * fast.result["latency_ms_mean"]
    # a digits inference (microseconds) fits inside one active slice; samples spanning 10 periods see the stops
    assert slow.result["latency_ms_p50"] > 2 * fast.result["latency_ms_p50"]
    assert slow.result["protocol"]["min_sample_ms"] == 100.0 and fast.result["protocol"]["min_sample_ms"] == 0.0
    assert slow.result["inferences"] > slow.result["runs"]


def test_memory_cap_kills_the_worker_and_is_recorded(artifacts):
    tiny = dataclasses.replace(PROFILES.get("rpi3"), name="tiny", memory_mb=64)
    request = BenchRequest(artifacts["executorch-fp32"], "executorch", "xnnpack", 1, tiny, QUICK)
    m = run_benchmark(request)
    assert m.status == "failed" and "worker killed by the 64 MiB memory cap of profile tiny" in m.error
    assert f"its process tree reached {m.context['monitor_peak_rss_bytes'] / 2**20:.0f} MiB" in m.error
    assert m.context["monitor_peak_rss_bytes"] > 64 * 2**20 and m.context["monitor_peak_by_process"]


def test_timeout_is_a_recorded_failure(artifacts):
    request = dataclasses.replace(resolve_request(artifacts["tflite-fp32"], None, None, "host", 1, QUICK), timeout_s=0.2)
    m = run_benchmark(request)
    assert m.status == "failed" and "timed out" in m.error


def test_corrupt_model_is_a_recorded_failure(artifacts, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(artifacts["tflite-fp32"], broken)
    model = broken / "model.tflite"
    model.write_bytes(model.read_bytes()[:500])
    m = run_benchmark(resolve_request(broken, None, None, "host", 1, QUICK))
    assert m.status == "failed" and "truncated, corrupt" in m.error


def test_impossible_requests_fail_before_any_work(artifacts, tmp_path):
    with pytest.raises(UnknownNameError, match="Available: cpu, gpu, xnnpack"):
        resolve_request(artifacts["tflite-fp32"], None, "xnnpak", "host", 1, QUICK)
    with pytest.raises(UnknownNameError, match="Unknown device profile 'rpi5'"):
        resolve_request(artifacts["tflite-fp32"], None, None, "rpi5", 1, QUICK)
    with pytest.raises(ConfigError, match="cannot run a tflite artifact"):
        resolve_request(artifacts["tflite-fp32"], "executorch", None, "host", 1, QUICK)
    no_data = tmp_path / "no-data"
    shutil.copytree(artifacts["tflite-fp32"], no_data)
    manifest = (no_data / "manifest.json").read_text().replace('"eval_data"', '"eval_data_removed"')
    (no_data / "manifest.json").write_text(manifest)
    with pytest.raises(DataError, match="no eval.npz"):
        resolve_request(no_data, None, None, "host", 1, QUICK)


@pytest.mark.parametrize("name,model,runtime", [("tflite-int8", "model.tflite", "litert"),
                                                ("executorch-fp32", "model.pte", "executorch"),
                                                ("tfjs-fp32", "model.json", "tfjs-node")])
def test_a_bare_model_file_runs_on_synthetic_inputs_and_says_so(artifacts, tmp_path, name, model, runtime):
    from pipeline.core.files import sha256_file

    folder = tmp_path / "bare"
    shutil.copytree(artifacts[name], folder, ignore=shutil.ignore_patterns("manifest.json", "eval.npz"))
    request = resolve_request(folder / model, None, None, "host", 1, QUICK)
    assert request.runtime == runtime and request.inputs == "synthetic"
    m = run_benchmark(dataclasses.replace(request, log_file=tmp_path / "worker.log"))
    assert m.status == "ok", m.error
    assert m.artifact_dir == str(folder / model) and m.manifest_sha256 == sha256_file(folder / model)
    assert m.context["inputs"] == "synthetic" and m.context["manifest"] is None
    assert m.result["inputs"] == "synthetic" and m.result["accuracy"] is None
    signature, = m.result["input_signature"]  # one per input
    assert signature["shape"][1:] in ([1, 8, 8], [8, 8, 1]) and m.result["latency_ms_p50"] > 0
    assert signature["synthetic_values"].startswith("uniform floats in [")
    assert (tmp_path / "worker.log").is_file()  # the worker's stderr, not the terminal


def test_a_bare_model_file_runs_on_a_users_npz(artifacts, tmp_path):
    import numpy as np

    folder = tmp_path / "bare"
    shutil.copytree(artifacts["tflite-fp32"], folder)
    (folder / "manifest.json").unlink()
    m = run_benchmark(resolve_request(folder / "model.tflite", None, None, "host", 1, QUICK, inputs=folder / "eval.npz"))
    assert m.status == "ok", m.error
    assert m.context["inputs"] == str(folder / "eval.npz") and m.result["accuracy"] >= 0.95
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 28, 28), np.float32))
    wrong = run_benchmark(resolve_request(folder / "model.tflite", None, None, "host", 1, QUICK,
                                          inputs=tmp_path / "wrong.npz"))
    assert wrong.status == "failed" and "wrong.npz has samples of shape [28, 28]" in wrong.error


def test_what_is_not_a_model_file_is_refused_before_any_work(artifacts, tmp_path):
    from pipeline.core.errors import ArtifactError

    (tmp_path / "model.h5").write_bytes(b"hdf5")
    with pytest.raises(ArtifactError, match="takes artifact directories and .tflite, .pte, .onnx and TF.js model.json"):
        resolve_request(tmp_path / "model.h5", None, None, "host", 1, QUICK)
    with pytest.raises(ArtifactError, match="does not exist"):
        resolve_request(tmp_path / "absent.tflite", None, None, "host", 1, QUICK)
    with pytest.raises(DataError, match="Input file .*absent.npz does not exist"):
        resolve_request(artifacts["tflite-fp32"], None, None, "host", 1, QUICK, inputs=tmp_path / "absent.npz")


def test_synthetic_inputs_follow_the_signature_and_are_seeded():
    import numpy as np

    from device_runtime.inputs import InputSignature, quantized_range, synthetic_inputs

    signature = InputSignature("x", (1, 3, 4, 4), "int8", quantized_range(np.int8, (0.5, -128)), quantized=True)
    assert signature.value_range == (0.0, 127.5)
    x = synthetic_inputs([signature], Path("m.tflite"), samples=5)["x"]
    assert x.shape == (5, 3, 4, 4) and x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 127.5
    assert np.array_equal(x, synthetic_inputs([signature], Path("m.tflite"), samples=5)["x"])
    assert quantized_range(np.float32, (0.0, 0)) is None
    with pytest.raises(DataError, match="leaves dimensions \\[2\\] of input 'x' open"):
        synthetic_inputs([InputSignature("x", (1, 3, None), "float32")], Path("m.tflite"))


def test_threads_requested_and_granted_are_recorded_and_printed(artifacts, capsys):
    from pipeline.bench import print_measurements

    many = dataclasses.replace(PROFILES.get("rpi4"), name="many-cores", cores=512, threads=512)
    request = BenchRequest(artifacts["tflite-fp32"], "litert", "gpu", 512, many, QUICK)  # no gpu: answered at once
    m = run_benchmark(request)
    granted = len(many.usable_cores())
    assert m.status == "unavailable" and granted < 512
    assert m.context["threads"] == {"requested": 512, "granted": granted, "host_cores": os.cpu_count(),
                                    "profile_cores": 512}
    print_measurements([m], as_json=False)
    assert f"threads 512 requested, {granted} granted" in capsys.readouterr().out


@pytest.mark.slow
def test_tfjs_node_samples_span_the_throttle(artifacts):
    base = resolve_request(artifacts["tfjs-fp32"], "tfjs-node", "wasm", "host", 1, QUICK)
    throttled = dataclasses.replace(base, active_fraction=0.5)
    m = run_benchmark(throttled)
    assert m.status == "ok", m.error
    span = throttled_protocol(throttled).min_sample_ms
    assert span > 0 and m.result["protocol"]["min_sample_ms"] == span and m.result["inferences"] > m.result["runs"]
    assert m.context["throttle_applied"] is True and m.result["unsteady"] in (True, False)


@pytest.mark.slow
@pytest.mark.browser
def test_chromium_is_throttled_through_devtools(artifacts):
    base = resolve_request(artifacts["tfjs-fp32"], "tfjs-browser", "wasm", "host", 1, QUICK)
    fast = run_benchmark(base)
    throttled = dataclasses.replace(base, active_fraction=0.25)
    slow = run_benchmark(throttled)
    assert fast.status == slow.status == "ok", (fast.error, slow.error)
    assert fast.context["throttle_applied"] is False and fast.context.get("cpu_throttle") is None
    throttle = slow.context["cpu_throttle"]
    assert slow.context["throttle_applied"] is True and throttle["rate"] == 4.0
    assert slow.context["throttle_mechanism"] == throttle["mechanism"] == "devtools Emulation.setCPUThrottlingRate"
    assert "main thread" in throttle["slows"] and throttle["does_not_slow"]
    span = throttled_protocol(throttled).min_sample_ms
    assert span > 0 and slow.result["protocol"]["min_sample_ms"] == span and slow.result["inferences"] > slow.result["runs"]
    assert slow.result["latency_ms_p50"] > 2 * fast.result["latency_ms_p50"]
    assert slow.context["monitor_peak_by_process"].get("chromium renderer (PSS)", 0) > 0  # the browser is in the tree
