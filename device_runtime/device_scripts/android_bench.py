#!/usr/bin/env python3
"""Benchmark a .tflite or .pte artifact on an Android phone over adb, with binaries you supply.

    python3 android_bench.py ARTIFACT_DIR --runner PATH/benchmark_model --device-name pixel-7 \
        --threads 4 --out pixel7.json                       # LiteRT: the benchmark_model binary
    python3 android_bench.py ARTIFACT_DIR --runner PATH/executor_runner ...   # ExecuTorch runner

The runner is pushed to /data/local/tmp with the model, run with the same protocol as the
pipeline's harness (warm-up excluded, at least --min-runs runs and --min-seconds), and its output
is parsed into the JSON that `pipeline import-results` loads as `measured`. benchmark_model
reports mean and std (and, in newer builds, p5/median/p95); fields it does not print stay empty
rather than being made up. Needs only the Python standard library and `adb` on PATH.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REMOTE_DIR = "/data/local/tmp/edge_bench"


def litert_command(model: str, runner: str, threads: int, warmup: int, min_runs: int, min_seconds: float,
                   delegate: str) -> list[str]:
    """benchmark_model flags for the harness protocol (XNNPACK on/off, GPU when asked)."""
    return [runner, f"--graph={model}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
            f"--num_runs={min_runs}", f"--min_secs={min_seconds}", f"--use_xnnpack={str(delegate == 'xnnpack').lower()}",
            f"--use_gpu={str(delegate == 'gpu').lower()}", "--report_peak_memory_footprint=true"]


def parse_litert(output: str) -> dict[str, float | int | None]:
    """Timings from benchmark_model's summary lines (microseconds in, milliseconds out)."""
    result: dict[str, float | int | None] = {"latency_ms_p50": None, "latency_ms_p90": None, "latency_ms_p99": None}
    timings = re.search(r"Inference timings in us: Init: ([\d.]+), First inference: ([\d.]+), "
                        r"Warmup \(avg\): ([\d.eE+]+), Inference \(avg\): ([\d.eE+]+)", output)
    if not timings:
        raise ValueError("benchmark_model printed no 'Inference timings in us' line; is this LiteRT's benchmark_model?")
    init, first, _, mean = (float(v) for v in timings.groups())
    result.update(load_ms=init / 1000, first_inference_ms=first / 1000, latency_ms_mean=mean / 1000)
    runs = re.findall(r"count=(\d+) first=\d+ curr=\d+ min=([\d.]+) max=([\d.]+) avg=([\d.eE+]+) std=([\d.]+)"
                      r"(?: p5=[\d.]+ median=([\d.]+) p95=([\d.]+))?", output)
    if runs:  # the last 'count=' line describes the timed runs
        count, low, high, _, std, median, p95 = runs[-1]
        result.update(runs=int(count), latency_ms_min=float(low) / 1000, latency_ms_max=float(high) / 1000,
                      latency_ms_std=float(std) / 1000, latency_cv=float(std) / mean if mean else None)
        if median:  # newer benchmark_model builds print percentiles
            result.update(latency_ms_p50=float(median) / 1000, latency_ms_p95=float(p95) / 1000)
    memory = re.search(r"(?:Peak memory footprint \(MB\): init=[\d.]+ overall=|"
                       r"Overall peak memory footprint \(MB\) via periodic monitoring: )([\d.]+)", output)
    result["peak_rss_bytes"] = int(float(memory.group(1)) * 2**20) if memory else None
    return result


def executorch_command(model: str, runner: str, min_runs: int) -> list[str]:
    return [runner, f"--model_path={model}", f"--num_executions={min_runs}"]


def parse_executorch(output: str) -> dict[str, float | int | None]:
    """executor_runner prints the total time of its executions; the mean is all it tells."""
    match = re.search(r"executed successfully (\d+) time\(s\) in ([\d.]+) ms", output)
    if not match:
        raise ValueError("executor_runner printed no 'executed successfully N time(s) in X ms' line")
    runs, total = int(match.group(1)), float(match.group(2))
    return {"runs": runs, "latency_ms_mean": total / runs, "latency_ms_p50": None, "latency_ms_p90": None,
            "latency_ms_p99": None, "peak_rss_bytes": None}


def adb(*args: str, serial: str | None = None) -> str:
    command = ["adb", *(["-s", serial] if serial else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout + done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark an artifact on an Android device over adb.")
    parser.add_argument("artifact_dir", type=Path)
    parser.add_argument("--runner", type=Path, required=True, help="benchmark_model (.tflite) or executor_runner (.pte)")
    parser.add_argument("--device-name", required=True)
    parser.add_argument("--serial", help="adb device serial when several are attached")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--delegate", default="xnnpack", help="tflite: xnnpack, cpu or gpu")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--min-runs", type=int, default=100)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if shutil.which("adb") is None:
        print("error: adb not found on PATH; install Android platform-tools.", file=sys.stderr)
        return 2
    manifest_path = args.artifact_dir / "manifest.json"
    if not manifest_path.is_file() or not args.runner.is_file():
        print(f"error: need {manifest_path} and the runner binary {args.runner}.", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text())
    model = args.artifact_dir / manifest["model_file"]
    remote_model, remote_runner = f"{REMOTE_DIR}/{model.name}", f"{REMOTE_DIR}/{args.runner.name}"
    adb("shell", "mkdir", "-p", REMOTE_DIR, serial=args.serial)
    adb("push", str(model), remote_model, serial=args.serial)
    adb("push", str(args.runner), remote_runner, serial=args.serial)
    adb("shell", "chmod", "+x", remote_runner, serial=args.serial)
    if model.suffix == ".tflite":
        command = litert_command(remote_model, remote_runner, args.threads, args.warmup, args.min_runs,
                                 args.min_seconds, args.delegate)
        result = parse_litert(adb("shell", *command, serial=args.serial))
    else:
        result = parse_executorch(adb("shell", *executorch_command(remote_model, remote_runner, args.min_runs),
                                      serial=args.serial))
    record = {"kind": "measured", "device": args.device_name, "host": {"adb_serial": args.serial, "runner": args.runner.name},
              "threads": args.threads, "delegate": args.delegate,
              "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
              "artifact": {"target": manifest["target"], "source": manifest["source"], "stages": manifest["stages"],
                           "size_bytes": manifest["size_bytes"]},
              "result": {**result, "accuracy": None, "protocol": {"warmup_runs": args.warmup, "min_runs": args.min_runs,
                                                                  "min_duration_s": args.min_seconds}},
              "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.write_text(json.dumps(record, indent=2))
    print(f"{args.device_name}: mean {result['latency_ms_mean']:.3f} ms -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
