"""Calibrate a profile's CPU throttle on this host against the published anchor latency.

fraction = host_ms / published_ms (the share of wall time the worker may run), then the
anchor is re-measured under that throttle and the prediction error is reported.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.profiles import DeviceProfile
from pipeline.core.errors import ConfigError

ANCHOR_SAMPLES = 8
CALIBRATION_PROTOCOL = Protocol(warmup_runs=5, min_runs=30, min_duration_s=1.5)


def host_key() -> str:
    """Identifies the host CPU, so a calibration is never reused on a different machine."""
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    import os

    return f"{model} x{len(os.sched_getaffinity(0))}"


def anchor_artifact(workspace: Path) -> Path:
    """MobileNet v2 1.0 224 fp32 as .tflite (random weights, as in XNNPACK's published benchmark)."""
    out = workspace / "anchors" / "mobilenet_v2_1.0_224-tflite"
    if (out / "manifest.json").is_file():
        return out
    import keras
    import numpy as np

    from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
    from pipeline.core.datasets import Dataset
    from pipeline.export import export_bundle
    from quantize import quantization_config

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, weights=None)
    inputs = np.random.default_rng(0).random((ANCHOR_SAMPLES, 224, 224, 3), dtype=np.float32)
    bundle = ModelBundle(
        framework="keras", model=model, inputs=(TensorSpec("input", (None, 224, 224, 3)),),
        source=SourceInfo("keras", "keras.applications", "keras.applications.MobileNetV2(alpha=1.0, weights=None)", ""),
        eval_data=Dataset("random-uniform", inputs, None, "NHWC"),
    )
    export_bundle(bundle, "tflite", quantization_config("none"), out, run_validation=False)
    return out


def _anchor_p50(workspace: Path, profile: DeviceProfile, threads: int, fraction: float) -> float:
    from device_runtime.harness import BenchRequest, run_benchmark

    request = BenchRequest(anchor_artifact(workspace), "litert", "xnnpack", threads, profile,
                           CALIBRATION_PROTOCOL, active_fraction=fraction)
    measurement = run_benchmark(request)
    if measurement.status != "ok":
        raise ConfigError(f"Calibrating {profile.name} failed: the anchor model did not run ({measurement.error}).")
    return float(measurement.result["latency_ms_p50"])


def calibrate(workspace: Path, profile: DeviceProfile) -> dict[str, Any]:
    """Measure the anchor unthrottled and throttled under `profile`; returns the calibration record."""
    if profile.anchor is None:
        raise ConfigError(f"Profile {profile.name} has no anchor model, so it has no throttle to calibrate.")
    threads = min(profile.anchor.threads, len(profile.usable_cores()))
    unthrottled = replace(profile, memory_mb=None)
    host_ms = _anchor_p50(workspace, unthrottled, threads, 1.0)
    fraction = min(1.0, host_ms / profile.anchor.published_ms)
    emulated_ms = _anchor_p50(workspace, unthrottled, threads, fraction)
    if fraction < 1.0:  # one correction step for the stop/continue overhead the first guess ignores
        fraction = min(1.0, fraction * emulated_ms / profile.anchor.published_ms)
        emulated_ms = _anchor_p50(workspace, unthrottled, threads, fraction)
    return {
        "profile": profile.name, "host": host_key(), "calibrated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "anchor_model": profile.anchor.model, "anchor_source": profile.anchor.source,
        "published_ms": profile.anchor.published_ms, "device_threads": profile.anchor.threads, "host_threads": threads,
        "host_ms": round(host_ms, 3), "active_fraction": round(fraction, 4), "emulated_ms": round(emulated_ms, 3),
        "prediction_error": round((emulated_ms - profile.anchor.published_ms) / profile.anchor.published_ms, 4),
        "note": "host faster than device: throttled" if fraction < 1 else "host slower than the device: no throttle possible",
    }


def calibration_for(workspace: Path, profile: DeviceProfile, refresh: bool = False) -> dict[str, Any] | None:
    """The stored calibration of `profile` on this host, calibrating first when missing or stale."""
    if profile.anchor is None:
        return None
    path = workspace / "calibration.json"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    record = stored.get(profile.name)
    if refresh or record is None or record.get("host") != host_key() or record.get("published_ms") != profile.anchor.published_ms:
        from pipeline.core.files import write_json_atomic

        record = calibrate(workspace, profile)
        stored[profile.name] = record
        write_json_atomic(path, stored)
    return record
