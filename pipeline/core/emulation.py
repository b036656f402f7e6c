"""How far an emulated figure can be trusted: the calibration status of a row, the emulation-accuracy table,
and why int8 can be slower than fp32 on this host.

Pure functions on the records `pipeline.calibration` keeps in WORKSPACE/calibration.json
(`{profile: {precision: record}}`) and `pipeline.calibration_checks` in WORKSPACE/calibration-checks.json
(`{profile: [check, ...]}`); the CLI, the sweep, the report and the app all word a status the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

CALIBRATION_FILE = "calibration.json"
CHECKS_FILE = "calibration-checks.json"
PRECISIONS = ("fp32", "int8", "fp16")
TOLERANCE = 0.10  # pipeline.calibration.CALIBRATION_TOLERANCE; only read for records written without a status
CALIBRATED, UNCALIBRATED, NOT_YET, MEASURED = "calibrated", "uncalibrated", "not calibrated yet", "measured"


@dataclass(frozen=True)
class CalibrationStatus:
    """One row's (or one profile/precision's) calibration: status, signed anchor error and why."""

    status: str  # CALIBRATED, UNCALIBRATED, NOT_YET or MEASURED
    error: float | None = None  # (emulated - published) / published of the anchor
    reason: str = ""
    precision: str = ""
    calibrated_from: str = ""

    @property
    def flagged(self) -> bool:
        """True where an emulated figure must carry the 'uncalibrated' badge."""
        return self.status in (UNCALIBRATED, NOT_YET)

    def error_text(self) -> str:
        """'+3.2%' (one decimal under 10%, whole percent above); '' without an error."""
        if self.error is None:
            return ""
        return f"{self.error:+.1%}" if abs(self.error) < 0.1 else f"{self.error:+.0%}"

    @property
    def borrowed(self) -> bool:
        """True where another precision's anchor set the throttle (no published figure for this precision)."""
        return bool(self.precision and self.calibrated_from and self.calibrated_from != self.precision)

    def text(self, reason: bool = True) -> str:
        """'calibrated (+3.2%)', 'uncalibrated (-41%: reason)', 'calibrated from fp32 (+1.5%: reason)',
        'not calibrated yet', 'measured'; without the reason when `reason` is False."""
        status = f"{self.status} from {self.calibrated_from}" if self.borrowed else self.status
        details = ": ".join(part for part in (self.error_text(), self.reason if reason else "") if part)
        return f"{status} ({details})" if details else status


def status_of(record: dict[str, Any] | None, precision: str = "") -> CalibrationStatus:
    """The status of a calibration record (None: not calibrated yet)."""
    if not record:
        return CalibrationStatus(NOT_YET, precision=precision)
    error = record.get("prediction_error")
    status = record.get("status") or (CALIBRATED if error is not None and abs(error) <= TOLERANCE else UNCALIBRATED)
    source = record.get("calibrated_from") or record.get("precision") or "fp32"
    precision = record.get("precision") or precision or "fp32"
    reason = record.get("reason") or ""
    if not reason and status != CALIBRATED and error is not None:
        reason = f"anchor off by more than {TOLERANCE:.0%}"
    return CalibrationStatus(status, error, reason, precision, source)


def row_status(kind: str, context: dict[str, Any]) -> CalibrationStatus:
    """The status a measurement row carries: 'measured' for a measured row, else its context's calibration."""
    if not kind.startswith("emulated"):
        return CalibrationStatus(MEASURED)
    record = context.get("calibration")
    if not record:
        return CalibrationStatus(UNCALIBRATED, reason="no calibration stored with this measurement: the throttle "
                                 "was not calibrated against a published figure")
    return status_of(record)


