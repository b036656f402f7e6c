"""int8 vs fp32 p50 on XNNPACK for the MobileNetV2-class architecture, on LiteRT and ExecuTorch.

Run: .venv/bin/python benchmarks/int8_vs_fp32.py
Latency does not depend on the weights, so the architecture is used freshly initialised (no
training needed); calibration and timing use real procedural-shapes images. Each artifact is
measured in the isolated worker, 1 thread, on the host. Target: p50 ratio <= 0.6; otherwise the
delegation report printed beside it shows whether ops fell off the delegate.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")


def main() -> None:
    import torch

    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark
    from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
    from pipeline.core.datasets import load_dataset
    from pipeline.export import export_bundle
    from pipeline.zoo.mobilenet_v2 import build_torch
    from quantize import quantization_config

    torch.manual_seed(0)
    splits = load_dataset("shapes")
    bundle = ModelBundle(
        "torch", build_torch().eval(), TensorSpec("image", (None, 3, 64, 64), layout="NCHW"),
        SourceInfo("torch", "factory", "pipeline.zoo.mobilenet_v2:build_torch (freshly initialised)", ""),
        eval_data=splits.test.in_layout("NCHW").take(256), calibration_data=splits.calibration.in_layout("NCHW"),
    )
    with tempfile.TemporaryDirectory() as scratch:
        for target in ("tflite", "executorch"):
            p50 = {}
            for mode in ("none", "int8"):
                out = Path(scratch) / f"{target}-{mode}"
                with contextlib.redirect_stdout(sys.stderr):
                    manifest = export_bundle(bundle, target, quantization_config(mode), out, run_validation=False).manifest
                measurement = run_benchmark(resolve_request(out, None, None, "host", 1, Protocol(10, 100, 2.0)))
                p50[mode] = measurement.result["latency_ms_p50"]
                delegation = manifest["delegation"]
                print(f"{target:10s} {mode:4s} p50 {p50[mode]:.4f} ms  {manifest['size_bytes']:>8,} B  delegated "
                      f"{delegation['ops_delegated']}/{delegation['ops_total']}  not delegated: "
                      f"{', '.join(delegation['ops_not_delegated']) or 'none'}")
            ratio = p50["int8"] / p50["none"]
            print(f"{target:10s} int8/fp32 p50 ratio {ratio:.3f} ({'meets' if ratio <= 0.6 else 'misses'} <= 0.6)")


if __name__ == "__main__":
    main()
