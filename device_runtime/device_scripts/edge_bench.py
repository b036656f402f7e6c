#!/usr/bin/env python3
"""Benchmark a .tflite or .pte artifact on this device with the pipeline's measurement protocol.

Copy this one file (plus the artifact directory) to a Raspberry Pi or any Linux board that has
`ai-edge-litert` (or `tflite-runtime`) or ExecuTorch's Python runtime, then run:

    python3 edge_bench.py ARTIFACT_DIR --threads 4 --device-name rpi4 --out result.json

and load the result on the workstation with `pipeline import-results result.json`. Inputs are the
artifact's own evaluation samples (`eval.npz`, written by `pipeline export`), never zeros. Only the standard library
and numpy are required besides the runtime; the pipeline imports the protocol from this file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

PROTOCOL_VERSION = 2


@dataclass(frozen=True)
class Protocol:
    """MLPerf-style timing: warm-up excluded, then at least `min_runs` timed samples and `min_duration_s`.

    A sample is one inference, or with `min_sample_ms` > 0 as many back-to-back inferences as fill
    that time, reported per inference (a duty-cycle throttle only slows what spans its periods).
    """

    warmup_runs: int = 10
    min_runs: int = 100
    min_duration_s: float = 2.0
    max_runs: int = 100_000
    min_sample_ms: float = 0.0

    def __post_init__(self) -> None:
        if (self.warmup_runs < 0 or self.min_runs < 1 or self.min_duration_s < 0 or self.max_runs < self.min_runs
                or self.min_sample_ms < 0):
            raise ValueError(f"invalid protocol {self}: need warmup >= 0, 1 <= min_runs <= max_runs, duration >= 0, "
                             "min_sample_ms >= 0")


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted list (q in [0, 100])."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = (len(sorted_values) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    """p50/p90/p99/mean/std/cv/min/max of per-run latencies in milliseconds."""
    ordered = sorted(samples_ms)
    mean = statistics.fmean(ordered)
    std = statistics.pstdev(ordered)
    return {
        "latency_ms_p50": percentile(ordered, 50),
        "latency_ms_p90": percentile(ordered, 90),
        "latency_ms_p99": percentile(ordered, 99),
        "latency_ms_mean": mean,
        "latency_ms_std": std,
        "latency_cv": std / mean if mean else 0.0,
        "latency_ms_min": ordered[0],
        "latency_ms_max": ordered[-1],
    }


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def time_runs(run: Callable[[int], object], samples: int, protocol: Protocol) -> dict[str, float]:
    """Call `run(i)` (i cycles over `samples` real inputs): warm-up, then timed runs."""
    first_started = time.perf_counter()
    run(0)
    first_ms = (time.perf_counter() - first_started) * 1000
    for i in range(protocol.warmup_runs):
        run((i + 1) % samples)
    latencies: list[float] = []
    calls = 0
    started = time.perf_counter()
    clock = time.perf_counter
    while len(latencies) < protocol.max_runs:
        t0 = clock()
        in_sample = 0
        while True:
            run((calls + in_sample) % samples)
            in_sample += 1
            elapsed_ms = (clock() - t0) * 1000
            if elapsed_ms >= protocol.min_sample_ms:
                break
        calls += in_sample
        latencies.append(elapsed_ms / in_sample)
        if len(latencies) >= protocol.min_runs and clock() - started >= protocol.min_duration_s:
            break
    return {"first_inference_ms": first_ms, "runs": len(latencies), "inferences": calls,
            "duration_s": clock() - started, **latency_stats(latencies)}


def _load_tflite(path: Path, threads: int | None, delegate: str):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        from tflite_runtime.interpreter import Interpreter, OpResolverType  # type: ignore[no-redef]
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if delegate == "cpu" else OpResolverType.AUTO
    interpreter = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def tflite_runner(path: Path, threads: int | None, delegate: str, inputs):
    """A `run(i)` over pre-quantized batch-1 inputs, plus a function returning the outputs."""
    import numpy as np

    interpreter = _load_tflite(path, threads, delegate)
    detail = interpreter.get_input_details()[0]
    output = interpreter.get_output_details()[0]
    prepared = []
    for sample in inputs:
        x = sample[None].astype(np.float32)
        if not np.issubdtype(detail["dtype"], np.floating):
            scale, zero = detail["quantization"]
            info = np.iinfo(detail["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])
        prepared.append(x)

    def run(i: int) -> None:
        interpreter.set_tensor(detail["index"], prepared[i])
        interpreter.invoke()

    def result() -> np.ndarray:
        y = interpreter.get_tensor(output["index"])
        if not np.issubdtype(output["dtype"], np.floating):
            scale, zero = output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y

    return run, result


def executorch_runner(path: Path, threads: int | None, delegate: str, inputs):
    import torch
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(path).load_method("forward")
    prepared = [torch.tensor(sample[None]) for sample in inputs]
    last: list = [None]

    def run(i: int) -> None:
        last[0] = method.execute((prepared[i],))

    def result():
        return last[0][0].numpy()

    return run, result


RUNNERS = {".tflite": tflite_runner, ".pte": executorch_runner}


def measure(model_file: Path, inputs, labels, threads: int | None, delegate: str, protocol: Protocol) -> dict:
    """Load, time and score one artifact in this process; returns a flat result dict."""
    import numpy as np

    runner = RUNNERS.get(model_file.suffix)
    if runner is None:
        raise ValueError(f"{model_file.name}: unsupported artifact type; expected one of {sorted(RUNNERS)}")
    started = time.perf_counter()
    run, result = runner(model_file, threads, delegate, inputs)
    load_ms = (time.perf_counter() - started) * 1000
    timing = time_runs(run, len(inputs), protocol)
    accuracy = None
    if labels is not None:
        predictions = []
        for i in range(len(inputs)):
            run(i)
            predictions.append(int(np.argmax(result())))
        accuracy = float(np.mean(np.asarray(predictions) == labels))
    return {"load_ms": load_ms, **timing, "accuracy": accuracy, "samples": len(inputs),
            "peak_rss_bytes": peak_rss_bytes(), "protocol": asdict(protocol), "protocol_version": PROTOCOL_VERSION}


def _host() -> dict:
    return {"machine": platform.machine(), "system": platform.system(), "release": platform.release(),
            "python": platform.python_version(), "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark a .tflite/.pte artifact on this device.")
    parser.add_argument("artifact_dir", type=Path)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--delegate", default="xnnpack", help="tflite: xnnpack or cpu; pte: as exported")
    parser.add_argument("--device-name", required=True, help="what this device is, e.g. rpi4 or pixel-7")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--min-runs", type=int, default=100)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import numpy as np

    manifest_path = args.artifact_dir / "manifest.json"
    data_path = args.artifact_dir / "eval.npz"
    if not manifest_path.is_file() or not data_path.is_file():
        print(f"error: {args.artifact_dir} needs manifest.json and eval.npz; copy the whole artifact directory "
              "that `pipeline export` wrote.", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text())
    with np.load(data_path, allow_pickle=False) as data:
        inputs, labels = data["x"].astype(np.float32), (data["y"] if "y" in data.files else None)
    protocol = Protocol(args.warmup, args.min_runs, args.min_seconds)
    result = measure(args.artifact_dir / manifest["model_file"], inputs, labels, args.threads, args.delegate, protocol)
    record = {"kind": "measured", "device": args.device_name, "host": _host(), "threads": args.threads,
              "delegate": args.delegate, "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
              "artifact": {"target": manifest["target"], "source": manifest["source"], "stages": manifest["stages"],
                           "size_bytes": manifest["size_bytes"]},
              "result": result, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.write_text(json.dumps(record, indent=2))
    print(f"{args.device_name}: p50 {result['latency_ms_p50']:.3f} ms over {result['runs']} runs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
