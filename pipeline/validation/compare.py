"""An artifact's outputs against its source's, output by output, judged by the task's metrics within a Tolerance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.validation import metrics
from pipeline.validation.tasks import check_task, detect_task, judged_as, output_kinds
from quantize.techniques import Tolerance

# tolerance name -> (the metric it bounds, True when the metric must stay at or above it)
BOUNDS: dict[str, tuple[str, bool]] = {
    "max_abs_error": ("max_abs_error", False),
    "min_top1_agreement": ("top1_agreement", True),
    "max_accuracy_drop": ("accuracy_drop", False),
    "min_cosine_mean": ("cosine_mean", True),
    "min_cosine_worst": ("cosine_worst", True),
    "min_neighbour_agreement": ("neighbour_agreement", True),
    "min_sqnr_db": ("sqnr_db", True),
    "max_relative_l2": ("relative_l2", False),
}
JUDGED_BY = {
    "classification": ("max_abs_error", "min_top1_agreement", "max_accuracy_drop"),
    "embedding": ("min_cosine_mean", "min_cosine_worst", "min_neighbour_agreement"),
    "dense": ("min_sqnr_db", "max_relative_l2"),
}
_HEADLINE_LABELS = {"accuracy": "accuracy", "top1_agreement": "agreement", "cosine_mean": "cosine", "sqnr_db": "SQNR dB"}
_CARRIED = ("max_abs_error", "mean_abs_error", "top1_agreement", "source_accuracy", "artifact_accuracy")


def _strict(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None, so that it is strict JSON."""
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class ValidationResult:
    """How closely an artifact reproduces its source on `samples` evaluation inputs, output by output.

    `outputs` holds one {"name", "kind", "metrics"} per source output; the top-level errors, agreement and
    accuracies are the headline output's (None where its task does not measure them).
    """

    task: str
    samples: int
    passed: bool
    failures: tuple[str, ...]
    tolerance: Tolerance
    headline: dict[str, Any]
    outputs: tuple[dict[str, Any], ...]
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    top1_agreement: float | None = None
    source_accuracy: float | None = None
    artifact_accuracy: float | None = None
    runtime: str = ""
    delegate: str = ""
    dataset: str = ""

    def to_json(self) -> dict[str, Any]:
        """The manifest's `validation` record: strict JSON (NaN and infinities become None)."""
        return _strict({
            "task": self.task, "samples": self.samples, "passed": self.passed, "failures": list(self.failures),
            "tolerances": self.tolerance.to_json(), "headline": self.headline, "outputs": list(self.outputs),
            **{name: getattr(self, name) for name in _CARRIED},
            "runtime": self.runtime, "delegate": self.delegate, "dataset": self.dataset,
        })


def _shapes(outputs: Sequence[np.ndarray]) -> str:
    return "[" + ", ".join("x".join(map(str, out.shape)) for out in outputs) + "]"


def _values_shape(out: np.ndarray) -> tuple[int, ...]:
    """The batch size and every other dimension but those of size 1 ([N, 1, 10] and [N, 10] hold the same)."""
    return (len(out), *(d for d in out.shape[1:] if d != 1)) if out.ndim else ()


def match_outputs(source: Sequence[np.ndarray], artifact: Sequence[np.ndarray]) -> list[np.ndarray] | str:
    """The artifact's outputs in the source's order and shapes: by position when the shapes agree, else by unique
    shape. A string saying why when they cannot be matched (a count or shape mismatch)."""
    if len(source) != len(artifact):
        return f"the artifact has {len(artifact)} outputs {_shapes(artifact)}, the source {len(source)} {_shapes(source)}"
    keys = [_values_shape(out) for out in source]
    found = [_values_shape(out) for out in artifact]
    if keys != found:
        if len(set(keys)) != len(keys) or sorted(keys) != sorted(found):
            return (f"the artifact's outputs {_shapes(artifact)} do not match the source's {_shapes(source)} "
                    "by position or by unique shape")
        artifact = [artifact[found.index(key)] for key in keys]
    return [out.reshape(ref.shape) for out, ref in zip(artifact, source, strict=True)]


def _number(value: float, bound: float) -> str:
    """`value` with enough digits to show on which side of `bound` it lies (0.99957 < 0.9999, not 1 < 0.9999)."""
    for digits in range(3, 12):
        shown = float(text := f"{value:.{digits}g}")
        if shown != bound and (shown < bound) == (value < bound):
            return text
    return repr(value)


def _judge(name: str, role: str, measured: dict[str, Any], tolerance: Tolerance) -> list[str]:
    """A failure for each of the role's bounds that `measured` breaks, naming metric, value, bound and output."""
    failures = []
    for bound_name in JUDGED_BY[role]:
        (metric, at_least), bound = BOUNDS[bound_name], getattr(tolerance, bound_name)
        value = measured.get(metric)
        if bound is None or value is None or (value >= bound if at_least else value <= bound):
            continue
        failures.append(f"{metric} {_number(value, bound)} {'<' if at_least else '>'} {bound:g} (output '{name}')")
    return failures


