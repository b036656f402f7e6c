"""`pipeline devices`: the profiles with their calibration status per precision on this host, `--calibrate`
and `--check` (the second published points run under the calibrated profile)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.core.emulation import (
    MEASURED,
    UNCALIBRATED,
    CalibrationStatus,
    profile_status,
    read_calibrations,
    status_of,
)
from pipeline.core.table import format_table

SHOWN_PRECISIONS = ("fp32", "int8")  # always listed; fp16 where a profile has an fp16 anchor or calibration


def precisions_of(profile: Any, calibrations: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """fp32 and int8 (every profile runs both), then any other precision anchored or calibrated for it."""
    extra = {a.precision for a in profile.anchors} | set(calibrations.get(profile.name, {}))
    return [*SHOWN_PRECISIONS, *sorted(extra - set(SHOWN_PRECISIONS))]


def profile_statuses(profile: Any, calibrations: dict[str, dict[str, dict[str, Any]]], host: str,
                     precisions: list[str]) -> dict[str, CalibrationStatus]:
    """Each precision's stored status on `host` (pipeline.core.emulation.profile_status)."""
    return {precision: profile_status(calibrations, profile, precision, host) for precision in precisions}


def status_cell(status: CalibrationStatus) -> str:
    """The table cell: the status and error, uncalibrated ones marked so they cannot be missed (reasons are
    printed under the table)."""
    if status.status == MEASURED:
        return "measured (no throttle)"
    return f"!! {status.text(reason=False).upper()}" if status.status == UNCALIBRATED else status.text(reason=False)


def list_devices(workspace: Path, host: str, as_json: bool) -> tuple[str | list[dict[str, Any]], list[str]]:
    """(the table or the JSON records, warning lines for every uncalibrated profile/precision)."""
    from device_runtime.profiles import PROFILES

    calibrations = read_calibrations(workspace)
    others = {p for _, profile in PROFILES.items() for p in precisions_of(profile, calibrations)} - set(SHOWN_PRECISIONS)
    precisions = [*SHOWN_PRECISIONS, *sorted(others)]
    records, rows, warnings, borrowed = [], [], [], []
    for _, profile in PROFILES.items():
        statuses = profile_statuses(profile, calibrations, host, precisions_of(profile, calibrations))
        records.append({**profile.to_json(), "calibration": {
            p: {"status": s.status, "prediction_error": s.error, "reason": s.reason, "calibrated_from": s.calibrated_from,
                "text": s.text()}
            for p, s in statuses.items()}})
        anchors = ", ".join(f"{a.precision} {a.published_ms:g} ms ({a.threads}t)" for a in profile.anchors) or "-"
        rows.append((profile.name, profile.cores, profile.threads, profile.memory_mb or "-", ", ".join(profile.delegates),
                     *(status_cell(statuses[p]) if p in statuses else "-" for p in precisions), anchors))
        warnings += [f"{profile.name} {p}: {s.text()}" for p, s in statuses.items() if s.status == UNCALIBRATED]
        borrowed += [f"{profile.name} {p}: {s.reason}" for p, s in statuses.items()
                     if s.borrowed and s.status != UNCALIBRATED]
    if as_json:
        return records, warnings
    table = format_table(["profile", "cores", "threads", "memory MiB", "delegates", *precisions, "anchors"], rows)
    notes = ["", "Calibrated from another precision's anchor:", *(f"  {line}" for line in borrowed)] if borrowed else []
    return "\n".join([table, *notes]), warnings


def warning_lines(warnings: list[str]) -> list[str]:
    """The block printed under the table when any profile/precision is uncalibrated."""
    if not warnings:
        return []
    return ["", f"WARNING: {len(warnings)} profile/precision pair(s) are UNCALIBRATED on this host: their emulated "
            "figures are off by more than 10% and carry an 'uncalibrated' badge in the report and the app.",
            *(f"  !! {line}" for line in warnings),
            "Re-run `pipeline devices --calibrate PROFILE` on an idle machine, or read the reason above."]


def uncalibrated(records: list[dict[str, Any]]) -> list[str]:
    """'profile precision: status' of every uncalibrated calibration record."""
    return [f"{r['profile']} {r.get('precision', 'fp32')}: {status_of(r).text()}" for r in records
            if status_of(r).status == UNCALIBRATED]


def calibration_rows(records: list[dict[str, Any]]) -> str:
    """The table `--calibrate` prints: one row per profile and precision."""
    return format_table(
        ["profile", "precision", "from", "published ms", "host ms", "run share", "emulated ms", "threads", "status"],
        [(r["profile"], r.get("precision", "fp32"), r.get("calibrated_from", r.get("precision", "fp32")), r["published_ms"],
          r["host_ms"], r["active_fraction"], r["emulated_ms"], r["host_threads"], status_cell(status_of(r)))
         for r in records])


def check_rows(results: list[dict[str, Any]]) -> str:
    """The table `--check` prints: published ms, emulated ms and prediction error per check."""
    from pipeline.core.emulation import check_status

    return format_table(
        ["profile", "precision", "check model", "runtime", "threads", "published ms", "emulated ms", "error", "verdict"],
        [(r["profile"], r["precision"], r["model"], r["runtime"], f"{r['host_threads']} (device {r['device_threads']})",
          r["published_ms"], r["emulated_ms"] if r["emulated_ms"] is not None else "-",
          f"{r['prediction_error']:+.1%}" if r["prediction_error"] is not None else "-",
          r["error_message"] or check_status(r["prediction_error"])) for r in results])


def run_device_checks(workspace: Path, names: list[str], out: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run the checks of `names` (every profile with checks when empty); returns every check's record."""
    from device_runtime.profiles import PROFILES
    from pipeline.calibration_checks import run_checks

    profiles = [PROFILES.get(name) for name in names] if names else [p for _, p in PROFILES.items() if p.checks]
    results = []
    for profile in profiles:
        if not profile.checks:
            out(f"{profile.name}: no published check points (nothing to check)")
            continue
        results += run_checks(workspace, profile, out)
    return results
