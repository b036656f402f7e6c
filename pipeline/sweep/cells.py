"""The work of one sweep cell, as plain functions an executor can ship to another process or machine."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.core.console import cell_output
from pipeline.core.errors import PipelineError, internal_error_message, write_traceback
from pipeline.core.files import sha256_file
from pipeline.core.locks import LockBusyError, exclusive_lock
from pipeline.core.manifest import MANIFEST_FILE, read_manifest
from pipeline.core.records import ExportRow, Measurement
from pipeline.sweep.plan import BenchCell, ExportCell
from pipeline.sweep.recipe import MeasureSpec

OnFailure = Callable[[tuple[Any, ...], str, str], Any]  # (args, error, executor name) -> the result it stands for


def stage_configs(prune: str | None) -> list[Any]:
    if not prune:
        return []
    from quantize.pruning import parse_prune

    return [parse_prune(prune)]


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def cell_lock(artifact_dir: Path, name: str) -> Path:
    """The lock a cell's writers share, beside its artifact directory (gone when nobody holds it)."""
    return artifact_dir.parent / f".{artifact_dir.name}.{name}.lock"


def export_log(artifact_dir: Path) -> Path:
    """Where an export cell's framework output goes (beside its artifact; rewritten by each attempt)."""
    return artifact_dir.parent / f"{artifact_dir.name}.log"


def bench_log(artifact_dir: Path, cell: BenchCell, cell_key: str) -> Path:
    """Where a benchmark cell's worker writes its stderr (beside the artifact)."""
    runtime = cell.runtime
    return artifact_dir.parent / f"{artifact_dir.name}.bench-{runtime.runtime}-{runtime.delegate}-{cell.device}-{cell_key[:8]}.log"


def run_export_cell(cell: ExportCell, model_ref: str, eval_data: str | None, calibration: str | None,
                    artifact_dir: str, wait: bool = True, planned_at_ns: int = 0) -> dict[str, Any]:
    """Export one (model, variant, target); returns the `exports` row (failures included, never raised).

    Writers of the same cell (two sweeps on one workspace) take turns on the cell's lock; an artifact
    another writer published after this sweep planned the cell (`planned_at_ns`) is reused, not redone.
    With `wait=False` a held cell is returned with status 'busy' (in progress elsewhere), not recorded.
    """
    started = time.perf_counter()
    folder = Path(artifact_dir)
    try:
        with exclusive_lock(cell_lock(folder, "export"), wait=wait):
            if planned_at_ns and (_mtime(folder / MANIFEST_FILE) or 0) > planned_at_ns:
                return {**published_row(cell, folder, started), "reused": True}
            with cell_output(export_log(folder)):
                return _export(cell, model_ref, eval_data, calibration, folder, started)
    except LockBusyError as exc:
        return _export_row(cell, artifact_dir, "busy", f"in progress elsewhere ({exc.owner.describe()})", None, 0.0)


def _export(cell: ExportCell, model_ref: str, eval_data: str | None, calibration: str | None, folder: Path,
            started: float) -> dict[str, Any]:
    try:
        from pipeline.core.tensors import parse_input_specs
        from pipeline.export import export_bundle
        from pipeline.intake import load_model
        from pipeline.intake.data import with_user_data
        from quantize import quantization_config

        model = cell.model
        bundle = load_model(model_ref, input_specs=parse_input_specs(model.input_spec) if model.input_spec else None)
        bundle = with_user_data(dataclasses.replace(bundle, task=model.task) if model.task else bundle,
                                eval_data=Path(eval_data) if eval_data else None,
                                calibration=Path(calibration) if calibration else None,
                                train_data=Path(model.train_data) if model.train_data else None)
        export_bundle(bundle, cell.target, quantization_config(cell.variant.quantize, **cell.variant.quantize_options()), folder,
                      stages=stage_configs(cell.variant.prune))
    except PipelineError as exc:
        return _export_row(cell, str(folder), "failed", str(exc), None, time.perf_counter() - started)
    except Exception as exc:  # a bug, not the model's fault: the cell fails, its traceback goes to the cell's log
        log = write_traceback(folder.parent / f"{folder.name}.error.log", exc)
        return _export_row(cell, str(folder), "failed", internal_error_message(exc, log), None,
                           time.perf_counter() - started)
    return published_row(cell, folder, started)


def published_row(cell: ExportCell, folder: Path, started: float | None = None) -> dict[str, Any] | None:
    """The row for the artifact published at `folder` (validation failures included), or None if there is none."""
    if not (folder / MANIFEST_FILE).is_file():
        return None
    manifest = read_manifest(folder)
    error = None
    if manifest["validation"].get("passed") is False:
        error = "validation failed: " + "; ".join(manifest["validation"]["failures"])
    seconds = time.perf_counter() - started if started is not None else 0.0
    return _export_row(cell, str(folder), "failed" if error else "ok", error, sha256_file(folder / MANIFEST_FILE),
                       seconds)


def _export_row(cell: ExportCell, artifact_dir: str, status: str, error: str | None, manifest_sha256: str | None,
                seconds: float) -> dict[str, Any]:
    return ExportRow(model=cell.model.name, framework=cell.model.framework or "user", variant=cell.variant.name,
                     target=cell.target, artifact_dir=artifact_dir, status=status, error=error,
                     manifest_sha256=manifest_sha256, seconds=round(seconds, 3)).to_json()


def run_bench_cell(cell: BenchCell, artifact_dir: str, measure: MeasureSpec, calibration: dict[str, Any] | None,
                   cell_key: str, store: str | None = None, wait: bool = True) -> dict[str, Any]:
    """Measure one artifact on one runtime/device in an isolated worker; returns the measurement record.

    Writers of the same cell take turns on its lock; `{"reused": True, ...}` comes back when another
    writer's measurement is already in `store` (nothing to record twice), and with
    `wait=False` a held cell comes back as `{"busy": True, ...}`.
    """
    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark

    try:
        with exclusive_lock(cell_lock(Path(artifact_dir), f"bench-{cell_key[:16]}"), wait=wait):
            if store and _measured(Path(store), cell_key):  # another writer measured it after we planned
                return {"reused": True, "status": "ok", "cell_key": cell_key}
            protocol = Protocol(measure.warmup_runs, measure.min_runs, measure.min_duration_s)
            # `calibration` is the record for this artifact's precision; it sets the throttle's active fraction
            request = resolve_request(Path(artifact_dir), cell.runtime.runtime, cell.runtime.delegate, cell.device,
                                      cell.runtime.threads, protocol, calibration=calibration)
            request = replace(request, timeout_s=measure.timeout_s,
                              log_file=bench_log(Path(artifact_dir), cell, cell_key))
            return replace(run_benchmark(request), cell_key=cell_key).to_json()
    except LockBusyError as exc:
        return {"busy": True, "status": "busy", "cell_key": cell_key,
                "error": f"in progress elsewhere ({exc.owner.describe()})"}


def _measured(store: Path, cell_key: str) -> bool:
    from pipeline.results import cached_cell, open_store

    with open_store(store) as connection:
        return cached_cell(connection, cell_key) is not None


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
