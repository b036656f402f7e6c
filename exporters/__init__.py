"""Exporters, one per target format, registered by target name.

Importing this package imports every route module, so each (mode, route) handler is registered; the
registry queries are re-exported here for callers that need both (`pipeline routes`, the sweep, the demo).
"""

from exporters.base import AppliedStage, Exporter, ExportOutput, toolchain
from exporters.executorch import ExecuTorchExporter
from exporters.onnx import ONNXExporter
from exporters.tfjs import TFJSExporter
from exporters.tflite import TFLiteExporter
from pipeline.core.registry import Registry
from quantize.route_handlers import handler_for, modes_for, routes_for, target_modes

EXPORTERS: Registry[Exporter] = Registry("target")
EXPORTERS.register("tflite", TFLiteExporter())
EXPORTERS.register("executorch", ExecuTorchExporter())
EXPORTERS.register("tfjs", TFJSExporter())
EXPORTERS.register("onnx", ONNXExporter())


def route_table() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(source framework, target, quantization modes, converter chain) for every route, targets by name (as `pipeline routes`)."""
    return [(framework, target, modes_for(framework, target), chain)
            for target, exporter in EXPORTERS.items() for framework, chain in exporter.routes.items()]


__all__ = ["EXPORTERS", "AppliedStage", "ExecuTorchExporter", "ExportOutput", "Exporter", "ONNXExporter", "TFJSExporter", "TFLiteExporter",
           "handler_for", "modes_for", "route_table", "routes_for", "target_modes", "toolchain"]
