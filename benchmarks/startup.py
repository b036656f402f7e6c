"""Start-up cost of `pipeline --help` against a bare `python -c pass`, and which heavy modules it loads.

Run: .venv/bin/python benchmarks/startup.py [--runs N]
Target: `pipeline --help` under 1 s on a 2-core machine (frameworks are imported lazily).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("tensorflow", "torch", "keras", "executorch", "litert_torch", "ai_edge_litert", "numpy")


def time_command(command: list[str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return samples


def heavy_modules_loaded() -> list[str]:
    probe = "import sys; from pipeline.cli import build_parser; build_parser(); print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split())
    return [name for name in HEAVY if name in loaded]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    bare = time_command([sys.executable, "-c", "pass"], args.runs)
    cli = time_command([sys.executable, "-m", "pipeline", "--help"], args.runs)
    print(f"runs: {args.runs}")
    print(f"python -c pass        median {statistics.median(bare) * 1000:7.1f} ms")
    print(f"pipeline --help       median {statistics.median(cli) * 1000:7.1f} ms  (max {max(cli) * 1000:.1f} ms)")
    print(f"overhead vs bare      {statistics.median(cli) / statistics.median(bare):.2f}x")
    print(f"heavy modules loaded by the CLI parser: {', '.join(heavy_modules_loaded()) or 'none'}")
    print(f"target < 1000 ms: {'met' if statistics.median(cli) < 1.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
