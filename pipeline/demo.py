"""The main job on embedded defaults: train the reference models, export every route and mode, compare."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.locks import exclusive_lock
from pipeline.core.manifest import format_metric, task_metric
from pipeline.core.table import format_table
from pipeline.export import ExportResult, export_bundle
from pipeline.intake import load_model
from pipeline.intake.card import card_path
from pipeline.zoo import ZOO
from pipeline.zoo.materialize import materialize
from pipeline.zoo.train import default_model_path
from quantize import quantization_config

HEADERS = ["model", "framework", "target", "quantize", "bytes", "gzip bytes", "vs fp32", "task metric",
           "source acc", "artifact acc", "delegated", "passed", "export s"]


@dataclass(frozen=True)
class DemoRow:
    """One exported artifact of the demo grid."""

    model: str
    framework: str
    target: str
    mode: str
    result: ExportResult


def ensure_trained(name: str, framework: str, models_dir: Path, retrain: bool,
                   out: Callable[[str], None] = lambda line: None) -> Path:
    """The zoo model's path, written first (the shipped weights copied, a pretrained model exported, or trained with
    `retrain`; said on `out`) unless a copy with a card exists."""
    path = default_model_path(name, framework, models_dir)

    def missing() -> bool:
        return not (path.is_file() and card_path(path).is_file())

    if not (retrain or missing()):
        return path
    waiting = lambda owner: out(f"train  {name}/{framework}: {owner.describe()} is training it; waiting")  # noqa: E731
    # not lock_path(path): the training writes the model through staged_file, which takes that one
    with exclusive_lock(path.parent / f".{path.name}.train.lock", on_wait=waiting) as waited:
        if (retrain and not waited) or missing():  # a concurrent sweep may have trained it meanwhile
            done = materialize(name, framework, path, retrain=retrain)
            out(f"model  {name}/{framework}: {done.describe()}")
    return path


def comparison_rows(rows: list[DemoRow]) -> list[tuple[object, ...]]:
    """One table row per artifact; size ratio against the same model/framework/target in fp32."""
    fp32 = {(r.model, r.framework, r.target): r.result.manifest["size_bytes"] for r in rows if r.mode == "none"}
    table = []
    for row in rows:
        manifest, validation = row.result.manifest, row.result.manifest["validation"]
        delegation = manifest.get("delegation") or {}
        baseline = fp32.get((row.model, row.framework, row.target))
        label, value = task_metric(manifest)
        table.append((
            row.model, row.framework, row.target, row.mode,
            manifest["size_bytes"], manifest["size_bytes_gzip"],
            round(manifest["size_bytes"] / baseline, 3) if baseline else None,
            f"{label} {format_metric(label, value)}",
            format_metric("accuracy", validation.get("source_accuracy")),
            format_metric("accuracy", validation.get("artifact_accuracy")),
            f"{delegation.get('ops_delegated', 0)}/{delegation.get('ops_total', 0)}",
            "yes" if validation["passed"] else "NO", round(manifest["export_seconds"], 2),
        ))
    return table


def run_demo(workspace: Path, retrain: bool = False, models: list[str] | None = None) -> str:
    """Train (if needed) and export every zoo model over every route and the modes it can express; returns the table."""
    from exporters import EXPORTERS, modes_for

    rows = []
    for name in models or [n for n in ZOO.names() if ZOO.get(n).pretrained is None]:  # pretrained: ask by name
        entry = ZOO.get(name)
        for framework in entry.builders:
            bundle = load_model(str(ensure_trained(name, framework, workspace / "models", retrain)))
            for target, exporter in EXPORTERS.items():
                if framework not in exporter.routes:
                    continue
                for mode in modes_for(framework, target):
                    out = workspace / "artifacts" / f"{name}-{framework}" / f"{target}-{mode}"
                    result = export_bundle(bundle, target, quantization_config(mode), out)
                    rows.append(DemoRow(name, framework, target, mode, result))
    return format_table(HEADERS, comparison_rows(rows))
