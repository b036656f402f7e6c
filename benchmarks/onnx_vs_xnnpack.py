"""ONNX Runtime next to LiteRT XNNPACK and ExecuTorch XNNPACK: one source model, one host, 1 thread, fp32 and int8.

(Not named onnx.py: run as a script, that name would shadow the onnx package.)

Run: .venv/bin/python benchmarks/onnx_vs_xnnpack.py [MODEL ...]
MODEL is a zoo model (mobilenet-v2-shapes, digits-cnn: PyTorch source, shipped weights) or mobilenet-v2-1.0-224
(keras.applications MobileNetV2 1.0 224, 3.5M parameters, weights=None, calibrated and timed on 8 uniform random
images, as the calibration anchor is). Default: mobilenet-v2-shapes and mobilenet-v2-1.0-224, one after the other.
Each model is exported to each target in fp32 and static int8, validated against its source, and measured in the
isolated worker on the host profile (1 thread). Prints p50, size, the int8/fp32 size and p50 ratios and the
validation outcome per target, side by side, and ONNX Runtime's int8 scheme (U8S8 on x86, S8S8 on Arm).
Takes about 10 minutes for MobileNetV2 1.0 224 on a 2-core host (the ExecuTorch bridge and three calibrations).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")

RUNS = {"tflite": ("litert", "xnnpack"), "executorch": ("executorch", "xnnpack"), "onnx": ("onnxruntime", "cpu")}
MOBILENET_V2_224 = "mobilenet-v2-1.0-224"
DEFAULT_MODELS = ("mobilenet-v2-shapes", MOBILENET_V2_224)
RANDOM_SAMPLES = 8


def keras_mobilenet_v2() -> Any:
    """MobileNetV2 1.0 224 from keras.applications (weights=None, seed 0) with 8 uniform random images as data."""
    import keras
    import numpy as np

    from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
    from pipeline.core.datasets import Dataset

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, weights=None)
    data = Dataset("random-uniform", np.random.default_rng(0).random((RANDOM_SAMPLES, 224, 224, 3), dtype=np.float32),
                   None, "NHWC")
    return ModelBundle(framework="keras", model=model, inputs=(TensorSpec("input", (None, 224, 224, 3)),),
                       source=SourceInfo("keras", "keras.applications", "MobileNetV2 1.0 224 (weights=None)", ""),
                       eval_data=data, calibration_data=data)


def source_bundle(model: str, scratch: Path) -> Any:
    from pipeline.intake import load_model
    from pipeline.zoo.materialize import materialize

    if model == MOBILENET_V2_224:
        return keras_mobilenet_v2()
    return load_model(str(materialize(model, "torch", scratch / f"{model}.pt2").path))


def compare(model: str, scratch: Path) -> None:
    """Export `model` to every target in fp32 and int8, measure each, print one row per target."""
    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark
    from pipeline.export import export_bundle
    from quantize import quantization_config

    bundle = source_bundle(model, scratch)
    parameters = f", {bundle.model.count_params():,} parameters" if bundle.framework == "keras" else ""
    print(f"\n{model} ({bundle.framework}{parameters}), host, 1 thread, protocol: 10 warm-up, >= 100 runs, >= 2 s")
    print(f"{'target':10s} {'runtime/delegate':22s} {'fp32 p50':>10s} {'int8 p50':>10s} {'p50 x':>6s} "
          f"{'fp32 B':>11s} {'int8 B':>11s} {'size x':>7s}  validation")
    for target, (runtime, delegate) in RUNS.items():
        p50, size, passed, stages = {}, {}, {}, {}
        for mode in ("none", "int8"):
            out = scratch / f"{model}-{target}-{mode}"
            with contextlib.redirect_stdout(sys.stderr):
                manifest = export_bundle(bundle, target, quantization_config(mode), out).manifest
            measurement = run_benchmark(resolve_request(out, runtime, delegate, "host", 1, Protocol(10, 100, 2.0)))
            if measurement.status != "ok":
                raise SystemExit(f"{model} {target} {mode}: {measurement.status}: {measurement.error}")
            p50[mode], size[mode] = measurement.result["latency_ms_p50"], manifest["size_bytes"]
            passed[mode], stages[mode] = manifest["validation"]["passed"], manifest["stages"]
        print(f"{target:10s} {runtime + '/' + delegate:22s} {p50['none']:9.3f}ms {p50['int8']:9.3f}ms "
              f"{p50['int8'] / p50['none']:6.2f} {size['none']:11,} {size['int8']:11,} {size['int8'] / size['none']:7.3f}  "
              f"fp32 {'pass' if passed['none'] else 'FAIL'}, int8 {'pass' if passed['int8'] else 'FAIL'}")
        types = next((s["config"].get("int8_types") for s in stages["int8"] if s["name"] == "quantize"), None)
        if types:
            print(f"{'':10s} int8 scheme {types['scheme']} (activations {types['activations']}, weights "
                  f"{types['weights']}) chosen for {types['chosen_for']}")


def main(*models: str) -> None:
    from pipeline.core.host import describe_int8_features

    print(f"host: {describe_int8_features()}")
    with tempfile.TemporaryDirectory() as scratch:
        for model in models or DEFAULT_MODELS:
            compare(model, Path(scratch))


if __name__ == "__main__":
    main(*sys.argv[1:])
