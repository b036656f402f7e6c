"""Check a calibrated profile against its second published points (`DeviceProfile.checks`).

Each check model runs through the normal harness under the profile and the active fraction calibrated for
its precision; published ms, emulated ms and the signed prediction error are kept in
WORKSPACE/calibration-checks.json (`{profile: [check, ...]}`), which the report's emulation-accuracy table reads.
A check never changes a calibration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device_runtime.profiles import Anchor, DeviceProfile
from pipeline.core.emulation import CHECKS_FILE, read_checks, status_of
from pipeline.core.errors import ConfigError

RUNTIME, DELEGATE = "litert", "xnnpack"  # the runtime the published points were measured with (XNNPACK)


def run_check(workspace: Path, profile: DeviceProfile, check: Anchor) -> dict[str, Any]:
    """Run one check under the profile calibrated for its precision; the check's record (error_message set
    instead of emulated_ms when it could not run)."""
    from device_runtime.harness import BenchRequest, run_benchmark
    from pipeline.calibration import CALIBRATION_PROTOCOL, anchor_artifact, calibration_for, host_key
    from pipeline.core.errors import PipelineError

    threads = min(check.threads, len(profile.usable_cores()))
    record: dict[str, Any] = {
        "profile": profile.name, "precision": check.precision, "model": check.model, "source": check.source,
        "published_ms": check.published_ms, "device_threads": check.threads, "host_threads": threads,
        "runtime": f"{RUNTIME}/{DELEGATE}", "host": host_key(),
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "emulated_ms": None, "prediction_error": None, "error_message": None,
    }
    try:
        calibration = calibration_for(workspace, profile, check.precision)
        if calibration is None:
            raise ConfigError(f"Profile {profile.name} has no anchor, so there is no calibration to check.")
        status = status_of(calibration, check.precision)
        record.update(calibration_status=status.status, calibration_error=status.error,
                      calibrated_from=status.calibrated_from, active_fraction=calibration["active_fraction"])
        request = BenchRequest(anchor_artifact(workspace, check.model, check.precision), RUNTIME, DELEGATE, threads, profile,
                               CALIBRATION_PROTOCOL, active_fraction=calibration["active_fraction"],
                               calibration=calibration)
        measurement = run_benchmark(request)
    except PipelineError as exc:
        return {**record, "error_message": str(exc)}
    if measurement.status != "ok":
        return {**record, "error_message": f"{measurement.status}: {measurement.error}"}
    emulated = float(measurement.result["latency_ms_p50"])
    return {**record, "emulated_ms": round(emulated, 3),
            "prediction_error": round((emulated - check.published_ms) / check.published_ms, 4)}


def run_checks(workspace: Path, profile: DeviceProfile, out: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every check of `profile` and store them (replacing the profile's earlier checks)."""
    results = []
    for check in profile.checks:
        out(f"check {profile.name} {check.precision}: {check.model} ({check.threads} thread(s) on the device)")
        results.append(run_check(workspace, profile, check))
    save_checks(workspace, profile.name, results)
    return results


def save_checks(workspace: Path, profile: str, results: list[dict[str, Any]]) -> Path:
    """Write `results` as the checks of `profile` into WORKSPACE/calibration-checks.json."""
    from pipeline.core.files import write_json_atomic

    stored = read_checks(workspace)
    stored[profile] = results
    path = Path(workspace) / CHECKS_FILE
    write_json_atomic(path, stored)
    return path
