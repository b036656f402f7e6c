"""How steady repeated measurements are: one artifact measured five times on the host and five times on an
emulated profile, each in its own worker (device_runtime.harness.run_benchmark).

Run: .venv/bin/python benchmarks/steadiness.py [--model digits-cnn|mobilenet-v2-shapes] [--artifact DIR]
     [--profile pixel-3a-1t] [--repeats 5] [--workspace DIR]
Without --artifact the zoo model's Keras build is exported to .tflite through the project in a temporary
directory. The profile is calibrated first (reused from WORKSPACE/calibration.json when it is there). Prints each
run's p50 and whether the protocol flagged it `unsteady` (its block medians spread more than the protocol's
tolerance), then per set the median p50 and the worst deviation from it. Goal: every run within ±5% of its median.
A loaded host (another benchmark, a test run) widens the spread; the figures say so rather than hide it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GOAL = 0.05
ZOO_MODELS = ("digits-cnn", "mobilenet-v2-shapes")


def export_zoo_tflite(model: str, folder: Path) -> Path:
    """The zoo model's Keras build exported to fp32 .tflite (with its eval.npz) under `folder`."""
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from pipeline.zoo.materialize import materialize
    from quantize import quantization_config

    source = materialize(model, "keras", folder / f"{model}.keras").path
    out = folder / f"{model}-tflite"
    export_bundle(load_model(str(source)), "tflite", quantization_config("none"), out)
    return out


def measure_set(artifact: Path, profile: str, calibration: dict[str, Any] | None, repeats: int) -> list[dict[str, Any]]:
    """`repeats` measurements of `artifact` on `profile`, each in a fresh worker, with the harness's default protocol."""
    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark

    request = resolve_request(artifact, None, None, profile, None, Protocol(), calibration=calibration)
    runs = []
    for index in range(repeats):
        measurement = run_benchmark(request)
        if measurement.status != "ok":
            raise RuntimeError(f"{artifact.name} on {profile}, run {index + 1}: {measurement.error}")
        result = measurement.result
        runs.append({"p50": result["latency_ms_p50"], "unsteady": result.get("unsteady"),
                     "spread": result.get("block_spread"), "runs": result["runs"], "seconds": result["duration_s"]})
        print(f"  {profile} run {index + 1}: p50 {result['latency_ms_p50']:.4f} ms"
              f"{'  UNSTEADY' if result.get('unsteady') else ''}", flush=True)
    return runs


def summary(name: str, runs: list[dict[str, Any]]) -> tuple[Any, ...]:
    """(set, median p50, worst deviation, within goal, unsteady runs) of one set of runs."""
    median = statistics.median(run["p50"] for run in runs)
    worst = max((run["p50"] - median for run in runs), key=abs) / median
    unsteady = sum(bool(run["unsteady"]) for run in runs)
    return (name, f"{median:.4f}", f"{worst:+.1%}", "yes" if abs(worst) <= GOAL else "NO",
            f"{unsteady}/{len(runs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=ZOO_MODELS, default="digits-cnn", help="zoo model exported when no --artifact")
    parser.add_argument("--artifact", type=Path, help="an existing .tflite artifact directory (with eval.npz)")
    parser.add_argument("--profile", default="pixel-3a-1t", help="the emulated profile (default: pixel-3a-1t)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workspace", type=Path, default=Path(os.environ.get("PIPELINE_WORKSPACE", "workspace")))
    args = parser.parse_args()

    from device_runtime.profiles import PROFILES
    from pipeline.calibration import calibration_for_artifact
    from pipeline.core.emulation import status_of
    from pipeline.core.table import format_table

    with tempfile.TemporaryDirectory(prefix="steadiness-") as temp:
        artifact = args.artifact or export_zoo_tflite(args.model, Path(temp))
        calibration = calibration_for_artifact(args.workspace, PROFILES.get(args.profile), artifact)
        print(f"{artifact.name}; {args.profile}: {status_of(calibration).text()}, run share "
              f"{calibration['active_fraction'] if calibration else 1.0}", flush=True)
        sets = {"host": measure_set(artifact, "host", None, args.repeats),
                args.profile: measure_set(artifact, args.profile, calibration, args.repeats)}
    print()
    print(format_table(["set", "run", "p50 ms", "unsteady", "block spread", "samples", "seconds"],
                       [(name, i + 1, f"{run['p50']:.4f}", run["unsteady"],
                         f"{run['spread']:.1%}" if run["spread"] is not None else "-", run["runs"],
                         f"{run['seconds']:.1f}") for name, runs in sets.items() for i, run in enumerate(runs)]))
    print()
    print(format_table(["set", "median p50 ms", "worst deviation", f"within ±{GOAL:.0%}", "unsteady runs"],
                       [summary(name, runs) for name, runs in sets.items()]))


if __name__ == "__main__":
    main()
