"""Harness targets, measured side by side in one run.

Run: .venv/bin/python benchmarks/harness.py [--workspace DIR] [--model ZOO_NAME]

1. Overhead: the harness protocol's p50 vs a bare perf_counter loop over the same LiteRT call,
   in the same process (target: within 5%).
2. int8 vs fp32 on XNNPACK for the MobileNetV2-class zoo model, on LiteRT and ExecuTorch, each
   in the isolated worker (target: p50 ratio <= 0.6, else the delegation report says why).
3. TF.js (Node wasm, and headless Chromium wasm when that runtime is installed) vs LiteRT XNNPACK.
4. Repeatability: five `pipeline bench`-equivalent runs of one artifact (target: every p50 within
   +-5% of their median).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")


def overhead(model_file: Path, inputs, seconds: float = 3.0) -> tuple[float, float]:
    """(bare p50 ms, harness p50 ms) over the same interpreter call, alternating three rounds each."""
    from device_runtime.device_scripts.edge_bench import Protocol, load_program, time_runs

    program = load_program(model_file, 1, "xnnpack")
    prepared = [program.prepare(sample[None]) for sample in inputs]

    def run(i: int) -> None:
        program.invoke(prepared[i])

    for i in range(50):
        run(i % len(inputs))
    bare, harness = [], []
    for _ in range(3):
        samples = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            t0 = time.perf_counter()
            run(len(samples) % len(inputs))
            samples.append((time.perf_counter() - t0) * 1000)
        bare.append(statistics.median(samples))
        harness.append(time_runs(run, len(inputs), Protocol(0, 100, seconds / 3))["latency_ms_p50"])
    return statistics.median(bare), statistics.median(harness)


def bench(artifact: Path, runtime: str | None = None, delegate: str | None = None, threads: int = 1) -> dict:
    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark

    measurement = run_benchmark(resolve_request(artifact, runtime, delegate, "host", threads, Protocol(10, 100, 2.0)))
    if measurement.status != "ok":
        raise SystemExit(f"{artifact}: {measurement.status}: {measurement.error}")
    return measurement.result


def exported(workspace: Path, model: str, framework: str, target: str, mode: str) -> Path:
    """The demo's artifact for (model, framework, target, mode), exporting it if missing."""
    from pipeline.demo import ensure_trained
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from quantize import quantization_config

    out = workspace / "artifacts" / f"{model}-{framework}" / f"{target}-{mode}"
    if not (out / "manifest.json").is_file():
        bundle = load_model(str(ensure_trained(model, framework, workspace / "models", False)))
        with contextlib.redirect_stdout(sys.stderr):
            export_bundle(bundle, target, quantization_config(mode), out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default="workspace")
    parser.add_argument("--model", default="mobilenet-v2-shapes", help="zoo model for the int8 vs fp32 ratio")
    args = parser.parse_args()
    workspace = Path(args.workspace)

    import numpy as np

    from pipeline.core.manifest import read_manifest
    from pipeline.zoo import ZOO

    model = args.model if args.model in ZOO else "digits-cnn"
    tflite_fp32 = exported(workspace, model, "torch", "tflite", "none")
    with np.load(tflite_fp32 / "eval.npz") as data:
        inputs = data["x"].astype(np.float32)

    print(f"== 1. harness overhead ({model}, LiteRT XNNPACK, 1 thread, same process)")
    bare, harness = overhead(tflite_fp32 / "model.tflite", inputs)
    print(f"bare loop p50 {bare:.4f} ms | harness p50 {harness:.4f} ms | ratio {harness / bare:.3f} "
          f"({'within' if abs(harness / bare - 1) <= 0.05 else 'OUTSIDE'} 5%)")

    print(f"\n== 2. int8 vs fp32 on XNNPACK ({model}, isolated worker, 1 thread)")
    for target in ("tflite", "executorch"):
        fp32 = bench(exported(workspace, model, "torch", target, "none"))
        int8_dir = exported(workspace, model, "torch", target, "int8")
        int8 = bench(int8_dir)
        ratio = int8["latency_ms_p50"] / fp32["latency_ms_p50"]
        delegation = read_manifest(int8_dir).get("delegation", {})
        print(f"{target:10s} fp32 p50 {fp32['latency_ms_p50']:.3f} ms | int8 p50 {int8['latency_ms_p50']:.3f} ms | "
              f"ratio {ratio:.2f} ({'meets' if ratio <= 0.6 else 'misses'} <= 0.6) | int8 delegated "
              f"{delegation.get('ops_delegated')}/{delegation.get('ops_total')}, not delegated: "
              f"{', '.join(delegation.get('ops_not_delegated') or []) or 'none'}")

    print(f"\n== 3. TF.js vs LiteRT XNNPACK ({model}, keras source, 1 thread)")
    litert = bench(exported(workspace, model, "keras", "tflite", "none"))
    tfjs_dir = exported(workspace, model, "keras", "tfjs", "none")
    for runtime in ("tfjs-node", "tfjs-browser"):
        from device_runtime import RUNTIMES

        if runtime not in RUNTIMES or not RUNTIMES.get(runtime).is_available("wasm").ok:
            print(f"{runtime}: not available here")
            continue
        tfjs = bench(tfjs_dir, runtime, "wasm")
        print(f"{runtime} wasm p50 {tfjs['latency_ms_p50']:.3f} ms | LiteRT xnnpack p50 {litert['latency_ms_p50']:.3f} ms | "
              f"ratio {tfjs['latency_ms_p50'] / litert['latency_ms_p50']:.2f}")

    print(f"\n== 4. repeatability (5 isolated runs of {tflite_fp32.parent.name}/{tflite_fp32.name})")
    p50s = [bench(tflite_fp32)["latency_ms_p50"] for _ in range(5)]
    median = statistics.median(p50s)
    worst = max(abs(p / median - 1) for p in p50s)
    print("p50s " + ", ".join(f"{p:.4f}" for p in p50s) + f" ms | worst deviation from median {worst:.1%} "
          f"({'within' if worst <= 0.05 else 'OUTSIDE'} 5%) | {read_manifest(tflite_fp32)['target']}")


if __name__ == "__main__":
    main()
