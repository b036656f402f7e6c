"""TFLite / LiteRT target: one `model.tflite`, from Keras, TensorFlow or PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporters.base import ExportOutput
from exporters.routes import tf_to_tflite, torch_to_tflite
from pipeline.core.bundle import ModelBundle
from quantize import QuantizationConfig

MODEL_FILE = "model.tflite"


@dataclass(frozen=True)
class TFLiteConfig:
    """TFLite export options (none yet beyond quantization); validation runs on XNNPACK."""


class TFLiteExporter:
    """Exports to `.tflite`, validated in the LiteRT interpreter."""

    target = "tflite"
    runtime = "litert"
    config_cls = TFLiteConfig
    routes = {
        "keras": tf_to_tflite.KERAS_ROUTE,
        "tensorflow": tf_to_tflite.SAVED_MODEL_ROUTE,
        "torch": torch_to_tflite.ROUTE,
    }
    quantization_modes = ("none", "fp16", "dynamic-int8", "weight-int8", "int8", "qat-int8")
    refused_modes = {"tensorflow": ("qat-int8",)}  # QAT fine-tunes a Keras or PyTorch model, not a SavedModel

    def export(self, bundle: ModelBundle, out_dir: Path, quantization: QuantizationConfig, config: TFLiteConfig) -> ExportOutput:
        model_file = out_dir / MODEL_FILE
        if bundle.framework == "torch":
            stages = torch_to_tflite.convert_torch_to_tflite(bundle, model_file, quantization)
            packages = ("torch", "litert-torch", "ai-edge-quantizer", "torchao")
        else:
            stages = tf_to_tflite.convert_tf_to_tflite(bundle, model_file, quantization)
            packages = ("tensorflow", "keras")
        return ExportOutput(
            model_file=MODEL_FILE,
            files=(MODEL_FILE,),
            route=self.routes[bundle.framework],
            validation_delegate="xnnpack",
            stages=stages,
            toolchain_packages=(*packages, "ai-edge-litert"),
        )
