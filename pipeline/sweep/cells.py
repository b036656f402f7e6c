"""The work of one sweep cell, as plain functions an executor can ship to another process or machine."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.core.records import ExportRow, Measurement
from pipeline.sweep.plan import BenchCell, ExportCell
from pipeline.sweep.recipe import MeasureSpec

OnFailure = Callable[[tuple[Any, ...], str, str], Any]  # (args, error, executor name) -> the result it stands for


def stage_configs(prune: str | None) -> list[Any]:
    if not prune:
        return []
    from quantize.pruning import parse_prune

    return [parse_prune(prune)]


def run_export_cell(cell: ExportCell, model_ref: str, eval_data: str | None, calibration: str | None,
                    artifact_dir: str) -> dict[str, Any]:
    """Export one (model, variant, target); returns the `exports` row (failures included, never raised)."""
    started = time.perf_counter()
    status, error, manifest_sha256 = "failed", None, None
    try:
        from pipeline.core.datasets.npz import load_npz
        from pipeline.core.files import sha256_file
        from pipeline.export import export_bundle
        from pipeline.intake import load_model
        from quantize import quantization_config

        bundle = load_model(model_ref)
        layout = bundle.input_spec.layout
        bundle = bundle.with_data(eval_data=load_npz(Path(eval_data), layout) if eval_data else None,
                                  calibration_data=load_npz(Path(calibration), layout) if calibration else None)
        result = export_bundle(bundle, cell.target, quantization_config(cell.variant.quantize), Path(artifact_dir),
                               stages=stage_configs(cell.variant.prune))
        if result.validation_passed is False:
            error = "validation failed: " + "; ".join(result.manifest["validation"]["failures"])
        else:
            status = "ok"
        manifest_sha256 = sha256_file(Path(artifact_dir) / "manifest.json")
    except PipelineError as exc:
        error = str(exc)
    return _export_row(cell, artifact_dir, status, error, manifest_sha256, time.perf_counter() - started)


def _export_row(cell: ExportCell, artifact_dir: str, status: str, error: str | None, manifest_sha256: str | None,
                seconds: float) -> dict[str, Any]:
    return ExportRow(model=cell.model.name, framework=cell.model.framework or "user", variant=cell.variant.name,
                     target=cell.target, artifact_dir=artifact_dir, status=status, error=error,
                     manifest_sha256=manifest_sha256, seconds=round(seconds, 3)).to_json()


def run_bench_cell(cell: BenchCell, artifact_dir: str, measure: MeasureSpec, calibration: dict[str, Any] | None,
                   cell_key: str) -> dict[str, Any]:
    """Measure one artifact on one runtime/device in an isolated worker; returns the measurement record."""
    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark

    protocol = Protocol(measure.warmup_runs, measure.min_runs, measure.min_duration_s)
    fraction = calibration["active_fraction"] if calibration else 1.0
    request = resolve_request(Path(artifact_dir), cell.runtime.runtime, cell.runtime.delegate, cell.device,
                              cell.runtime.threads, protocol, active_fraction=fraction, calibration=calibration)
    request = replace(request, timeout_s=measure.timeout_s)
    return replace(run_benchmark(request), cell_key=cell_key).to_json()


def failed_export_row(args: tuple[Any, ...], error: str, executor: str) -> dict[str, Any]:
    """The row `run_export_cell(*args)` stands for when an executor lost the run (a crashed worker, a lost task)."""
    cell, artifact_dir = args[0], args[4]
    return _export_row(cell, artifact_dir, "failed", error, None, 0.0)


def failed_measurement(args: tuple[Any, ...], error: str, executor: str) -> dict[str, Any]:
    """The record `run_bench_cell(*args)` stands for when an executor lost the run."""
    from device_runtime.profiles import PROFILES
    from pipeline.core.files import sha256_file

    cell, artifact_dir, cell_key = args[0], args[1], args[4]
    manifest = Path(artifact_dir) / "manifest.json"
    emulated = cell.device in PROFILES and PROFILES.get(cell.device).emulated
    return Measurement(
        kind="emulated" if emulated else "measured", status="failed", artifact_dir=artifact_dir,
        manifest_sha256=sha256_file(manifest) if manifest.is_file() else "", target=cell.export.target,
        runtime=cell.runtime.runtime, delegate_requested=cell.runtime.delegate, delegate_used=None,
        threads=cell.runtime.threads, device_profile=cell.device, error=error, context={"executor": executor},
        cell_key=cell_key,
    ).to_json()


def failed_call(args: tuple[Any, ...], error: str, executor: str) -> dict[str, Any]:
    """What any other call stands for when its run was lost."""
    return {"status": "failed", "error": error}
