"""`pipeline.bench(...)` and `pipeline.sweep(...)`: measurements into the results store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.api.artifact import Artifact
from pipeline.core.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.core.records import Measurement
    from pipeline.sweep.recipe import Recipe
    from pipeline.sweep.runner import SweepSummary

STORE_FILE = "results.sqlite"


def store_path(store: str | Path | None, workspace: str | Path) -> Path:
    """`store`, or the workspace's results store (`WORKSPACE/results.sqlite`) when None."""
    return Path(store) if store is not None else Path(workspace) / STORE_FILE


def bench(
    artifact: Artifact | str | Path,
    *,
    runtime: str | None = None,
    delegate: str | None = None,
    device: str = "host",
    threads: int | None = None,
    warmup: int = 10,
    min_runs: int = 100,
    min_seconds: float = 2.0,
    timeout: float = 600.0,
    store: str | Path | None = None,
    workspace: str | Path = "workspace",
    record: bool = True,
) -> Measurement:
    """Measure an artifact in an isolated worker process, as `pipeline bench` does, and return the Measurement.

    Defaults follow the artifact (its runtime and that runtime's default delegate) and the device profile
    (`devices()`; its threads, cores, memory cap and calibrated throttle, kept in WORKSPACE/calibration.json).
    The protocol: `warmup` runs excluded, then at least `min_runs` timed runs and `min_seconds`. With `record`
    the measurement is appended to `store` (default WORKSPACE/results.sqlite), where `results()` reads it.
    A run that fails or cannot happen is returned with `status` 'failed' or 'unavailable' and its `error`;
    a request that cannot be met (unknown runtime, delegate or device, an artifact without eval.npz) raises.
    """
    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark
    from device_runtime.profiles import PROFILES
    from pipeline.calibration import calibration_for_artifact
    from pipeline.results import insert_measurement, open_store

    path = artifact.path if isinstance(artifact, Artifact) else Path(artifact)
    try:
        protocol = Protocol(warmup, min_runs, min_seconds)
    except ValueError as exc:
        raise ConfigError(f"{exc}.") from None
    if timeout <= 0:
        raise ConfigError(f"timeout must be > 0 seconds, got {timeout}.")
    profile = PROFILES.get(device)
    request = resolve_request(path, runtime, delegate, device, threads, protocol)
    calibration = calibration_for_artifact(Path(workspace), profile, path)  # for the artifact's precision
    request = replace(request, timeout_s=timeout, calibration=calibration,
                      active_fraction=calibration["active_fraction"] if calibration else 1.0)
    measurement = run_benchmark(request)
    if record:
        with open_store(store_path(store, workspace)) as connection:
            insert_measurement(connection, measurement.to_json())
    return measurement


def _recipe(recipe: Recipe | dict[str, Any] | str | Path | None) -> Recipe:
    from pipeline.sweep.recipe import DEFAULT_RECIPE, Recipe, load_recipe, parse_recipe

    if recipe is None:
        return load_recipe(DEFAULT_RECIPE)
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return parse_recipe(recipe, str(recipe.get("name", "recipe")))
    if isinstance(recipe, (str, Path)):
        return load_recipe(Path(recipe))
    raise ConfigError(f"recipe must be a YAML path, a dict as the YAML would load, or a Recipe; got {type(recipe).__name__}.")


def sweep(
    recipe: Recipe | dict[str, Any] | str | Path | None = None,
    *,
    workspace: str | Path = "workspace",
    store: str | Path | None = None,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    wait: bool = True,
    report: bool = False,
    progress: Callable[[str], None] | None = print,
) -> SweepSummary:
    """Run a recipe's grid (a YAML path, a dict, a Recipe, or None for the default recipe) as `pipeline sweep`.

    Exports and measurements are cached in `workspace` and appended to `store` (default
    WORKSPACE/results.sqlite); `executor` is 'local' (`workers` export processes, default one per usable core)
    or 'ray' (at `address`). Failed cells are in the summary's `failures`, not raised. `progress` receives
    each progress line (None: silent). With `report`, WORKSPACE/report/report.html and report.md are written.
    Raises ConfigError listing every problem of an invalid recipe before any work.
    """
    from pipeline.sweep.executors import make_executor
    from pipeline.sweep.runner import run_sweep

    parsed = _recipe(recipe)
    workspace, store_file = Path(workspace), store_path(store, workspace)
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}.")
    runner = make_executor(executor, address, workers=workers)
    try:
        summary = run_sweep(parsed, workspace, store_file, runner, out=progress or (lambda line: None), wait=wait)
    finally:
        runner.close()
    if report:
        from pipeline.report import write_report

        write_report(store_file, workspace / "report")
    return summary
