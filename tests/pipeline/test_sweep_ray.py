"""The Ray executor: a local 2-CPU instance runs the same sweep as the local executor, with the same results."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

from pipeline.sweep.ray_executor import RayExecutor  # noqa: E402

RECIPE = {
    "name": "ray-vs-local",
    "models": [{"zoo": "digits-cnn", "frameworks": ["torch"]}],
    "variants": [{"name": "fp32"}],
    "targets": ["tflite"],
    "runtimes": [{"target": "tflite", "runtime": "litert", "delegate": "xnnpack", "threads": 1}],
    "devices": ["host"],
    "measure": {"warmup_runs": 2, "min_runs": 20, "min_duration_s": 0.3},
}


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[RayExecutor]:
    executor = RayExecutor(None, num_cpus=2)
    yield executor
    executor.close()


def test_benchmarks_never_run_together_but_exports_do(ray_executor: RayExecutor, tmp_path: Path) -> None:
    # Each call drops a marker and waits for its partner's: only calls that really run at the same
    # time see each other. Local functions are shipped by value, so workers need not import this module.
    def rendezvous(folder: str, me: int, wait_s: float) -> bool:
        import time
        from pathlib import Path as P

        P(folder, str(me)).touch()
        deadline = time.time() + wait_s
        while time.time() < deadline:
            if P(folder, str(1 - me)).exists():
                return True
            time.sleep(0.05)
        return False

    exclusive_dir, shared_dir = tmp_path / "exclusive", tmp_path / "shared"
    exclusive_dir.mkdir()
    shared_dir.mkdir()
    # serialized, whichever exclusive call runs first waits in vain; only the second finds a marker
    exclusive = dict(ray_executor.map(rendezvous, [(str(exclusive_dir), 0, 3.0), (str(exclusive_dir), 1, 3.0)],
                                      exclusive_cpu=True))
    # plain calls may run side by side; a generous wait covers a slow second worker start under load
    shared = dict(ray_executor.map(rendezvous, [(str(shared_dir), 0, 90.0), (str(shared_dir), 1, 90.0)]))
    assert sorted(exclusive.values()) == [False, True]
    assert shared == {0: True, 1: True}


def test_task_errors_become_failed_results(ray_executor: RayExecutor, tmp_path: Path) -> None:
    from pipeline.results import insert_measurement, open_store
    from pipeline.sweep.cells import failed_measurement, run_bench_cell
    from pipeline.sweep.plan import build_plan
    from pipeline.sweep.recipe import parse_recipe

    recipe = parse_recipe(RECIPE)
    cell = build_plan(recipe).benches[0]
    calls = [(cell, str(tmp_path / "missing"), recipe.measure, None, "key0")]
    [(index, record)] = list(ray_executor.map(run_bench_cell, calls, exclusive_cpu=True, on_failure=failed_measurement))
    assert index == 0 and record["status"] == "failed" and record["error"] and record["cell_key"] == "key0"
    with open_store(tmp_path / "store.sqlite") as store:  # the driver can record it like any measurement
        insert_measurement(store, record)

    def boom() -> None:
        raise RuntimeError("boom")

    [(_, result)] = list(ray_executor.map(boom, [()]))
    assert result == {"status": "failed", "error": "RuntimeError: boom"}


def _measurements(store: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(store) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT status, latency_ms_p50, error FROM measurements")]


@pytest.mark.slow
def test_ray_sweep_matches_local_sweep(ray_executor: RayExecutor, tmp_path: Path) -> None:
    from pipeline.core.manifest import artifact_file_hashes
    from pipeline.sweep.executors import LocalExecutor
    from pipeline.sweep.recipe import parse_recipe
    from pipeline.sweep.runner import run_sweep

    recipe = parse_recipe(RECIPE)
    local_ws, ray_ws = tmp_path / "local", tmp_path / "ray"
    local = run_sweep(recipe, local_ws, local_ws / "results.sqlite", LocalExecutor(), out=lambda line: None)
    shutil.copytree(local_ws / "models", ray_ws / "models")  # the same trained source model for both
    remote = run_sweep(recipe, ray_ws, ray_ws / "results.sqlite", ray_executor, out=lambda line: None)

    assert local.failures == remote.failures == []
    assert local.exports["done"] == remote.exports["done"] == 1
    assert local.benches["done"] == remote.benches["done"] == 1
    assert artifact_file_hashes(local_ws) == artifact_file_hashes(ray_ws) != {}
    [local_row], [ray_row] = _measurements(local_ws / "results.sqlite"), _measurements(ray_ws / "results.sqlite")
    assert local_row["status"] == ray_row["status"] == "ok"
    ratio = ray_row["latency_ms_p50"] / local_row["latency_ms_p50"]
    assert 0.2 < ratio < 5.0, (local_row, ray_row)
