"""Before a sweep starts: which emulated profile/precision pairs it measures are not (yet) calibrated on this host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.core.emulation import NOT_YET, UNCALIBRATED, profile_status, read_calibrations
from pipeline.sweep.plan import Plan


def emulated_pairs(plan: Plan) -> list[tuple[str, str]]:
    """(device profile, precision) of every benchmark cell on a throttled profile, sorted."""
    from device_runtime.profiles import PROFILES
    from pipeline.calibration import precision_of

    return sorted({(cell.device, precision_of({"stages": [{"name": "quantize",
                                                           "config": {"mode": cell.export.variant.quantize}}]}))
                   for cell in plan.benches if PROFILES.get(cell.device).anchors})


def announce_calibration(plan: Plan, workspace: Path, out: Callable[[str], None]) -> None:
    """One line per profile/precision this sweep uses that is uncalibrated, not calibrated yet, or throttled by
    another precision's calibration on this host."""
    from device_runtime.profiles import PROFILES
    from pipeline.calibration import host_key

    calibrations, host = read_calibrations(workspace), host_key()
    not_yet = []
    for device, precision in emulated_pairs(plan):
        status = profile_status(calibrations, PROFILES.get(device), precision, host)
        if status.status == UNCALIBRATED:
            out(f"UNCALIBRATED {device} {precision}: {status.text()}; its emulated rows will carry the "
                f"'uncalibrated' badge (`pipeline devices --calibrate {device}` to retry)")
        elif status.borrowed:
            out(f"{device} {precision}: {status.text()}")
        elif status.status == NOT_YET:
            not_yet.append(f"{device} {precision}")
    if not_yet:
        out(f"not calibrated yet on this host: {', '.join(not_yet)}; each is calibrated before its first benchmark, "
            "and its rows carry the 'uncalibrated' badge if the anchor then misses its published figure by more "
            "than 10%")
