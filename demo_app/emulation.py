"""How the app marks emulated figures: the calibration badge and error beside them, the warning over a table
with uncalibrated rows, and the int8-slower-than-fp32 notes (the report's wording, `pipeline.core.emulation`)."""

from __future__ import annotations

import json

import pandas as pd

from pipeline.core.emulation import MEASURED, NOT_YET, UNCALIBRATED, CalibrationStatus, row_status

FLAG = "\u26a0"
MEASURED_LABEL, CALIBRATED_LABEL, UNCALIBRATED_LABEL = "measured", "emulated (calibrated)", "emulated, UNCALIBRATED"
EMULATION_ORDER = (MEASURED_LABEL, CALIBRATED_LABEL, UNCALIBRATED_LABEL)  # chart legend and marker shapes
SHAPES = ("circle", "diamond", "triangle-up")


def badge(status: CalibrationStatus, kind: str) -> str:
    """The text beside an emulated figure: 'calibrated (+3.2%)', '⚠ UNCALIBRATED (-41%)'; 'measured' otherwise."""
    if not kind.startswith("emulated"):
        return MEASURED
    text = status.text(reason=False)
    return f"{FLAG} {text.upper()}" if status.flagged else text


def with_emulation(frame: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard with `calibration_badge` (the text shown beside p50/p90) and `emulation` (the chart's
    measured / calibrated / uncalibrated marker)."""
    if frame.empty or "calibration" not in frame.columns:
        return frame.assign(calibration_badge=MEASURED, emulation=MEASURED_LABEL)
    emulated = frame["kind"].astype(str).str.startswith("emulated")
    flagged = emulated & frame["calibration"].isin([UNCALIBRATED, NOT_YET])
    text = frame["calibration_text"].fillna("").astype(str)
    return frame.assign(
        calibration_badge=[MEASURED if not e else f"{FLAG} {t.upper()}" if f else t
                           for e, f, t in zip(emulated, flagged, text, strict=True)],
        emulation=[MEASURED_LABEL if not e else UNCALIBRATED_LABEL if f else CALIBRATED_LABEL
                   for e, f in zip(emulated, flagged, strict=True)])


def uncalibrated_warning(frame: pd.DataFrame) -> str | None:
    """The warning over a table holding uncalibrated emulated rows (None when there are none)."""
    if frame.empty or "emulation" not in frame.columns:
        return None
    flagged = frame[frame["emulation"] == UNCALIBRATED_LABEL]
    if flagged.empty:
        return None
    reasons = sorted({f"{d} {p}: {r or 'no reason recorded'}" for d, p, r in
                      zip(flagged["device"], flagged["precision"], flagged["calibration_reason"], strict=True)})
    return (f"{len(flagged)} emulated row(s) are UNCALIBRATED: their throttle missed the published anchor by more "
            "than 10% (or was never calibrated), so these latencies are not the device's. " + "; ".join(reasons))


def int8_notes(frame: pd.DataFrame) -> list[str]:
    """One line per int8 artifact slower than its fp32 twin on this host, with why (the report's int8 note)."""
    if frame.empty or "int8_note" not in frame.columns:
        return []
    rows = frame[frame["int8_note"].fillna("") != ""]
    return sorted({f"{a} ({rd}): {note}" for a, rd, note in
                   zip(rows["artifact"], rows["runtime_delegate"], rows["int8_note"], strict=True)})


def measurement_badge(kind: str, context_json: str | None) -> str:
    """The calibration badge of one stored measurement row (the detail page's measurement list)."""
    return badge(row_status(kind, json.loads(context_json or "{}")), kind)
