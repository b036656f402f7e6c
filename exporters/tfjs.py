"""TensorFlow.js target: a graph model (`model.json` + weight shards) from Keras, a SavedModel or PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporters.base import ExportOutput
from exporters.routes import onnx_bridge, tf_to_tfjs
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ConfigError
from quantize import QuantizationConfig

MIB = 1024 * 1024


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
    config_cls = TFJSConfig
    routes = {
        "keras": tf_to_tfjs.KERAS_ROUTE,
        "tensorflow": tf_to_tfjs.SAVED_MODEL_ROUTE,
        "torch": onnx_bridge.TORCH_TO_TFJS_NCHW_ROUTE,
    }
    quantization_modes = tuple(tf_to_tfjs.QUANTIZATION_DTYPE_MAPS)
    refused_modes: dict[str, tuple[str, ...]] = {}

    def export(self, bundle: ModelBundle, out_dir: Path, quantization: QuantizationConfig, config: TFJSConfig) -> ExportOutput:
        if bundle.framework == "torch":  # through ONNX; the input keeps the source's NCHW layout
            stages = onnx_bridge.convert_torch_to_tfjs(bundle, out_dir, quantization, config.shard_size_bytes, "NCHW")
            packages = ("torch", "onnx", "onnxscript", "onnx2tf", "tensorflow", "tensorflowjs")
        else:
            stages = tf_to_tfjs.convert_tf_to_tfjs(bundle, out_dir, quantization, config.shard_size_bytes)
            packages = ("tensorflow", "keras", "tensorflowjs")
        files = tuple(sorted(p.name for p in out_dir.iterdir() if p.is_file()))
        return ExportOutput(
            model_file=tf_to_tfjs.MODEL_JSON,
            files=files,
            route=self.routes[bundle.framework],
            validation_delegate="wasm",
            stages=stages,
            toolchain_packages=packages,
        )
