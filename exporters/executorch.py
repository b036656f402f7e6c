"""ExecuTorch target: one `model.pte`, from PyTorch, XNNPACK-delegated or on portable kernels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporters.base import ExportOutput
from exporters.routes import torch_to_executorch
from pipeline.bundle import ModelBundle
from pipeline.errors import ConfigError
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
    routes = {"torch": torch_to_executorch.ROUTE}
    quantization_modes = torch_to_executorch.SUPPORTED_MODES

    def export(self, bundle: ModelBundle, out_dir: Path, quantization: QuantizationConfig, config: ExecuTorchConfig) -> ExportOutput:
        stages, report = torch_to_executorch.convert_torch_to_executorch(
            bundle, out_dir / MODEL_FILE, quantization, config.delegate
        )
        return ExportOutput(
            model_file=MODEL_FILE,
            files=(MODEL_FILE,),
            route=self.routes[bundle.framework] if config.delegate == "xnnpack" else
            "torch.export -> to_edge (portable kernels) -> to_executorch",
            validation_delegate="xnnpack" if config.delegate == "xnnpack" else "portable",
            stages=stages,
            toolchain_packages=("torch", "executorch", "torchao"),
            delegation=report,
        )
