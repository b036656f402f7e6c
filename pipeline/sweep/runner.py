"""`pipeline sweep`: run a recipe's grid with progress, a content-addressed cache and resumable state."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.sweep.plan import BenchCell, ExportCell, Plan, build_plan
from pipeline.sweep.recipe import ModelSpec, Recipe


@dataclass
class SweepSummary:
    """What a sweep did: counts per phase and every failure with its reason."""

    exports: dict[str, int] = field(default_factory=lambda: {"cached": 0, "done": 0, "failed": 0})
    benches: dict[str, int] = field(default_factory=lambda: {"cached": 0, "done": 0, "failed": 0, "unavailable": 0})
    failures: list[tuple[str, str]] = field(default_factory=list)
    unavailable: list[tuple[str, str]] = field(default_factory=list)  # runtimes that cannot run the artifact, and why
    elsewhere: list[str] = field(default_factory=list)  # cells left to another writer (--no-wait)
    seconds: float = 0.0
    logs: dict[str, str] = field(default_factory=dict)  # failed cell -> the log of its framework output


class Progress:
    """Prints `[i/n] phase label status time (eta)` lines (tests and the app's Run page read them).

    The ETA adds, per phase, the cells left times the mean time of that phase's finished cells
    (divided by how many run at once); a phase with none finished yet borrows the other's mean.
    It also knows which cells are running: those `begin` announced, `parallel` at a time in their order.
    """

    def __init__(self, totals: dict[str, int], out: Callable[[str], None], parallel: dict[str, int] | None = None) -> None:
        self.totals, self.out, self.parallel = totals, out, parallel or {}
        self.total, self.done = sum(totals.values()), 0
        self.left = dict(totals)
        self.started = time.perf_counter()
        self.worked: dict[str, list[float]] = {phase: [] for phase in totals}
        self.queued: dict[str, list[str]] = {phase: [] for phase in totals}
        self.running: dict[str, tuple[str, float]] = {}  # label -> (phase, started)

    def begin(self, phase: str, labels: list[str]) -> None:
        """Cells of `phase` handed to the executor, in submission order."""
        self.queued[phase] = list(labels)
        self._admit(phase)

    def _admit(self, phase: str) -> None:
        now = time.perf_counter()
        while self.queued[phase] and sum(p == phase for p, _ in self.running.values()) < self.parallel.get(phase, 1):
            self.running[self.queued[phase].pop(0)] = (phase, now)

    def running_cells(self) -> list[tuple[str, str, float]]:
        """(phase, label, seconds running) of the cells running now, the longest first."""
        now = time.perf_counter()
        return [(phase, label, now - started) for label, (phase, started) in sorted(
            self.running.copy().items(), key=lambda item: item[1][1])]

    def close(self) -> None:
        """The sweep is over (a live display stops here)."""

    def eta(self) -> float:
        timed = [s for seconds in self.worked.values() for s in seconds]
        fallback = sum(timed) / len(timed) if timed else 0.0
        return sum(left * (sum(self.worked[phase]) / len(self.worked[phase]) if self.worked[phase] else fallback)
                   / self.parallel.get(phase, 1) for phase, left in self.left.items())

    def step(self, phase: str, label: str, status: str, seconds: float | None = None) -> None:
        self.done += 1
        self.left[phase] -= 1
        if self.running.pop(label, None) is None and label in self.queued[phase]:
            self.queued[phase].remove(label)
        self._admit(phase)
        if seconds is not None:
            self.worked[phase].append(seconds)
        self.out(self.line(phase, label, status, seconds))

    def line(self, phase: str, label: str, status: str, seconds: float | None) -> str:
        remaining = self.total - self.done
        eta = self.eta() if remaining else 0.0
        took = f" {seconds:6.1f}s" if seconds is not None else ""
        elapsed = time.perf_counter() - self.started
        return (f"[{self.done:>3}/{self.total}] {phase:6s} {label}: {status}{took}  "
                f"(elapsed {elapsed:4.0f}s, eta ~{eta:4.0f}s)")


def model_reference(model: ModelSpec, workspace: Path, out: Callable[[str], None] = lambda line: None) -> str:
    """The intake reference of a recipe model, writing a zoo model first when needed (shipped weights copied, pretrained exported)."""
    if model.path:
        return model.path
    from pipeline.demo import ensure_trained

    return str(ensure_trained(model.name, model.framework or "", workspace / "models", retrain=False, out=out))


def artifact_dir(workspace: Path, cell: ExportCell, key: str) -> Path:
    return workspace / "artifacts" / f"{cell.model.name}-{cell.model.framework or 'user'}" / f"{cell.target}-{cell.variant.name}-{key[:10]}"


def _source_hashes(plan: Plan, workspace: Path, train: bool,
                   out: Callable[[str], None] = lambda line: None) -> dict[ModelSpec, tuple[str, str | None]]:
    """(reference, sha256 or None when not trained yet) per model; trains zoo models when `train`."""
    from pipeline.core.files import sha256_path

    hashes = {}
    for model in dict.fromkeys(cell.model for cell in plan.exports):
        if model.path or train:
            reference = model_reference(model, workspace, out)
        else:
            from pipeline.zoo.train import default_model_path

            reference = str(default_model_path(model.name, model.framework or "", workspace / "models"))
        path = Path(reference)
        hashes[model] = (reference, sha256_path(path) if path.exists() else None)
    return hashes


def dry_run(recipe: Recipe, workspace: Path, store_path: Path, out: Callable[[str], None] = print) -> None:
    """Print the plan and which cells are cached, without doing any work."""
    from pipeline.results import open_store

    plan = build_plan(recipe)
    hashes = _source_hashes(plan, workspace, train=False)
    out(f"recipe {recipe.name}: {len(plan.exports)} exports, {len(plan.benches)} benchmarks")
    with open_store(store_path) as store:
        cached_exports = {row["key"] for row in store.execute("SELECT key FROM exports WHERE status='ok'")}
    for cell in plan.exports:
        reference, sha = hashes[cell.model]
        state = "model not in the workspace yet" if sha is None else ("cached" if cell.key(sha) in cached_exports else "to do")
        out(f"  export {cell.label()}: {state}")
    for cell in plan.benches:
        out(f"  bench  {cell.label()}")
    for cell in plan.refused:
        out(f"  skip   {cell.label()}: the route cannot express quantize '{cell.variant.quantize}'")
    for cell in plan.unmeasurable:
        out(f"  skip   {cell.label()}: profile {cell.device} has no {cell.runtime.delegate} delegate")


def announce_other_sweeps(workspace: Path, out: Callable[[str], None], wait: bool = True) -> None:
    """Say which other sweeps are running on `workspace` and what happens to the cells both plan."""
    from pipeline.core.locks import LockBusyError, exclusive_lock, read_owner

    then = "will be waited for, not redone" if wait else "will be left to it (--no-wait)"
    for lock in sorted((workspace / SWEEP_LOCKS).glob("sweep-*.lock")):
        try:
            with exclusive_lock(lock, wait=False):  # free: left by a killed sweep, and removed on release
                continue
        except LockBusyError:
            out(f"another sweep ({read_owner(lock).describe()}) is running on this workspace; shared cells {then}")


SWEEP_LOCKS = Path(".sweeps")


def run_sweep(recipe: Recipe, workspace: Path, store_path: Path, executor: Any,
              out: Callable[[str], None] = print, wait: bool = True,
              progress: Callable[..., Progress] = Progress) -> SweepSummary:
    """Export every cell (skipping cached ones), then measure every artifact; failures are recorded, not raised.

    Other sweeps (or the app) may share the workspace: a cell one of them holds is waited for and its
    result reused, or with `wait=False` left to it and listed in `SweepSummary.elsewhere`. `progress` builds
    the display of the cells (`Progress(totals, out, parallel)`: plain lines on `out`, by default).
    """
    import os

    from pipeline.core.locks import exclusive_lock

    announce_other_sweeps(workspace, out, wait)
    with exclusive_lock(workspace / SWEEP_LOCKS / f"sweep-{os.getpid()}.lock"):
        return _run_sweep(recipe, workspace, store_path, executor, out, wait, progress)


def _run_sweep(recipe: Recipe, workspace: Path, store_path: Path, executor: Any, out: Callable[[str], None],
               wait: bool, make_progress: Callable[..., Progress]) -> SweepSummary:
    started = time.perf_counter()
    summary = SweepSummary()
    plan = build_plan(recipe)
    from pipeline.sweep.calibration_notice import announce_calibration

    announce_calibration(plan, workspace, out)
    for cell in plan.refused:
        out(f"skip {cell.label()}: the route cannot express quantize '{cell.variant.quantize}'")
    skipped_devices = sorted({(c.device, c.runtime.runtime, c.runtime.delegate) for c in plan.unmeasurable})
    for device, runtime, delegate in skipped_devices:
        out(f"skip {runtime}/{delegate} @ {device}: the profile has no {delegate} delegate")
    hashes = _source_hashes(plan, workspace, train=True, out=out)
    progress = make_progress({"export": len(plan.exports), "bench": len(plan.benches)}, out,
                             parallel={"export": getattr(executor, "workers", None) or getattr(executor, "num_cpus", 1)})
    try:
        _cells(recipe, workspace, store_path, executor, wait, plan, hashes, progress, summary)
    finally:
        progress.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _cells(recipe: Recipe, workspace: Path, store_path: Path, executor: Any, wait: bool, plan: Plan,
           hashes: dict[ModelSpec, tuple[str, str | None]], progress: Progress, summary: SweepSummary) -> None:
    """Export the plan's cells, then measure them, recording each outcome in the store and the summary."""
    from device_runtime.profiles import PROFILES
    from pipeline.calibration import calibration_for_artifact
    from pipeline.results import cached_cell, insert_measurement, open_store, record_export
    from pipeline.sweep.cells import (
        bench_log,
        export_log,
        failed_export_row,
        failed_measurement,
        published_row,
        run_bench_cell,
        run_export_cell,
    )

    ready: dict[ExportCell, tuple[str, str]] = {}
    with open_store(store_path) as store:
        todo: list[tuple[ExportCell, str, Path]] = []
        planned_at_ns = time.time_ns()
        for cell in plan.exports:
            reference, sha = hashes[cell.model]
            key = cell.key(sha or "")
            folder = artifact_dir(workspace, cell, key)
            row = store.execute("SELECT * FROM exports WHERE key = ?", (key,)).fetchone()
            if not (row and row["status"] == "ok" and (folder / "manifest.json").is_file()):
                # published by a writer that has not recorded it yet (a concurrent sweep) or never will (killed)
                row = published_row(cell, folder)
                if row and row["status"] == "ok":
                    record_export(store, {"key": key, **row})
            if row and row["status"] == "ok":
                summary.exports["cached"] += 1
                ready[cell] = (str(folder), row["manifest_sha256"])
                progress.step("export", cell.label(), "cached")
            else:
                todo.append((cell, key, folder))
        calls = [(cell, hashes[cell.model][0], cell.model.eval_data, cell.model.calibration, str(folder), wait,
                  planned_at_ns) for cell, _, folder in todo]
        progress.begin("export", [cell.label() for cell, _, _ in todo])
        for index, row in executor.map(run_export_cell, calls, on_failure=failed_export_row):
            cell, key, folder = todo[index]
            if row["status"] == "busy":
                summary.elsewhere.append(f"export {cell.label()}")
                progress.step("export", cell.label(), row["error"])
                continue
            record_export(store, {"key": key, **row})
            if row["status"] == "ok":
                summary.exports["cached" if row.get("reused") else "done"] += 1  # reused: another writer exported it
                ready[cell] = (str(folder), row["manifest_sha256"])
            else:
                summary.exports["failed"] += 1
                summary.failures.append((f"export {cell.label()}", row["error"]))
                summary.logs[f"export {cell.label()}"] = str(export_log(folder))
            progress.step("export", cell.label(), "exported by another writer" if row.get("reused") else row["status"],
                          row["seconds"])

        measure = recipe.measure.__dict__
        calibrations: dict[tuple[str, str], dict[str, Any] | None] = {}  # (device, artifact) -> its precision's
        bench_todo: list[tuple[BenchCell, str, str]] = []
        for cell in plan.benches:
            if cell.export not in ready:
                elsewhere = f"export {cell.export.label()}" in summary.elsewhere
                if elsewhere:
                    summary.elsewhere.append(f"bench {cell.label()}")
                else:
                    summary.benches["failed"] += 1
                progress.step("bench", cell.label(), "skipped (export in progress elsewhere)" if elsewhere
                              else "skipped (export failed)")
                continue
            folder, manifest_sha = ready[cell.export]
            if (cell.device, folder) not in calibrations:
                calibrations[cell.device, folder] = calibration_for_artifact(workspace, PROFILES.get(cell.device),
                                                                             Path(folder))
            key = cell.key(manifest_sha, measure, calibrations[cell.device, folder])
            if cached_cell(store, key):
                summary.benches["cached"] += 1
                progress.step("bench", cell.label(), "cached")
            else:
                bench_todo.append((cell, folder, key))
        calls = [(cell, folder, recipe.measure, calibrations[cell.device, folder], key, str(store_path), wait)
                 for cell, folder, key in bench_todo]
        progress.begin("bench", [cell.label() for cell, _, _ in bench_todo])
        for index, record in executor.map(run_bench_cell, calls, exclusive_cpu=True, on_failure=failed_measurement):
            cell, folder, key = bench_todo[index]
            if record.get("reused") or record.get("busy"):
                summary.benches["cached"] += bool(record.get("reused"))
                if record.get("busy"):
                    summary.elsewhere.append(f"bench {cell.label()}")
                progress.step("bench", cell.label(), "measured by another writer" if record.get("reused")
                              else record["error"])
                continue
            if insert_measurement(store, record) is None:  # another writer stored this cell first
                summary.benches["cached"] += 1
                progress.step("bench", cell.label(), "measured by another writer")
                continue
            status = record["status"]
            summary.benches["done" if status == "ok" else status] += 1
            if status == "unavailable":  # recorded with its reason (an op the delegate lacks): not a failure
                summary.unavailable.append((f"bench {cell.label()}", record["error"]))
            elif status != "ok":
                summary.failures.append((f"bench {cell.label()}", record["error"]))
                summary.logs[f"bench {cell.label()}"] = str(bench_log(Path(folder), cell, key))
            p50 = (record.get("result") or {}).get("latency_ms_p50")
            progress.step("bench", cell.label(), status + (f" p50 {p50:.3f} ms" if p50 else ""),
                          (record.get("result") or {}).get("worker_seconds"))
