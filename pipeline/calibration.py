"""Calibrate a profile's CPU throttle on this host, per precision, against the published anchor latency.

The anchor model is measured unthrottled, then the throttle's active fraction is searched (secant on
1/fraction, kept inside a bracket) re-measuring the anchor each time, until the emulated latency is within
`CALIBRATION_TOLERANCE` of the published one or `MAX_MEASUREMENTS` are spent. A precision whose device class
has no published figure uses the fp32 calibration and says so. `calibration.json` in the workspace holds
`{profile: {precision: record}}`, and `{"<profile>@tfjs-browser": {"fp32": record}}` for the DevTools rate that
throttles TF.js in Chromium (see `calibrate_browser`).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.profiles import (
    MOBILENET_V1,
    MOBILENET_V2,
    MOBILENET_V3_LARGE,
    PRECISIONS,
    Anchor,
    DeviceProfile,
)
from device_runtime.tfjs_browser import CPU_THROTTLE
from device_runtime.throttle import NO_THROTTLE, throttle_mechanism
from pipeline.core.errors import ConfigError

RECORD_VERSION = 2
CALIBRATION_TOLERANCE = 0.10
MAX_MEASUREMENTS = 6  # the unthrottled one included
MIN_FRACTION = 0.02
ANCHOR_SAMPLES = 8
CALIBRATION_PROTOCOL = Protocol(warmup_runs=5, min_runs=30, min_duration_s=1.5)
INT8_MODES = ("int8", "qat-int8", "dynamic-int8")


def precision_of(manifest: dict[str, Any] | None) -> str:
    """The arithmetic an artifact runs in: 'int8' (static, QAT or dynamic int8, pruned or not), 'fp16', else 'fp32'."""
    modes = [(stage.get("config") or {}).get("mode") for stage in (manifest or {}).get("stages") or []
             if isinstance(stage, dict)]
    if any(mode in INT8_MODES for mode in modes):
        return "int8"
    return "fp16" if "fp16" in modes else "fp32"


def host_key() -> str:
    """Identifies the host CPU, so a calibration is never reused on a different machine."""
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    return f"{model} x{len(os.sched_getaffinity(0))}"


# --- anchor models -----------------------------------------------------------------------------------------------

def _keras_model(model: str) -> Any:
    import keras

    shape = (224, 224, 3)
    builders = {
        MOBILENET_V1: lambda: keras.applications.MobileNet(input_shape=shape, alpha=1.0, weights=None),
        MOBILENET_V2: lambda: keras.applications.MobileNetV2(input_shape=shape, alpha=1.0, weights=None),
        MOBILENET_V3_LARGE: lambda: keras.applications.MobileNetV3Large(input_shape=shape, alpha=1.0, weights=None,
                                                                        include_preprocessing=False),
    }
    if model not in builders:
        raise ConfigError(f"No anchor model builder for {model!r}; known: {', '.join(builders)}.")
    keras.utils.set_random_seed(0)
    return builders[model]()


def anchor_artifact(workspace: Path, model: str = MOBILENET_V2, precision: str = "fp32", target: str = "tflite") -> Path:
    """`model` as a `target` artifact (.tflite, or a TF.js graph model for the browser's calibration) at `precision`
    (random weights, as in XNNPACK's published benchmark), built once.

    int8 is static full-integer quantization through the project's exporter, calibrated on the random inputs.
    """
    slug = model.lower().replace(" ", "_")
    out = workspace / "anchors" / (f"{slug}-{target}" if precision == "fp32" else f"{slug}-{precision}-{target}")
    if (out / "manifest.json").is_file():
        return out
    import numpy as np

    from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
    from pipeline.core.datasets import Dataset
    from pipeline.export import export_bundle
    from quantize import quantization_config

    modes = {"fp32": ("none", {}), "int8": ("int8", {"calibration_samples": ANCHOR_SAMPLES})}
    if precision not in modes:
        raise ConfigError(f"No {precision} anchor artifact; anchors are built at {', '.join(modes)}.")
    inputs = np.random.default_rng(0).random((ANCHOR_SAMPLES, 224, 224, 3), dtype=np.float32)
    data = Dataset("random-uniform", inputs, None, "NHWC")
    bundle = ModelBundle(
        framework="keras", model=_keras_model(model), inputs=(TensorSpec("input", (None, 224, 224, 3)),),
        source=SourceInfo("keras", "keras.applications", f"{model} (keras.applications, weights=None)", ""),
        eval_data=data, calibration_data=data,
    )
    mode, options = modes[precision]
    export_bundle(bundle, target, quantization_config(mode, **options), out, run_validation=False)
    return out


def _measure(workspace: Path, profile: DeviceProfile, anchor: Anchor, threads: int,
             fraction: float) -> tuple[float, str]:
    """The anchor's p50 (ms) on `threads` threads under `fraction`, and the throttle mechanism that ran."""
    from device_runtime.harness import BenchRequest, run_benchmark

    request = BenchRequest(anchor_artifact(workspace, anchor.model, anchor.precision), "litert", "xnnpack", threads,
                           replace(profile, memory_mb=None), CALIBRATION_PROTOCOL, active_fraction=fraction)
    measurement = run_benchmark(request)
    if measurement.status != "ok":
        raise ConfigError(f"Calibrating {profile.name}: {anchor.model} ({anchor.precision}) did not run "
                          f"({measurement.error}).")
    mechanism = measurement.context.get("throttle_mechanism") or throttle_mechanism(fraction)
    return float(measurement.result["latency_ms_p50"]), mechanism


# --- the search --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FractionSearch:
    """The outcome of `search_fraction`: every (fraction, p50 ms) measured, host first, and the one chosen."""

    points: tuple[tuple[float, float], ...]
    fraction: float
    emulated_ms: float
    error: float
    converged: bool
    why: str = ""

    @property
    def host_ms(self) -> float:
        return self.points[0][1]


def _next_fraction(points: list[tuple[float, float]], target: float, low: float, high: float) -> float:
    """Secant on latency against 1/fraction through the last two points, bisection when it leaves (low, high)."""
    (f1, l1), (f2, l2) = points[-2], points[-1]
    if l2 != l1:
        x = 1 / f2 + (target - l2) * (1 / f2 - 1 / f1) / (l2 - l1)
        if x > 0 and low < 1 / x < high:
            return 1 / x
    return (low + high) / 2


def search_fraction(measure: Callable[[float], float], published_ms: float,
                    tolerance: float = CALIBRATION_TOLERANCE, max_measurements: int = MAX_MEASUREMENTS,
                    min_fraction: float = MIN_FRACTION) -> FractionSearch:
    """Find the active fraction at which `measure(fraction)` (p50 ms) is within `tolerance` of `published_ms`.

    Latency falls as the fraction rises; (low, high) brackets the answer as measurements come in.
    """
    def error(ms: float) -> float:
        return (ms - published_ms) / published_ms

    host_ms = measure(1.0)
    points = [(1.0, host_ms)]
    if abs(error(host_ms)) <= tolerance or host_ms > published_ms:
        return FractionSearch(tuple(points), 1.0, host_ms, error(host_ms), abs(error(host_ms)) <= tolerance,
                              "" if abs(error(host_ms)) <= tolerance else "host slower than the device")
    low, high = min_fraction, 1.0
    fraction, why = host_ms / published_ms, ""
    while len(points) < max_measurements:
        if fraction < min_fraction:
            why = f"it needs a run share below {min_fraction:.0%}"
            break
        ms = measure(fraction)
        points.append((fraction, ms))
        if abs(error(ms)) <= tolerance:
            return FractionSearch(tuple(points), fraction, ms, error(ms), True)
        low, high = (max(low, fraction), high) if ms > published_ms else (low, min(high, fraction))
        if high - low < 0.002:
            why = "the latency jumps across the target between two almost equal run shares"
            break
        fraction = _next_fraction(points, published_ms, low, high)
    best = min(points[1:] or points, key=lambda point: abs(error(point[1])))
    return FractionSearch(tuple(points), best[0], best[1], error(best[1]), False,
                          why or f"no run share within ±{tolerance:.0%} in {len(points)} measurements")


# --- records -----------------------------------------------------------------------------------------------------

def _reason(search: FractionSearch, anchor: Anchor, host_threads: int, mechanism: str) -> str:
    if search.converged:
        return ""
    threads = (f"; the device runs {anchor.threads} threads, this host gives the worker {host_threads}"
               if host_threads < anchor.threads else "")
    if search.why == "host slower than the device":
        return (f"this host ({search.host_ms:.1f} ms on {host_threads} threads) is slower than the device "
                f"({anchor.published_ms:g} ms): a throttle can only slow it down{threads}")
    return (f"{search.why} (best {search.error:+.1%} at run share {search.fraction:.3f}); the {mechanism} throttle "
            f"cannot hold {anchor.published_ms:g} ms on this host{threads}")


def calibrate(workspace: Path, profile: DeviceProfile, precision: str = "fp32", checks: bool = True,
              measure: Callable[[float], float] | None = None) -> dict[str, Any]:
    """Search `profile`'s active fraction against its `precision` anchor; returns the calibration record.

    With `checks`, each published check point of that precision is measured once under the fraction found.
    `measure(fraction) -> p50 ms` replaces the real anchor measurement (to test the search itself).
    """
    anchor = profile.anchor_for(precision)
    if anchor is None:
        raise ConfigError(f"Profile {profile.name} has no {precision} anchor to calibrate against"
                          f"{'' if profile.anchors else ' (it has no throttle)'}.")
    threads = min(anchor.threads, len(profile.usable_cores()))
    mechanisms: list[str] = []

    def measured(fraction: float) -> float:
        ms, mechanism = _measure(workspace, profile, anchor, threads, fraction)
        mechanisms.append(mechanism)
        return ms

    search = search_fraction(measure or measured, anchor.published_ms)
    mechanism = throttle_mechanism(search.fraction) if measure else (
        mechanisms[[f for f, _ in search.points].index(search.fraction)])
    record = {
        "version": RECORD_VERSION, "profile": profile.name, "precision": precision, "calibrated_from": precision,
        "host": host_key(), "calibrated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "anchor_model": anchor.model, "anchor_source": anchor.source, "published_ms": anchor.published_ms,
        "device_threads": anchor.threads, "host_threads": threads, "host_ms": round(search.host_ms, 3),
        "active_fraction": round(search.fraction, 4), "emulated_ms": round(search.emulated_ms, 3),
        "prediction_error": round(search.error, 4), "iterations": len(search.points), "mechanism": mechanism,
        "status": "calibrated" if abs(search.error) <= CALIBRATION_TOLERANCE else "uncalibrated",
        "reason": _reason(search, anchor, threads, mechanism), "tolerance": CALIBRATION_TOLERANCE,
        "measurements": [{"active_fraction": round(f, 4), "p50_ms": round(ms, 3)} for f, ms in search.points],
    }
    if checks and measure is None and record["status"] == "calibrated":
        record["checks"] = check_points(workspace, profile, precision, search.fraction)
    return record


def check_points(workspace: Path, profile: DeviceProfile, precision: str, fraction: float) -> list[dict[str, Any]]:
    """Measure `profile`'s published check points of `precision` once each under `fraction` (never calibrated on)."""
    results = []
    for check in (c for c in profile.checks if c.precision == precision):
        threads = min(check.threads, len(profile.usable_cores()))
        ms, _ = _measure(workspace, profile, check, threads, fraction)
        results.append({"model": check.model, "precision": check.precision, "source": check.source,
                        "published_ms": check.published_ms, "emulated_ms": round(ms, 3),
                        "prediction_error": round((ms - check.published_ms) / check.published_ms, 4)})
    return results


def fallback_record(base: dict[str, Any], precision: str) -> dict[str, Any]:
    """`base` (the fp32 calibration) standing in for `precision`, whose device class has no published figure."""
    reason = (f"no published {precision} latency for the {base['profile']} device class: the fp32 anchor's "
              f"throttle is used, so {precision} runs at this host's {precision}/fp32 speed ratio, not the device's")
    if base.get("reason"):
        reason += f"; fp32: {base['reason']}"
    return {**base, "precision": precision, "calibrated_from": base["precision"], "reason": reason,
            "checks": [c for c in base.get("checks", []) if c["precision"] == precision]}


def _stale(record: dict[str, Any] | None, anchor: Anchor) -> bool:
    if record is None or record.get("version") != RECORD_VERSION or record.get("host") != host_key():
        return True
    if (record.get("anchor_model"), record.get("published_ms")) != (anchor.model, anchor.published_ms):
        return True
    return record.get("active_fraction", 1.0) < 1.0 and record.get("mechanism") != throttle_mechanism()


def calibration_for(workspace: Path, profile: DeviceProfile, precision: str = "fp32",
                    refresh: bool = False) -> dict[str, Any] | None:
    """The calibration of `profile` for `precision` on this host (None for a profile without a throttle).

    Calibrates first when missing, stale (another host, anchor or throttle mechanism) or `refresh`; a precision
    without a published anchor gets the fp32 calibration, marked `calibrated_from: fp32` with the reason.
    """
    if not profile.anchors:
        return None
    if precision not in PRECISIONS:
        raise ConfigError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    anchor = profile.anchor_for(precision)
    if anchor is None:
        return fallback_record(calibration_for(workspace, profile, "fp32", refresh), precision)
    from pipeline.core.files import lock_path, write_json_atomic
    from pipeline.core.locks import exclusive_lock

    path = workspace / "calibration.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock_path(path)):  # two processes never calibrate on top of each other
        stored = json.loads(path.read_text()) if path.is_file() else {}
        entry = stored.get(profile.name)
        if not isinstance(entry, dict) or "profile" in entry:  # the one-record-per-profile format of before
            entry = {}
        record = entry.get(precision)
        if refresh or _stale(record, anchor):
            record = calibrate(workspace, profile, precision)
            stored[profile.name] = {**entry, precision: record}
            write_json_atomic(path, stored)
    return record


def calibration_for_artifact(workspace: Path, profile: DeviceProfile, artifact: Path) -> dict[str, Any] | None:
    """The calibration for the precision `artifact` runs in (fp32 for a bare model file without a manifest)."""
    from pipeline.core.manifest import MANIFEST_FILE, read_manifest

    manifest = read_manifest(artifact) if (Path(artifact) / MANIFEST_FILE).is_file() else None
    record = calibration_for(workspace, profile, precision_of(manifest))
    if record is not None and _is_tfjs(Path(artifact), manifest):
        browser = stored_browser_calibration(workspace, profile)  # the page's own rate, where one is calibrated
        record = {**record, "browser": browser} if browser else record
    return record


def _is_tfjs(artifact: Path, manifest: dict[str, Any] | None) -> bool:
    from device_runtime.inputs import bare_model_target

    return (manifest or {}).get("target") == "tfjs" or (manifest is None and bare_model_target(artifact) == "tfjs")


# --- the browser's DevTools rate ----------------------------------------------------------------------------------
# TF.js in Chromium is slowed by DevTools (`Emulation.setCPUThrottlingRate`), not by the worker's throttle. Its rate is
# searched the same way, with the fp32 anchor exported to TF.js and run on the wasm backend: rate = 1 / run share.
# The published figure is XNNPACK native code, so a host whose browser is slower than the device stays uncalibrated.

BROWSER_RUNTIME, BROWSER_BACKEND = "tfjs-browser", "wasm"
BROWSER_PROTOCOL = Protocol(warmup_runs=3, min_runs=12, min_duration_s=1.0)


def browser_key(profile: DeviceProfile) -> str:
    """`profile`'s browser calibration key in calibration.json ('pixel-3a@tfjs-browser', holding {'fp32': record}):
    an entry of its own, so readers listing a profile's precisions never meet it."""
    return f"{profile.name}@{BROWSER_RUNTIME}"


def _measure_browser(workspace: Path, profile: DeviceProfile, anchor: Anchor, threads: int,
                     fraction: float) -> tuple[float, dict[str, Any]]:
    """The TF.js anchor's p50 (ms) in Chromium (wasm) at DevTools rate 1 / `fraction`, and the result row."""
    from device_runtime.harness import BenchRequest, run_benchmark
    from pipeline.core.errors import RuntimeUnavailableError

    page = replace(profile, memory_mb=None, delegates=(BROWSER_BACKEND,))
    request = BenchRequest(anchor_artifact(workspace, anchor.model, "fp32", "tfjs"), BROWSER_RUNTIME, BROWSER_BACKEND,
                           threads, page, BROWSER_PROTOCOL, active_fraction=fraction)
    measurement = run_benchmark(request)
    if measurement.status != "ok":
        error = (RuntimeUnavailableError if measurement.status == "unavailable" else ConfigError)
        raise error(f"Calibrating {profile.name} in the browser: {anchor.model} (TF.js, {BROWSER_BACKEND}) did not run "
                    f"({measurement.error}).")
    return float(measurement.result["latency_ms_p50"]), measurement.result


def _browser_reason(search: FractionSearch, anchor: Anchor, threads: int, browser: str) -> str:
    if search.why != "host slower than the device":
        return _reason(search, anchor, threads, CPU_THROTTLE)
    return (f"TF.js {BROWSER_BACKEND} in Chromium {browser} runs the anchor in {search.host_ms:.1f} ms on {threads} "
            f"thread(s) on this host, slower than the device's published figure ({anchor.published_ms:g} ms, XNNPACK "
            "native code): a throttle can only slow it down")


def calibrate_browser(workspace: Path, profile: DeviceProfile,
                      measure: Callable[[float], float] | None = None) -> dict[str, Any]:
    """Search `profile`'s DevTools CPU throttling rate against its fp32 anchor in Chromium; returns the record.

    The record has the fields of `calibrate`'s (active_fraction = 1 / rate) plus `runtime` and `cpu_throttling_rate`.
    `measure(fraction) -> p50 ms` replaces the browser measurement (to test the record itself).
    """
    anchor = profile.anchor
    if anchor is None:
        raise ConfigError(f"Profile {profile.name} has no fp32 anchor to calibrate the browser against (no throttle).")
    threads = min(anchor.threads, len(profile.usable_cores()))
    results: list[dict[str, Any]] = []

    def measured(fraction: float) -> float:
        ms, result = _measure_browser(workspace, profile, anchor, threads, fraction)
        results.append(result)
        return ms

    search = search_fraction(measure or measured, anchor.published_ms)
    browser = results[0].get("browser_version", "") if results else ""
    return {
        "version": RECORD_VERSION, "profile": profile.name, "precision": "fp32", "calibrated_from": "fp32",
        "runtime": f"{BROWSER_RUNTIME}/{BROWSER_BACKEND}", "browser_version": browser,
        "host": host_key(), "calibrated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "anchor_model": anchor.model, "anchor_source": anchor.source, "published_ms": anchor.published_ms,
        "device_threads": anchor.threads, "host_threads": threads, "host_ms": round(search.host_ms, 3),
        "active_fraction": round(search.fraction, 4), "cpu_throttling_rate": round(1 / search.fraction, 3),
        "emulated_ms": round(search.emulated_ms, 3), "prediction_error": round(search.error, 4),
        "iterations": len(search.points), "mechanism": CPU_THROTTLE if search.fraction < 1 else NO_THROTTLE,
        "status": "calibrated" if abs(search.error) <= CALIBRATION_TOLERANCE else "uncalibrated",
        "reason": "" if search.converged else _browser_reason(search, anchor, threads, browser),
        "tolerance": CALIBRATION_TOLERANCE,
        "measurements": [{"cpu_throttling_rate": round(1 / f, 3), "p50_ms": round(ms, 3)} for f, ms in search.points],
    }


def _browser_stale(record: dict[str, Any] | None, anchor: Anchor) -> bool:
    return (record is None or record.get("version") != RECORD_VERSION or record.get("host") != host_key()
            or (record.get("anchor_model"), record.get("published_ms")) != (anchor.model, anchor.published_ms))


def stored_browser_calibration(workspace: Path, profile: DeviceProfile) -> dict[str, Any] | None:
    """`profile`'s browser calibration as stored for this host and anchor, else None (nothing is measured)."""
    from pipeline.core.emulation import read_calibrations

    record = read_calibrations(workspace).get(browser_key(profile), {}).get("fp32")
    return None if profile.anchor is None or _browser_stale(record, profile.anchor) else record


def browser_calibration_for(workspace: Path, profile: DeviceProfile, refresh: bool = False) -> dict[str, Any] | None:
    """`profile`'s browser calibration on this host (None for a profile without a throttle); calibrates in Chromium
    first when missing, stale (another host or anchor) or `refresh`. RuntimeUnavailableError without a browser."""
    if profile.anchor is None:
        return None
    from pipeline.core.files import lock_path, write_json_atomic
    from pipeline.core.locks import exclusive_lock

    path = workspace / "calibration.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock_path(path)):
        stored = json.loads(path.read_text()) if path.is_file() else {}
        record = (stored.get(browser_key(profile)) or {}).get("fp32")
        if refresh or _browser_stale(record, profile.anchor):
            record = calibrate_browser(workspace, profile)
            stored[browser_key(profile)] = {"fp32": record}
            write_json_atomic(path, stored)
    return record
