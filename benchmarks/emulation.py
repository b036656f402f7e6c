"""How close the emulated device profiles come to their published figures, per profile and precision.

Run: .venv/bin/python benchmarks/emulation.py [--profile NAME ...] [--workspace DIR] [--refresh]
Prints, for every emulated profile (or those named): each precision's anchor error after calibration (the
throttle search of pipeline.calibration), the emulated int8/fp32 ratio of the anchor model beside the published
one and beside this host's unthrottled ratio (what one fp32 throttle would give), and the prediction error of each
second published point (`pipeline devices --check`, kept in WORKSPACE/calibration-checks.json). Every figure
names its runtime: the published points are LiteRT/XNNPACK ones; ExecuTorch and TF.js Node run under the same
calibrated throttle, but no published figure exists for them on these device classes, so their error is not
measured. Calibrations are reused from WORKSPACE/calibration.json unless --refresh; a cold profile takes several
minutes (anchor artifacts are exported once into WORKSPACE/anchors). Target: every |error| <= 10%.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RUNTIME = "litert/xnnpack"
UNCHECKED = (("executorch", "xnnpack"), ("tfjs-node", "cpu"), ("tfjs-node", "wasm"))  # no published points


def percent(value: float | None) -> str:
    return f"{value:+.1%}" if value is not None else "-"


def int8_anchor_ms(workspace: Path, profile: Any, fraction: float, threads: int) -> float:
    """p50 of the int8 anchor model on `threads` threads under `fraction` (the int8 rows' throttle)."""
    from dataclasses import replace

    from device_runtime.harness import BenchRequest, run_benchmark
    from pipeline.calibration import CALIBRATION_PROTOCOL, anchor_artifact

    request = BenchRequest(anchor_artifact(workspace, profile.anchor.model, "int8"), "litert", "xnnpack", threads,
                           replace(profile, memory_mb=None), CALIBRATION_PROTOCOL, active_fraction=fraction)
    measurement = run_benchmark(request)
    if measurement.status != "ok":
        raise RuntimeError(f"int8 anchor on {profile.name}: {measurement.error}")
    return float(measurement.result["latency_ms_p50"])


def ratios(workspace: Path, profile: Any, fp32: dict[str, Any], int8: dict[str, Any]) -> dict[str, Any]:
    """The anchor model's int8/fp32 ratio: published, emulated (each precision under its own throttle) and this
    host's unthrottled one."""
    published = profile.anchor_for("int8")
    if int8.get("calibrated_from") == "int8":
        emulated_int8, host_int8 = int8["emulated_ms"], int8["host_ms"]
    else:  # int8 rows run under the fp32 throttle: measure the int8 anchor there, and unthrottled
        emulated_int8 = int8_anchor_ms(workspace, profile, int8["active_fraction"], fp32["host_threads"])
        host_int8 = int8_anchor_ms(workspace, profile, 1.0, fp32["host_threads"])
    return {"published": published.published_ms / profile.anchor.published_ms if published else None,
            "emulated": emulated_int8 / fp32["emulated_ms"], "host": host_int8 / fp32["host_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", default=[], metavar="NAME", help="repeatable (default: all)")
    parser.add_argument("--workspace", default=os.environ.get("PIPELINE_WORKSPACE", "workspace"))
    parser.add_argument("--refresh", action="store_true", help="re-calibrate instead of reusing calibration.json")
    args = parser.parse_args()

    from device_runtime.profiles import PROFILES
    from pipeline.calibration import calibration_for
    from pipeline.calibration_checks import run_checks
    from pipeline.core.emulation import check_status, status_of
    from pipeline.core.host import describe_int8_features
    from pipeline.core.table import format_table

    workspace = Path(args.workspace)
    profiles = [PROFILES.get(n) for n in args.profile] or [p for _, p in PROFILES.items() if p.anchors]
    print(f"host {describe_int8_features()}")
    anchors, ratio_rows, check_rows, unchecked = [], [], [], []
    for profile in profiles:
        print(f"calibrating {profile.name} ...", flush=True)
        precisions = [a.precision for a in profile.anchors] + ([] if profile.anchor_for("int8") else ["int8"])
        # a borrowed precision reuses the fp32 calibration just made: refreshing it would calibrate fp32 again
        records = {p: calibration_for(workspace, profile, p, refresh=args.refresh and profile.anchor_for(p) is not None)
                   for p in precisions}
        for precision, record in sorted(records.items()):
            status = status_of(record, precision)
            anchors.append((profile.name, precision, record["calibrated_from"], RUNTIME, record["anchor_model"],
                            record["published_ms"], record["host_ms"], record["emulated_ms"], percent(status.error),
                            record["active_fraction"], record.get("mechanism", "?"), status.status))
        r = ratios(workspace, profile, records["fp32"], records["int8"])
        ratio_rows.append((profile.name, RUNTIME, f"{r['published']:.2f}" if r["published"] else "- (no int8 figure)",
                           f"{r['emulated']:.2f}", f"{r['host']:.2f}",
                           percent(r["emulated"] / r["published"] - 1) if r["published"] else "-"))
        for check in run_checks(workspace, profile, out=lambda line: print(line, flush=True)):
            check_rows.append((profile.name, check["precision"], check["runtime"], check["model"], check["published_ms"],
                               check["emulated_ms"] if check["emulated_ms"] is not None else "-",
                               percent(check["prediction_error"]),
                               check["error_message"] or check_status(check["prediction_error"])))
        unchecked += [f"{runtime}/{delegate} @ {profile.name}" for runtime, delegate in UNCHECKED
                      if delegate in profile.delegates]
    print("\nAnchor error after calibration")
    print(format_table(["profile", "precision", "from", "runtime", "anchor", "published ms", "host ms", "emulated ms",
                        "error", "run share", "mechanism", "status"], anchors))
    print("\nint8/fp32 p50 ratio of the anchor model (host: unthrottled, what a single fp32 throttle reproduces)")
    print(format_table(["profile", "runtime", "published", "emulated", "host", "emulated vs published"], ratio_rows))
    print("\nSecond published points (never calibrated on)")
    print(format_table(["profile", "precision", "runtime", "model", "published ms", "emulated ms", "error", "verdict"],
                       check_rows))
    if unchecked:
        print(f"\nNot checked (same calibrated throttle, no published figure for the runtime): {', '.join(unchecked)}")


if __name__ == "__main__":
    main()
