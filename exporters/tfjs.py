"""TensorFlow.js target: a graph model (`model.json` + weight shards) from Keras, a SavedModel or PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporters.base import ExportOutput
from exporters.routes import tf_to_tfjs, torch_to_tfjs
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ConfigError
from quantize import QuantizationConfig, explain_refusal, handler_for, technique_modes

MIB = 1024 * 1024
PACKAGES = {  # the PyTorch route goes through ONNX; its input keeps the source's NCHW layout
    "keras": ("tensorflow", "keras", "tensorflowjs"),
    "tensorflow": ("tensorflow", "keras", "tensorflowjs"),
    "torch": ("torch", "onnx", "onnxscript", "onnx2tf", "tensorflow", "tensorflowjs"),
}


@dataclass(frozen=True)
class TFJSConfig:
    """`shard_size_bytes`: the converter's weight shard size (4 MiB by default, as tfjs does)."""

    shard_size_bytes: int = 4 * MIB

    def __post_init__(self) -> None:
        if self.shard_size_bytes < 1024:
            raise ConfigError(f"shard_size_bytes must be >= 1024, got {self.shard_size_bytes} (--shard-size is in bytes).")


class TFJSExporter:
    """Exports to a TF.js graph model, validated in TF.js under Node.js (wasm backend)."""

    target = "tfjs"
    runtime = "tfjs-node"
    packages = PACKAGES
    config_cls = TFJSConfig
    routes = {
        "keras": tf_to_tfjs.KERAS_ROUTE,
        "tensorflow": tf_to_tfjs.SAVED_MODEL_ROUTE,
        "torch": torch_to_tfjs.TORCH_TO_TFJS_NCHW_ROUTE,
    }

    def export(self, bundle: ModelBundle, out_dir: Path, quantization: QuantizationConfig, config: TFJSConfig) -> ExportOutput:
        handler = handler_for(quantization.mode, bundle.framework, self.target)
        stages = handler(bundle, out_dir, quantization, config.shard_size_bytes)
        files = tuple(sorted(p.name for p in out_dir.iterdir() if p.is_file()))
        notes = {} if bundle.framework == "torch" else tf_to_tfjs.weight_notes(bundle, out_dir, quantization.mode)
        return ExportOutput(
            model_file=tf_to_tfjs.MODEL_JSON,
            files=files,
            route=self.routes[bundle.framework],
            validation_delegate="wasm",
            stages=stages,
            toolchain_packages=PACKAGES[bundle.framework],
            notes=notes,
        )


for _framework in TFJSExporter.routes:
    for _mode in technique_modes():
        if _mode not in tf_to_tfjs.QUANTIZATION_DTYPE_MAPS:
            explain_refusal(_mode, _framework, TFJSExporter.target, "TF.js quantizes weights only (fp16, or affine "
                            "uint8/uint16 dequantized at load) and computes in float32; export to tflite for integer compute")