def _measure(role: str, kind: str, source: np.ndarray, artifact: np.ndarray, labels: np.ndarray | None) -> dict:
    """The role's metrics, plus SQNR and relative L2 error for every output (judged for dense ones only)."""
    dense = metrics.dense(source, artifact)
    if role == "dense":
        return dense
    judged = (metrics.classification(source, artifact, kind == "probabilities", labels) if role == "classification"
              else metrics.embedding(source, artifact))
    return {**judged, "sqnr_db": dense["sqnr_db"], "relative_l2": dense["relative_l2"]}


def _headline(task: str, roles: list[str], measured: list[dict[str, Any] | None]) -> tuple[str, Any, dict[str, Any]]:
    """The task's headline metric, its value and the metrics it is read from: the first classification output
    (its accuracy where labels apply, else its top-1 agreement), the worst embedding, the worst dense output."""
    role, metric = {"classification": ("classification", "top1_agreement"),
                    "embedding": ("embedding", "cosine_mean")}.get(task, ("dense", "sqnr_db"))
    candidates = [m for r, m in zip(roles, measured, strict=True) if r == role]
    if not candidates or None in candidates:  # an output that could not be measured is the worst of all
        return metric, None, {}
    chosen = candidates[0] if role == "classification" else min(candidates, key=lambda m: m[metric])
    if chosen.get("artifact_accuracy") is not None:
        return "accuracy", chosen["artifact_accuracy"], chosen
    return metric, chosen[metric], chosen


def compare_outputs(
    source: Sequence[np.ndarray] | np.ndarray,
    artifact: Sequence[np.ndarray] | np.ndarray,
    labels: np.ndarray | None,
    tolerance: Tolerance,
    *,
    task: str = "auto",
    names: Sequence[str] = (),
    class_names: Sequence[str] = (),
) -> ValidationResult:
    """Judge every output of `artifact` against `source` (arrays, batch first) and collect every broken bound.

    `labels`: integer class labels per sample (ignored unless 1-D integers, one per sample); `task`: one of
    TASKS ('auto' reads it from the outputs, see `detect_task`); `names`: the source outputs' names;
    `class_names`: the model's class names, if known (they count as labels for 'auto'). A NaN or infinite
    value in either output, or outputs that cannot be matched, fail. Raises ConfigError for an unknown task
    or one that no output fits. The result has no runtime, delegate or dataset (`validate` fills them).
    """
    source = [np.asarray(out, np.float64) for out in ([source] if isinstance(source, np.ndarray) else source)]
    artifact = [np.asarray(out, np.float64) for out in ([artifact] if isinstance(artifact, np.ndarray) else artifact)]
    samples = len(source[0]) if source and source[0].ndim else 0
    names = list(names) if len(names) == len(source) else [f"output_{i}" for i in range(len(source))]
    labels = None if labels is None else np.asarray(labels)
    if labels is not None and not (labels.ndim == 1 and len(labels) == samples and labels.dtype.kind in "iu"):
        labels = None
    kinds = output_kinds(source, labels, class_names, check_task(task))
    task = detect_task(kinds, labels is not None or bool(class_names)) if task == "auto" else task
    roles = judged_as(task, kinds)
    matched = match_outputs(source, artifact)
    failures: list[str] = [matched] if isinstance(matched, str) else []
    measured: list[dict[str, Any] | None] = [None] * len(source)
    reported: list[dict[str, Any]] = [{} for _ in source]
    for i, (name, kind, role, ours) in enumerate(zip(names, kinds, roles, source, strict=True)):
        if isinstance(matched, str):
            break
        bad_source, bad_artifact = metrics.non_finite(ours), metrics.non_finite(matched[i])
        if bad_source or bad_artifact:
            reported[i] = {"non_finite_artifact": bad_artifact, "non_finite_source": bad_source}
            failures.append(f"NaN or infinite values: {bad_artifact} of {ours.size} in the artifact's output, "
                            f"{bad_source} of {ours.size} in the source's (output '{name}')")
            continue
        fits = labels is not None and role == "classification" and ours.shape[-1] > int(labels.max(initial=0))
        measured[i] = reported[i] = _measure(role, kind, ours, matched[i], labels if fits else None)
        failures += _judge(name, role, measured[i], tolerance)
    metric, value, chosen = _headline(task, roles, measured)
    return ValidationResult(
        task=task, samples=samples, passed=not failures, failures=tuple(failures), tolerance=tolerance,
        headline={"metric": metric, "label": _HEADLINE_LABELS[metric], "value": value},
        outputs=tuple({"name": name, "kind": kind, "metrics": m} for name, kind, m in zip(names, kinds, reported,
                                                                                         strict=True)),
        **{name: chosen.get(name) for name in _CARRIED},
    )
