"""The main job on embedded defaults: train the reference models, export every TFLite mode, compare."""

from __future__ import annotations

from pathlib import Path

from pipeline.export import ExportResult, export_bundle
from pipeline.intake import load_model
from pipeline.intake.card import card_path
from pipeline.table import format_table
from pipeline.zoo import ZOO
from pipeline.zoo.train import default_model_path, train_zoo_model
from quantize import quantization_config

TARGET = "tflite"
MODES = ("none", "fp16", "dynamic-int8", "int8")


def ensure_trained(name: str, framework: str, models_dir: Path, retrain: bool) -> Path:
    """The zoo model's path, training it first unless a trained copy with a card exists."""
    path = default_model_path(name, framework, models_dir)
    if retrain or not (path.is_file() and card_path(path).is_file()):
        train_zoo_model(name, framework, path)
    return path


def comparison_rows(results: list[tuple[str, str, str, ExportResult]]) -> list[tuple[object, ...]]:
    """One row per artifact; size ratio against the same model's fp32 artifact."""
    fp32 = {(m, fw): r.manifest["size_bytes"] for m, fw, mode, r in results if mode == "none"}
    rows = []
    for model, framework, mode, result in results:
        manifest, validation = result.manifest, result.manifest["validation"]
        rows.append((
            model, framework, mode,
            manifest["size_bytes"], manifest["size_bytes_gzip"],
            round(manifest["size_bytes"] / fp32[(model, framework)], 3),
            f"{validation['source_accuracy']:.2%}", f"{validation['artifact_accuracy']:.2%}",
            f"{validation['top1_agreement']:.2%}", f"{validation['max_abs_error']:.2g}",
            "yes" if validation["passed"] else "NO", round(manifest["export_seconds"], 2),
        ))
    return rows


def run_demo(workspace: Path, retrain: bool = False) -> str:
    """Train (if needed) and export every zoo model in every mode; returns the comparison table."""
    results = []
    for name, entry in ZOO.items():
        for framework in entry.builders:
            path = ensure_trained(name, framework, workspace / "models", retrain)
            bundle = load_model(str(path))
            for mode in MODES:
                out = workspace / "artifacts" / f"{name}-{framework}" / f"{TARGET}-{mode}"
                result = export_bundle(bundle, TARGET, quantization_config(mode), out)
                results.append((name, framework, mode, result))
    headers = ["model", "framework", "quantize", "bytes", "gzip bytes", "vs fp32", "source acc",
               "artifact acc", "agreement", "max abs err", "passed", "export s"]
    return format_table(headers, comparison_rows(results))
