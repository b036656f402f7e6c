"""What each output of a model is, which task that makes the model, and by which metrics each output is judged."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.core.errors import ConfigError
from pipeline.core.registry import did_you_mean

TASKS = ("auto", "classification", "embedding", "regression")
OUTPUT_KINDS = ("probabilities", "logits", "embedding", "dense")
_SLACK = 1e-3  # how far a float32 row may stray from summing to 1 (or from unit norm) and still count


def check_task(task: str) -> str:
    """`task` if it is one of TASKS; ConfigError listing them otherwise."""
    if task not in TASKS:
        raise ConfigError(f"Unknown task '{task}'. Available: {', '.join(TASKS)}.{did_you_mean(task, list(TASKS))}")
    return task


def _row_kind(values: np.ndarray) -> str:
    if not np.isfinite(values).all():
        return "logits"
    rows_sum_to_one = np.allclose(values.sum(axis=1), 1.0, rtol=0, atol=_SLACK)
    if values.min() >= -_SLACK and values.max() <= 1 + _SLACK and rows_sum_to_one:
        return "probabilities"
    if np.allclose(np.linalg.norm(values, axis=1), 1.0, rtol=0, atol=_SLACK):
        return "embedding"
    return "logits"


def output_kinds(outputs: Sequence[np.ndarray], labels: np.ndarray | None = None,
                 class_names: Sequence[str] = (), task: str = "auto") -> list[str]:
    """The kind of each of a model's (source) outputs, one of OUTPUT_KINDS.

    'probabilities': 2-D rows in [0, 1] that sum to 1. 'embedding': 2-D rows of unit L2 norm. 'logits': any
    other 2-D output with more than one column; when the task is auto or classification, only if it can be
    the class scores: not beside a probabilities output (a box or regression head next to the classifier),
    with as many columns as the labels need, and as many as there are class names when they are known.
    'dense': everything else (maps, sequences, boxes, one-column and 1-D regressions). Rows with NaN or
    infinite values count as logits.
    """
    kinds = [_row_kind(out) if out.ndim == 2 and out.shape[1] > 1 and len(out) else "dense" for out in outputs]
    if task not in ("auto", "classification"):
        return kinds
    classes = int(labels.max()) + 1 if labels is not None and labels.size else 0
    beside_probabilities = "probabilities" in kinds

    def could_be_scores(columns: int) -> bool:
        return not beside_probabilities and columns >= classes and (not class_names or columns == len(class_names))

    return [kind if kind != "logits" or could_be_scores(out.shape[1]) else "dense"
            for kind, out in zip(kinds, outputs, strict=True)]


def detect_task(kinds: Sequence[str], labelled: bool) -> str:
    """The task 'auto' stands for, from the outputs' kinds and whether labels (or class names) exist.

    classification: an output of probabilities, or of logits when labels exist. embedding: otherwise an
    output of unit-norm rows or of logits (without labels there is no accuracy to keep, and cosine and
    neighbours hold for logits that keep their direction; `--task classification` judges them by top-1).
    regression: only dense outputs.
    """
    if "probabilities" in kinds or (labelled and "logits" in kinds):
        return "classification"
    if "embedding" in kinds or "logits" in kinds:
        return "embedding"
    return "regression"


def judged_as(task: str, kinds: Sequence[str]) -> list[str]:
    """How each output is judged in `task`: 'classification', 'embedding' or 'dense' (regression judges all dense).

    Raises ConfigError when no output can be judged the task's way (e.g. `--task classification` on a model
    whose outputs are all maps).
    """
    if task == "regression":
        return ["dense"] * len(kinds)
    scores = "classification" if task == "classification" else "embedding"
    roles = [{"probabilities": scores, "logits": scores, "embedding": "embedding"}.get(kind, "dense") for kind in kinds]
    if task not in roles:
        raise ConfigError(f"Task '{task}' needs an output of class scores or embeddings (2-D, more than one column); "
                          f"this model's outputs are {', '.join(kinds)}. Use --task regression, or auto.")
    return roles
