"""ExecuTorch target: one `model.pte` from PyTorch (or Keras through ONNX), XNNPACK-delegated or portable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporters.base import ExportOutput
from exporters.routes import tf_to_executorch, torch_to_executorch
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ConfigError
from quantize import QuantizationConfig, handler_for

MODEL_FILE = "model.pte"
_LOWERING = ("torch", "executorch", "torchao")
PACKAGES = {
    "torch": _LOWERING,
    "keras": ("tensorflow", "tf2onnx", "onnx", "onnx2fx", *_LOWERING),
    "tensorflow": ("tensorflow", "tf2onnx", "onnx", "onnx2fx", *_LOWERING),
}
DELEGATES = ("xnnpack", "none")


@dataclass(frozen=True)
class ExecuTorchConfig:
    """`delegate`: 'xnnpack' (XnnpackPartitioner) or 'none' (portable kernels only)."""

    delegate: str = "xnnpack"

    def __post_init__(self) -> None:
        if self.delegate not in DELEGATES:
            raise ConfigError(f"ExecuTorch delegate '{self.delegate}' is not known. Options: {', '.join(DELEGATES)}.")


class ExecuTorchExporter:
    """Exports to `.pte`, validated in ExecuTorch's own runtime."""

    target = "executorch"
    runtime = "executorch"
    packages = PACKAGES
    config_cls = ExecuTorchConfig
    routes = {
        "torch": torch_to_executorch.ROUTE,
        "keras": tf_to_executorch.KERAS_TO_EXECUTORCH_ROUTE,
        "tensorflow": tf_to_executorch.SAVED_MODEL_TO_EXECUTORCH_ROUTE,
    }

    def export(self, bundle: ModelBundle, out_dir: Path, quantization: QuantizationConfig, config: ExecuTorchConfig) -> ExportOutput:
        handler = handler_for(quantization.mode, bundle.framework, self.target)
        stages, report = handler(bundle, out_dir / MODEL_FILE, quantization, config.delegate)
        return ExportOutput(
            model_file=MODEL_FILE,
            files=(MODEL_FILE,),
            route=self.routes[bundle.framework] if config.delegate == "xnnpack" else
            self.routes[bundle.framework].replace("(XnnpackPartitioner)", "(portable kernels, no delegate)"),
            validation_delegate="xnnpack" if config.delegate == "xnnpack" else "portable",
            stages=stages,
            toolchain_packages=PACKAGES[bundle.framework],
            delegation=report,
        )
