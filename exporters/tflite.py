"""TFLite / LiteRT target: one `model.tflite`, from Keras, TensorFlow or PyTorch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporters.base import ExportOutput
from exporters.routes import tf_to_tflite, torch_to_tflite
from pipeline.core.bundle import ModelBundle
from quantize import QuantizationConfig, explain_refusal, handler_for

MODEL_FILE = "model.tflite"
PACKAGES = {
    "keras": ("tensorflow", "keras", "ai-edge-quantizer", "tensorflow-model-optimization", "ai-edge-litert"),
    "tensorflow": ("tensorflow", "keras", "ai-edge-quantizer", "ai-edge-litert"),
    "torch": ("torch", "litert-torch", "ai-edge-quantizer", "torchao", "ai-edge-litert"),
}


@dataclass(frozen=True)
class TFLiteConfig:
    """TFLite export options (none yet beyond quantization); validation runs on XNNPACK."""


class TFLiteExporter:
    """Exports to `.tflite`, validated in the LiteRT interpreter."""

    target = "tflite"
    runtime = "litert"
    packages = PACKAGES
    config_cls = TFLiteConfig
    routes = {
        "keras": tf_to_tflite.KERAS_ROUTE,
        "tensorflow": tf_to_tflite.SAVED_MODEL_ROUTE,
        "torch": torch_to_tflite.ROUTE,
    }

    def export(self, bundle: ModelBundle, out_dir: Path, quantization: QuantizationConfig, config: TFLiteConfig) -> ExportOutput:
        handler = handler_for(quantization.mode, bundle.framework, self.target)
        stages = handler(bundle, out_dir / MODEL_FILE, quantization)
        casts = torch_to_tflite.input_casts(bundle, out_dir / MODEL_FILE) if bundle.framework == "torch" else {}
        weights = {} if bundle.framework == "torch" else tf_to_tflite.weight_notes(bundle, out_dir / MODEL_FILE,
                                                                                    quantization.mode)
        return ExportOutput(
            model_file=MODEL_FILE,
            files=(MODEL_FILE,),
            route=self.routes[bundle.framework],
            validation_delegate="xnnpack",
            stages=stages,
            toolchain_packages=PACKAGES[bundle.framework],
            notes={**({"input_casts": casts} if casts else {}), **weights},
        )


for _framework in TFLiteExporter.routes:
    for _mode in ("uint8", "uint16"):
        explain_refusal(_mode, _framework, TFLiteExporter.target, "uint8/uint16 are TF.js weight formats; TFLite's "
                        "8-bit weights are weight-int8 (float compute) or dynamic-int8")
