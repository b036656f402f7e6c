"""Exporters, one per target format, registered by target name."""

from exporters.base import AppliedStage, Exporter, ExportOutput, modes_for
from exporters.executorch import ExecuTorchExporter
from exporters.tfjs import TFJSExporter
from exporters.tflite import TFLiteExporter
from pipeline.core.registry import Registry

EXPORTERS: Registry[Exporter] = Registry("target")
EXPORTERS.register("tflite", TFLiteExporter())
EXPORTERS.register("executorch", ExecuTorchExporter())
EXPORTERS.register("tfjs", TFJSExporter())

__all__ = ["EXPORTERS", "AppliedStage", "ExecuTorchExporter", "ExportOutput", "Exporter", "TFJSExporter", "TFLiteExporter", "modes_for"]
