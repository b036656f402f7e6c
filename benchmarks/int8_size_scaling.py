"""Where an int8 .tflite's bytes go, and how its size ratio to fp32 falls as the network grows.

Run: .venv/bin/python benchmarks/int8_size_scaling.py
For the zoo's MobileNetV2-class network (87k parameters) and Keras' MobileNetV2 at alpha 0.35 and 1.0
(1.7M and 3.5M parameters, 224x224, freshly initialised: size does not depend on the weights'
values), exports fp32 and full-integer int8 (per-channel weights, calibrated on procedural-shapes
images) through the real TFLite route and splits each file into weight buffers, quantization
parameters (one float32 scale and one int64 zero point per channel) and the rest (graph, names).
The target, int8 <= 0.27x fp32, is printed as met/missed per network (per-channel, as exported by
default); the last column is the same export with per-tensor weight scales.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def breakdown(path: Path) -> dict[str, int]:
    """File size split into constant buffers, quantization parameters and everything else."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    buffers = sum(len(b.data) for b in model.buffers if b.data is not None)
    params = 0
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            q = tensor.quantization
            if q is not None and q.scale is not None:
                params += 4 * len(q.scale) + 8 * (len(q.zeroPoint) if q.zeroPoint is not None else 0)
    total = path.stat().st_size
    return {"total": total, "buffers": buffers, "quant_params": params, "other": total - buffers - params}


def _networks() -> list[tuple[str, Any, int]]:
    import keras

    from pipeline.zoo.mobilenet_v2 import build_keras

    keras.utils.set_random_seed(0)
    return [
        ("zoo mobilenet-v2-shapes (64x64)", build_keras(), 64),
        ("keras MobileNetV2 alpha 0.35 (224)", keras.applications.MobileNetV2((224, 224, 3), alpha=0.35, weights=None), 224),
        ("keras MobileNetV2 alpha 1.0 (224)", keras.applications.MobileNetV2((224, 224, 3), alpha=1.0, weights=None), 224),
    ]


def main() -> None:
    import numpy as np
    import tensorflow as tf

    from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
    from pipeline.core.datasets import Dataset, load_dataset
    from pipeline.export import export_bundle
    from quantize import Int8StaticConfig, quantization_config

    shapes = load_dataset("shapes").calibration
    print(f"{'network':<38} {'params':>9} {'fp32 B':>10} {'int8 B':>10} {'ratio':>6} {'weights':>8} "
          f"{'qparams':>8} {'other':>7}  target <= 0.27  {'per-tensor':>10}")
    for name, model, side in _networks():
        images = tf.image.resize(shapes.x[:100], (side, side)).numpy().astype(np.float32)
        data = Dataset("shapes-resized", images, None, "NHWC")
        bundle = ModelBundle("keras", model, TensorSpec("image", (None, side, side, 3), layout="NHWC"),
                             SourceInfo("keras", "builder", name, ""), calibration_data=data)
        with tempfile.TemporaryDirectory() as scratch:
            sizes = {}
            configs = {"none": quantization_config("none"), "int8": Int8StaticConfig(),
                       "int8-per-tensor": Int8StaticConfig(per_channel=False)}
            for label, config in configs.items():
                out = Path(scratch) / label
                with contextlib.redirect_stdout(sys.stderr):
                    export_bundle(bundle, "tflite", config, out, run_validation=False)
                sizes[label] = breakdown(out / "model.tflite")
        fp32, int8 = sizes["none"], sizes["int8"]
        ratio = int8["total"] / fp32["total"]
        print(f"{name:<38} {model.count_params():>9,} {fp32['total']:>10,} {int8['total']:>10,} {ratio:>6.3f} "
              f"{int8['buffers'] / fp32['buffers']:>8.3f} {int8['quant_params']:>8,} {int8['other']:>7,}  "
              f"{'met' if ratio <= 0.27 else 'missed':<14}  {sizes['int8-per-tensor']['total'] / fp32['total']:>10.3f}")
    print("weights = int8 constant buffers / fp32 constant buffers; qparams and other in bytes of the int8 file")


if __name__ == "__main__":
    main()
