"""Exporters, one per target format, registered by target name."""

from exporters.base import AppliedStage, Exporter, ExportOutput
from exporters.tflite import TFLiteExporter
from pipeline.registry import Registry

EXPORTERS: Registry[Exporter] = Registry("target")
EXPORTERS.register("tflite", TFLiteExporter())

__all__ = ["EXPORTERS", "AppliedStage", "ExportOutput", "Exporter", "TFLiteExporter"]
