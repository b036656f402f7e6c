"""Ray executor vs local executor on the same grid: identical artifacts, latencies within noise.

Run: .venv/bin/python benchmarks/ray_vs_local.py [--recipe FILE] [--cpus 2]
The recipe (default: digits-cnn in both frameworks, fp32 and int8, tflite and executorch, on the host)
runs once with the local executor, then on a private Ray instance with `--cpus` workers, from a copy of
the same trained models. Printed: each artifact's file hashes (equal or not) and each measurement's p50
from both runs, their ratio, and the local run's p50->p90 spread as the noise it is compared with.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")

RECIPE = {
    "version": 1, "name": "ray-vs-local",
    "models": [{"zoo": "digits-cnn"}],
    "variants": [{"name": "fp32", "quantize": "none"}, {"name": "int8", "quantize": "int8"}],
    "targets": ["tflite", "executorch"],
    "runtimes": [{"target": "tflite", "runtime": "litert", "delegate": "xnnpack", "threads": 1},
                 {"target": "executorch", "runtime": "executorch", "delegate": "xnnpack", "threads": 1}],
    "devices": ["host"],
    "measure": {"warmup_runs": 5, "min_runs": 200, "min_duration_s": 1.0},
}


def latencies(workspace: Path) -> dict[tuple[str, ...], tuple[float, float]]:
    """(artifact, runtime, delegate, device) -> (p50, p90) of each successful measurement."""
    with sqlite3.connect(workspace / "results.sqlite") as connection:
        rows = connection.execute("SELECT artifact_dir, runtime, delegate_requested, device_profile, latency_ms_p50, "
                                  "latency_ms_p90 FROM measurements WHERE status = 'ok'").fetchall()
    return {(str(Path(a).resolve().relative_to(workspace.resolve())), r, d, dev): (p50, p90)
            for a, r, d, dev, p50, p90 in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", help="recipe YAML (default: the small grid above)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (default: 2)")
    args = parser.parse_args()

    import contextlib

    from pipeline.core.manifest import artifact_file_hashes
    from pipeline.sweep.executors import LocalExecutor
    from pipeline.sweep.ray_executor import RayExecutor
    from pipeline.sweep.recipe import load_recipe, parse_recipe
    from pipeline.sweep.runner import run_sweep

    recipe = load_recipe(Path(args.recipe)) if args.recipe else parse_recipe(RECIPE)
    quiet = lambda line: print(line, file=sys.stderr)  # noqa: E731
    with tempfile.TemporaryDirectory() as scratch:
        local_ws, ray_ws = Path(scratch, "local"), Path(scratch, "ray")
        with contextlib.redirect_stdout(sys.stderr):
            local = run_sweep(recipe, local_ws, local_ws / "results.sqlite", LocalExecutor(), out=quiet)
            shutil.copytree(local_ws / "models", ray_ws / "models")
            executor = RayExecutor(None, num_cpus=args.cpus)
            try:
                remote = run_sweep(recipe, ray_ws, ray_ws / "results.sqlite", executor, out=quiet)
            finally:
                executor.close()
        local_hashes, ray_hashes = artifact_file_hashes(local_ws), artifact_file_hashes(ray_ws)
        same = sorted(k for k in local_hashes if ray_hashes.get(k) == local_hashes[k])
        print(f"local: {local.seconds:.0f} s, failures {len(local.failures)};  ray ({args.cpus} CPUs): "
              f"{remote.seconds:.0f} s, failures {len(remote.failures)}")
        print(f"artifact files identical: {len(same)}/{len(local_hashes)} (ray has {len(ray_hashes)})")
        for name in sorted(set(local_hashes) ^ set(same)):
            print(f"  differs: {name}")
        local_lat, ray_lat = latencies(local_ws), latencies(ray_ws)
        ratios: list[float] = []
        print(f"{'measurement':<78} {'local p50':>10} {'ray p50':>10} {'ray/local':>9} {'local p90/p50':>13}")
        for key in sorted(local_lat):
            (p50, p90), other = local_lat[key], ray_lat.get(key)
            if other is None:
                print(f"{' '.join(key):<78} {p50:10.4f} {'missing':>10}")
                continue
            ratios.append(other[0] / p50)
            print(f"{' '.join(key):<78} {p50:10.4f} {other[0]:10.4f} {ratios[-1]:9.3f} {p90 / p50:13.3f}")
        if ratios:
            ratios.sort()
            print(f"ray/local p50: median {ratios[len(ratios) // 2]:.3f}, range {ratios[0]:.3f}-{ratios[-1]:.3f} "
                  f"over {len(ratios)} measurements")


if __name__ == "__main__":
    main()
