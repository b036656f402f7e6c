"""The isolated benchmark worker: real measurements, emulated devices, and failures that are recorded, not raised."""

import dataclasses
import shutil

import pytest

from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.harness import BenchRequest, resolve_request, run_benchmark
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
    assert slow.result["protocol"]["min_sample_ms"] == 40.0 and fast.result["protocol"]["min_sample_ms"] == 0.0
    assert slow.result["inferences"] > slow.result["runs"]


def test_memory_cap_kills_the_worker_and_is_recorded(artifacts):
    tiny = dataclasses.replace(PROFILES.get("rpi3"), name="tiny", memory_mb=64)
    request = BenchRequest(artifacts["executorch-fp32"], "executorch", "xnnpack", 1, tiny, QUICK)
    m = run_benchmark(request)
    assert m.status == "failed" and "memory cap" in m.error


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
