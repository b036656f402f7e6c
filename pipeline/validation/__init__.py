"""Validation of an artifact against its source model on real evaluation data, output by output, judged the
task's way (classification, embedding, regression) within its mode's registered tolerance and any overrides.

`compare_outputs` judges arrays (no model, no session); `validate` runs the source and the artifact first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import DataError
from pipeline.core.tensors import Feed
from pipeline.validation.compare import ValidationResult, compare_outputs, match_outputs
from pipeline.validation.tasks import OUTPUT_KINDS, TASKS, check_task, detect_task, judged_as, output_kinds
from quantize.techniques import TOLERANCE_NAMES, Tolerance, parse_tolerances, tolerance_for

__all__ = [
    "OUTPUT_KINDS", "TASKS", "TOLERANCE_NAMES", "Tolerance", "ValidationResult", "check_task", "compare_outputs",
    "detect_task", "judged_as", "match_outputs", "output_kinds", "parse_tolerances", "run_artifact", "tolerance_for",
    "validate",
]


def run_artifact(session: Any, feed: Feed) -> list[np.ndarray]:
    """Every output of the artifact for `feed`; a session without `run_outputs` gives its single output."""
    if hasattr(session, "run_outputs"):
        return [np.asarray(out) for out in session.run_outputs(feed)]
    return [np.asarray(session.run(next(iter(feed.values())) if len(feed) == 1 else feed))]


def validate(bundle: ModelBundle, session: Any, mode: str, runtime: str, *, task: str | None = None,
             overrides: Mapping[str, float | None] | None = None) -> ValidationResult:
    """Run the evaluation split through the source model and the artifact session and judge every output.

    `task` defaults to the bundle's ('auto' unless a card or the user names it); `overrides` replace bounds of
    `mode`'s tolerance by name (see `parse_tolerances`). Raises DataError without evaluation data, ConfigError
    for an unknown task or tolerance name, or a task no output fits.
    """
    data = bundle.eval_data
    if data is None:
        raise DataError(
            "No evaluation data to validate the artifact on: pass --eval-data FILE.npz (one array per input name, "
            "'x' for a single input, optional integer labels 'y'), or --no-validate to skip."
        )
    tolerance = tolerance_for(mode, overrides)
    task = check_task(task or bundle.task)
    source = bundle.predict_outputs(data)
    artifact = run_artifact(session, bundle.feed(data))
    names = [spec.name for spec in bundle.with_outputs().outputs]
    result = compare_outputs(source, artifact, data.y, tolerance, task=task, names=names,
                             class_names=bundle.labels or data.labels)
    return replace(result, runtime=runtime, delegate=session.delegate, dataset=data.name)
