"""ONNX Runtime next to LiteRT XNNPACK and ExecuTorch XNNPACK: one PyTorch model, one host, 1 thread, fp32 and int8.

(Not named onnx.py: run as a script, that name would shadow the onnx package.)

Run: .venv/bin/python benchmarks/onnx_vs_xnnpack.py [ZOO_MODEL]   (default mobilenet-v2-shapes; digits-cnn also works)
The zoo model (shipped weights) is exported to each target in fp32 and static int8, validated against PyTorch,
and measured in the isolated worker on the host profile (1 thread). Prints p50, size, the int8/fp32 size and p50
ratios and the validation outcome per target, side by side.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")

RUNS = {"tflite": ("litert", "xnnpack"), "executorch": ("executorch", "xnnpack"), "onnx": ("onnxruntime", "cpu")}


def main(model: str = "mobilenet-v2-shapes") -> None:
    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from pipeline.zoo.materialize import materialize
    from quantize import quantization_config

    with tempfile.TemporaryDirectory() as scratch:
        bundle = load_model(str(materialize(model, "torch", Path(scratch) / f"{model}.pt2").path))
        print(f"{model} (torch), host, 1 thread, protocol: 10 warm-up, >= 100 runs, >= 2 s")
        print(f"{'target':10s} {'runtime/delegate':22s} {'fp32 p50':>10s} {'int8 p50':>10s} {'p50 x':>6s} "
              f"{'fp32 B':>9s} {'int8 B':>9s} {'size x':>7s}  validation")
        for target, (runtime, delegate) in RUNS.items():
            p50, size, passed = {}, {}, {}
            for mode in ("none", "int8"):
                out = Path(scratch) / f"{target}-{mode}"
                with contextlib.redirect_stdout(sys.stderr):
                    manifest = export_bundle(bundle, target, quantization_config(mode), out).manifest
                measurement = run_benchmark(resolve_request(out, runtime, delegate, "host", 1, Protocol(10, 100, 2.0)))
                if measurement.status != "ok":
                    raise SystemExit(f"{target} {mode}: {measurement.status}: {measurement.error}")
                p50[mode], size[mode] = measurement.result["latency_ms_p50"], manifest["size_bytes"]
                passed[mode] = manifest["validation"]["passed"]
            print(f"{target:10s} {runtime + '/' + delegate:22s} {p50['none']:9.3f}ms {p50['int8']:9.3f}ms "
                  f"{p50['int8'] / p50['none']:6.2f} {size['none']:9,} {size['int8']:9,} {size['int8'] / size['none']:7.3f}  "
                  f"fp32 {'pass' if passed['none'] else 'FAIL'}, int8 {'pass' if passed['int8'] else 'FAIL'}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
