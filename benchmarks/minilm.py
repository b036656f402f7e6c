"""minilm-l6 (all-MiniLM-L6-v2, sequence length 128): fidelity, size and latency of its quantized artifacts.

Run: .venv/bin/python benchmarks/minilm.py [--targets executorch,tflite] [--modes none,dynamic-int8,int8]
Prints, per target and mode: mean and worst cosine similarity to the fp32 PyTorch source on the bundled
sentences, size against fp32, and p50 latency on XNNPACK at 1 thread on the host with its ratio to fp32,
beside the host's int8-relevant CPU features. Targets: cosine mean >= 0.99 and size <= 0.30x fp32 for the
int8 modes; where a quantized artifact is not faster than fp32, the line says which explanation holds (ops
left off the delegate, named, or a host without an int8 dot product).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")


def explain(manifest: dict, ratio: float, features: dict) -> str:
    """Why a quantized artifact is not faster than float, from its delegation report and the host's CPU."""
    if ratio < 1.0:
        return "faster than fp32"
    off = (manifest.get("delegation") or {}).get("ops_not_delegated") or []
    if off:
        return f"not faster: ops left off the delegate ({', '.join(off)})"
    if not features["has_int8_dot_product"]:
        return "not faster: every op delegated, but this host has no int8 dot-product instructions"
    return "not faster, with every op delegated and int8 dot products on this host: XNNPACK's int8 kernels do not win here"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="executorch,tflite")
    parser.add_argument("--modes", default="none,dynamic-int8,int8")
    args = parser.parse_args()

    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark
    from pipeline.core.host import describe_int8_features, int8_features
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from pipeline.zoo.materialize import materialize
    from quantize import quantization_config

    features = int8_features()
    print(f"host {describe_int8_features()}")
    with tempfile.TemporaryDirectory() as scratch:
        model = materialize("minilm-l6", "torch", Path(scratch) / "minilm-l6-torch.pt2").path
        bundle = load_model(str(model))
        for target in args.targets.split(","):
            rows = {}
            for mode in args.modes.split(","):
                out = Path(scratch) / f"{target}-{mode}"
                try:
                    with contextlib.redirect_stdout(sys.stderr):
                        manifest = export_bundle(bundle, target, quantization_config(mode), out).manifest
                except Exception as exc:  # a route that cannot express the mode: say so and go on
                    print(f"{target:10s} {mode:12s} export failed: {str(exc).splitlines()[0][:200]}")
                    continue
                measurement = run_benchmark(resolve_request(out, None, None, "host", 1, Protocol(5, 30, 2.0)))
                rows[mode] = (manifest, measurement.result.get("latency_ms_p50"))
            base = rows.get("none")
            for mode, (manifest, p50) in rows.items():
                metrics = next((o["metrics"] for o in manifest["validation"].get("outputs", [])), {})
                size = manifest["size_bytes"] / base[0]["size_bytes"] if base else float("nan")
                ratio = p50 / base[1] if base and p50 and base[1] else float("nan")
                note = "" if mode == "none" else f"  {explain(manifest, ratio, features)}"
                p50_text = f"{p50:.2f} ms" if p50 else "not measured"
                print(f"{target:10s} {mode:12s} cosine mean {metrics.get('cosine_mean', float('nan')):.4f} "
                      f"worst {metrics.get('cosine_worst', float('nan')):.4f}  size {manifest['size_bytes'] / 1e6:6.1f} MB "
                      f"({size:.3f}x fp32)  p50 {p50_text} ({ratio:.2f}x fp32)  "
                      f"validation {'passed' if manifest['validation'].get('passed') else 'FAILED'}{note}")


if __name__ == "__main__":
    main()
