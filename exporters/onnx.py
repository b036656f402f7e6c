"""ONNX target: one `model.onnx` from PyTorch (torch.onnx, dynamo) or Keras / a SavedModel (tf2onnx), run in ONNX Runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporters.base import ExportOutput
from exporters.routes import onnx_modes, tf_to_onnx, torch_to_onnx
from exporters.routes.onnx_common import OPSET
from pipeline.core.bundle import ModelBundle
from quantize import QuantizationConfig, handler_for

MODEL_FILE = "model.onnx"
PACKAGES = {
    "torch": ("torch", "onnx", "onnxscript", "onnxruntime"),
    "keras": ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"),
    "tensorflow": ("tensorflow", "tf2onnx", "onnx", "onnxruntime"),
}


@dataclass(frozen=True)
class ONNXConfig:
    """ONNX export options (none yet beyond quantization); the opset is fixed (see `graph` in the manifest's notes)."""


def graph_notes(model_file: Path) -> dict[str, object]:
    """The saved model's opset(s), IR version, producer and node count, as the manifest's notes record them."""
    import onnx

    proto = onnx.load(str(model_file), load_external_data=False)
    used = {node.domain or "ai.onnx" for node in proto.graph.node}
    opsets = {entry.domain or "ai.onnx": entry.version for entry in proto.opset_import if (entry.domain or "ai.onnx") in used}
    return {"opset": opsets.get("ai.onnx"), "opset_imports": opsets, "ir_version": proto.ir_version,
            "producer": f"{proto.producer_name} {proto.producer_version}".strip(), "nodes": len(proto.graph.node)}


class ONNXExporter:
    """Exports to `.onnx`, validated in ONNX Runtime (CPU execution provider)."""

    target = onnx_modes.TARGET  # the name its route module registers every mode's handler under
    runtime = "onnxruntime"
    packages = PACKAGES
    config_cls = ONNXConfig
    routes = {
        "torch": torch_to_onnx.ROUTE,
        "keras": tf_to_onnx.KERAS_ROUTE,
        "tensorflow": tf_to_onnx.SAVED_MODEL_ROUTE,
    }

    def export(self, bundle: ModelBundle, out_dir: Path, quantization: QuantizationConfig, config: ONNXConfig) -> ExportOutput:
        handler = handler_for(quantization.mode, bundle.framework, self.target)
        stages = handler(bundle, out_dir / MODEL_FILE, quantization)
        return ExportOutput(
            model_file=MODEL_FILE,
            files=(MODEL_FILE,),
            route=self.routes[bundle.framework],
            validation_delegate="cpu",
            stages=stages,
            toolchain_packages=PACKAGES[bundle.framework],
            notes={"graph": {**graph_notes(out_dir / MODEL_FILE), "opset_requested": OPSET}},
        )

