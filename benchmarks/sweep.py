"""Default recipe cold vs warm: time from an empty workspace, then a re-run on the warm cache.

Run: .venv/bin/python benchmarks/sweep.py [--recipe FILE] [--executor local|ray] [--keep DIR]
Targets: cold <= 20 minutes on a 2-core machine; warm <= 5% of cold.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", help="recipe YAML (default: the bundled default recipe)")
    parser.add_argument("--executor", default="local")
    parser.add_argument("--keep", help="use this workspace directory instead of a temporary one")
    args = parser.parse_args()

    import contextlib
    import sys

    from pipeline.sweep.executors import make_executor
    from pipeline.sweep.recipe import DEFAULT_RECIPE, load_recipe
    from pipeline.sweep.runner import run_sweep

    recipe = load_recipe(Path(args.recipe) if args.recipe else DEFAULT_RECIPE)
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Path(args.keep or scratch)
        store = workspace / "results.sqlite"
        times = []
        for label in ("cold", "warm"):
            executor = make_executor(args.executor)
            started = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):
                summary = run_sweep(recipe, workspace, store, executor, out=lambda line: print(line, file=sys.stderr))
            executor.close()
            times.append(time.perf_counter() - started)
            print(f"{label}: {times[-1]:7.1f} s  exports {summary.exports}  benchmarks {summary.benches}  "
                  f"failures {len(summary.failures)}")
    cold, warm = times
    print(f"cold {cold / 60:.1f} min ({'meets' if cold <= 1200 else 'misses'} <= 20 min); "
          f"warm/cold {warm / cold:.1%} ({'meets' if warm <= 0.05 * cold else 'misses'} <= 5%)")


if __name__ == "__main__":
    main()
