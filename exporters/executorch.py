"""ExecuTorch target: one `model.pte` from PyTorch (or Keras through ONNX), XNNPACK-delegated or portable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporters.base import ExportOutput
from exporters.routes import onnx_bridge, torch_to_executorch
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ConfigError
from quantize import QuantizationConfig

MODEL_FILE = "model.pte"
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
    config_cls = ExecuTorchConfig
    routes = {
        "torch": torch_to_executorch.ROUTE,
        "keras": onnx_bridge.KERAS_TO_EXECUTORCH_ROUTE,
        "tensorflow": onnx_bridge.SAVED_MODEL_TO_EXECUTORCH_ROUTE,
    }
    quantization_modes = (*torch_to_executorch.SUPPORTED_MODES, *torch_to_executorch.TORCH_ONLY_MODES)
    refused_modes = {"keras": torch_to_executorch.TORCH_ONLY_MODES, "tensorflow": torch_to_executorch.TORCH_ONLY_MODES}

    def export(self, bundle: ModelBundle, out_dir: Path, quantization: QuantizationConfig, config: ExecuTorchConfig) -> ExportOutput:
        convert = (torch_to_executorch.convert_torch_to_executorch if bundle.framework == "torch"
                   else onnx_bridge.convert_keras_to_executorch)
        stages, report = convert(bundle, out_dir / MODEL_FILE, quantization, config.delegate)
        bridge = () if bundle.framework == "torch" else ("tensorflow", "tf2onnx", "onnx", "onnx2fx")
        return ExportOutput(
            model_file=MODEL_FILE,
            files=(MODEL_FILE,),
            route=self.routes[bundle.framework] if config.delegate == "xnnpack" else
            self.routes[bundle.framework].replace("(XnnpackPartitioner)", "(portable kernels, no delegate)"),
            validation_delegate="xnnpack" if config.delegate == "xnnpack" else "portable",
            stages=stages,
            toolchain_packages=(*bridge, "torch", "executorch", "torchao"),
            delegation=report,
        )
