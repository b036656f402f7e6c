"""`pipeline.optimize(...)`: the smallest or fastest artifact of a model for a device within an accuracy budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.api.measuring import store_path


def optimize(
    model: str | Path,
    *,
    device: str = "host",
    max_accuracy_drop: float = 1.0,
    objective: str = "size",
    targets: Sequence[str] | None = None,
    framework: str | None = None,
    eval_data: str | Path | None = None,
    calibration: str | Path | None = None,
    train_data: str | Path | None = None,
    input_spec: str | None = None,
    task: str | None = None,
    workspace: str | Path = "workspace",
    store: str | Path | None = None,
    executor: str = "local",
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Search techniques over `targets` as `pipeline optimize` does and return the search: every candidate's
    verdict, the Pareto front, the pick (None when nothing holds the budget) and what was not tried, and why.

    `model`: a zoo name (with `framework`) or a model file (.keras, SavedModel directory, .pt2,
    'package.module:factory') with its data files (.npz). `max_accuracy_drop` is in points (accuracy points with
    labels; 100 x (1 - cosine) for embeddings). Cells go through the sweep's cache in `workspace`, so a re-run is
    quick and a killed run resumes; `progress` receives the round and verdict lines. Raises the CLI's errors.
    """
    from pipeline.optimize import OptimizeRequest, model_spec, targets_for
    from pipeline.optimize import optimize as run
    from pipeline.sweep.executors import make_executor

    spec = model_spec(str(model), framework=framework, eval_data=eval_data and str(eval_data),
                      calibration=calibration and str(calibration), train_data=train_data and str(train_data),
                      input_spec=input_spec, task=task)
    request = OptimizeRequest(spec, device, max_accuracy_drop, objective, targets_for(spec.framework, targets))
    pool = make_executor(executor, workers=workers)
    try:
        return run(request, Path(workspace), store_path(store, workspace), pool, out=progress or (lambda line: None))
    finally:
        pool.close()
