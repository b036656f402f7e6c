"""ONNX Runtime Web next to TF.js, both on wasm in headless Chromium: one source model, one host, fp32.

Run: .venv/bin/python benchmarks/ort_web_vs_tfjs.py [ZOO_MODEL] [THREADS ...]   (default mobilenet-v2-shapes, 1 2)
The zoo model's PyTorch source (shipped weights) is exported to onnx (torch.onnx) and to tfjs (its PyTorch route),
both validated against PyTorch, then measured in the isolated worker on the host profile: the same page server,
cross-origin isolated, the same timing protocol (tfjs_browser/protocol.js), wasm with SIMD, at each thread count.
Prints p50, p90, file size and the threads each runtime reports, side by side.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RUNS = {"onnx": "ort-browser", "tfjs": "tfjs-browser"}


def main(model: str = "mobilenet-v2-shapes", *threads: str) -> None:
    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from pipeline.zoo.materialize import materialize
    from quantize import quantization_config

    counts = [int(t) for t in threads] or [1, 2]
    with tempfile.TemporaryDirectory() as scratch:
        bundle = load_model(str(materialize(model, "torch", Path(scratch) / f"{model}.pt2").path))
        sizes, passed = {}, {}
        for target in RUNS:
            with contextlib.redirect_stdout(sys.stderr):
                manifest = export_bundle(bundle, target, quantization_config("none"), Path(scratch) / target).manifest
            sizes[target], passed[target] = manifest["size_bytes"], manifest["validation"]["passed"]
        print(f"{model} (torch source), fp32, Chromium wasm (SIMD), host, protocol: 10 warm-up, >= 100 runs, >= 2 s")
        print(f"{'runtime':14s} {'threads':>7s} {'in page':>7s} {'p50':>9s} {'p90':>9s} {'size B':>10s}  version, validation")
        for count in counts:
            for target, runtime in RUNS.items():
                request = resolve_request(Path(scratch) / target, runtime, "wasm", "host", count, Protocol(10, 100, 2.0))
                measurement = run_benchmark(request)
                if measurement.status != "ok":
                    raise SystemExit(f"{runtime} ({count} threads): {measurement.status}: {measurement.error}")
                result = measurement.result
                version = result.get("ort_web_version") or result.get("tfjs_version")
                print(f"{runtime:14s} {count:7d} {result['threads']!s:>7s} {result['latency_ms_p50']:7.3f}ms "
                      f"{result['latency_ms_p90']:7.3f}ms {sizes[target]:10,}  {version}, "
                      f"{'pass' if passed[target] else 'FAIL'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
