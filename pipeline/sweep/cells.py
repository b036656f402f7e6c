"""The work of one sweep cell, as plain functions an executor can ship to another process or machine."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.sweep.plan import BenchCell, ExportCell
from pipeline.sweep.recipe import MeasureSpec


def stage_configs(prune: str | None) -> list[Any]:
    if not prune:
        return []
    from quantize.pruning import parse_prune

    return [parse_prune(prune)]


def run_export_cell(cell: ExportCell, model_ref: str, eval_data: str | None, calibration: str | None,
                    artifact_dir: str) -> dict[str, Any]:
    """Export one (model, variant, target); returns the `exports` row (failures included, never raised)."""
    started = time.perf_counter()
    row: dict[str, Any] = {"model": cell.model.name, "framework": cell.model.framework or "user",
                           "variant": cell.variant.name, "target": cell.target, "artifact_dir": artifact_dir}
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
        passed = result.validation_passed
        row.update(status="ok" if passed is not False else "failed",
                   error=None if passed is not False else "validation failed: " + "; ".join(result.manifest["validation"]["failures"]),
                   manifest_sha256=sha256_file(Path(artifact_dir) / "manifest.json"))
    except PipelineError as exc:
        row.update(status="failed", error=str(exc), manifest_sha256=None)
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def run_bench_cell(cell: BenchCell, artifact_dir: str, measure: MeasureSpec, calibration: dict[str, Any] | None,
                   cell_key: str) -> dict[str, Any]:
    """Measure one artifact on one runtime/device in an isolated worker; returns the measurement record."""
    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark

    protocol = Protocol(measure.warmup_runs, measure.min_runs, measure.min_duration_s)
    fraction = calibration["active_fraction"] if calibration else 1.0
    request = resolve_request(Path(artifact_dir), cell.runtime.runtime, cell.runtime.delegate, cell.device,
                              cell.runtime.threads, protocol, active_fraction=fraction, calibration=calibration)
    request = type(request)(**{**request.__dict__, "timeout_s": measure.timeout_s})
    return {**run_benchmark(request).to_json(), "cell_key": cell_key}


def failed_result(fn: Callable[..., Any], args: tuple[Any, ...], error: str, executor: str) -> dict[str, Any]:
    """The result `fn(*args)` would have returned for a failure an executor caught (a crashed worker, a lost task)."""
    name = getattr(fn, "__name__", "")
    if name == "run_export_cell":
        cell, artifact_dir = args[0], args[4]
        return {"model": cell.model.name, "framework": cell.model.framework or "user", "variant": cell.variant.name,
                "target": cell.target, "artifact_dir": artifact_dir, "status": "failed", "error": error,
                "manifest_sha256": None, "seconds": 0.0}
    if name == "run_bench_cell":
        from device_runtime.profiles import PROFILES
        from pipeline.core.files import sha256_file

        cell, artifact_dir, cell_key = args[0], args[1], args[4]
        manifest = Path(artifact_dir) / "manifest.json"
        emulated = cell.device in PROFILES and PROFILES.get(cell.device).emulated
        return {"kind": "emulated" if emulated else "measured", "status": "failed", "artifact_dir": artifact_dir,
                "manifest_sha256": sha256_file(manifest) if manifest.is_file() else "", "target": cell.export.target,
                "runtime": cell.runtime.runtime, "delegate_requested": cell.runtime.delegate, "delegate_used": None,
                "threads": cell.runtime.threads, "device_profile": cell.device, "result": {}, "error": error,
                "context": {"executor": executor}, "cell_key": cell_key}
    return {"status": "failed", "error": error}