def read_calibrations(workspace: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """WORKSPACE/calibration.json as {profile: {precision: record}} ({} when absent or unreadable).

    A file from before per-precision calibration (one record per profile) reads as that profile's fp32 record.
    """
    stored = _read_json(Path(workspace) / CALIBRATION_FILE)
    if not isinstance(stored, dict):
        return {}
    return {profile: ({"fp32": value} if "profile" in value else value) for profile, value in stored.items()
            if isinstance(value, dict)}


def read_checks(workspace: Path) -> dict[str, list[dict[str, Any]]]:
    """WORKSPACE/calibration-checks.json as {profile: [check, ...]} ({} when absent or unreadable)."""
    stored = _read_json(Path(workspace) / CHECKS_FILE)
    return {k: v for k, v in stored.items() if isinstance(v, list)} if isinstance(stored, dict) else {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stored_status(calibrations: dict[str, dict[str, dict[str, Any]]], profile: str, precision: str, host: str,
                  published_ms: float | None = None) -> CalibrationStatus:
    """The stored calibration of (profile, precision) on `host`; 'not calibrated yet' when there is none for this
    host, or when it was made against another published figure than the profile's anchor now."""
    record = calibrations.get(profile, {}).get(precision)
    if record is None:
        return CalibrationStatus(NOT_YET, precision=precision)
    if "status" not in record:
        return CalibrationStatus(NOT_YET, reason="calibrated by an older version", precision=precision)
    if record.get("host") != host:
        return CalibrationStatus(NOT_YET, reason="calibrated on another host", precision=precision)
    if published_ms is not None and record.get("published_ms") != published_ms:
        return CalibrationStatus(NOT_YET, reason="the anchor's published figure changed", precision=precision)
    return status_of(record, precision)


def profile_status(calibrations: dict[str, dict[str, dict[str, Any]]], profile: Any, precision: str,
                   host: str) -> CalibrationStatus:
    """The stored status of a `device_runtime.profiles.DeviceProfile` at `precision` on `host`, as
    `pipeline.calibration.calibration_for` would use it: a precision without a published figure borrows the fp32
    anchor's throttle, and says so; a profile without anchors runs unthrottled (measured)."""
    if not profile.anchors:
        return CalibrationStatus(MEASURED)
    anchor = profile.anchor_for(precision)
    if anchor is not None:
        return stored_status(calibrations, profile.name, precision, host, anchor.published_ms)
    base = stored_status(calibrations, profile.name, "fp32", host, profile.anchor.published_ms)
    if base.status == NOT_YET:
        return base
    return replace(base, precision=precision, calibrated_from="fp32",
                   reason=f"no published {precision} figure for this device class: the fp32 throttle is used, so "
                          f"{precision} runs at this host's {precision}/fp32 speed ratio, not the device's")


def accuracy_rows(calibrations: dict[str, dict[str, dict[str, Any]]],
                  checks: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The emulation-accuracy table: each profile/precision's anchor error, then its second-point check errors."""
    rows = []
    for profile in sorted(set(calibrations) | set(checks)):
        for precision, record in sorted(calibrations.get(profile, {}).items(), key=lambda kv: _order(kv[0])):
            status = status_of(record, precision)
            rows.append({"profile": profile, "precision": precision, "point": "anchor",
                         "model": record.get("anchor_model", "?"), "runtime": record.get("runtime", "litert/xnnpack"),
                         "published_ms": record.get("published_ms"), "emulated_ms": record.get("emulated_ms"),
                         "error": record.get("prediction_error"), "status": status.text(),
                         "flagged": status.flagged, "host": record.get("host", "?")})
        # `pipeline devices --check` results, else the checks measured while calibrating
        points = checks.get(profile) or [{**check, "host": record.get("host")} for record in
                                         calibrations.get(profile, {}).values() for check in record.get("checks", [])]
        for check in sorted(points, key=lambda c: (_order(c.get("precision", "")), c.get("model", ""))):
            error = check.get("prediction_error", check.get("error"))
            rows.append({"profile": profile, "precision": check.get("precision", "?"), "point": "check",
                         "model": check.get("model", "?"), "runtime": check.get("runtime", "litert/xnnpack"),
                         "published_ms": check.get("published_ms"), "emulated_ms": check.get("emulated_ms"),
                         "error": error, "status": check.get("error_message") or check_status(error),
                         "flagged": error is None or abs(error) > TOLERANCE, "host": check.get("host", "?")})
    return rows


def check_status(error: float | None) -> str:
    """A second-point check's verdict: 'within 10%' or 'off by more than 10%'."""
    if error is None:
        return "did not run"
    return f"within {TOLERANCE:.0%}" if abs(error) <= TOLERANCE else f"off by more than {TOLERANCE:.0%}"


def _order(precision: str) -> int:
    return PRECISIONS.index(precision) if precision in PRECISIONS else len(PRECISIONS)


def int8_slowdown_reason(features: dict[str, Any] | None) -> str:
    """Why int8 kernels can lose to float on the host that `pipeline.core.host.int8_features()` described.

    E.g. 'x86_64 AVX2 without an int8 dot product (VNNI/AMX)'.
    """
    if not features:
        return "the host's int8 CPU features were not recorded with this measurement"
    machine = str(features.get("machine") or "this CPU")
    vector = ", ".join(features.get("vector") or []) or "no wide vectors"
    dot = ", ".join(features.get("int8_dot_product") or [])
    if dot:
        return (f"{machine} {vector} with an int8 dot product ({dot}), so the int8 kernels themselves are not the "
                "cause: look for quantize/dequantize ops or ops off the delegate")
    missing = "dotprod/i8mm" if machine.startswith(("arm", "aarch")) else "VNNI/AMX"
    return f"{machine} {vector} without an int8 dot product ({missing})"
