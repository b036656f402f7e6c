"""Validation of an artifact against its source model on real evaluation data, within its mode's registered tolerance."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import DataError
from quantize import Tolerance, tolerance_for


@dataclass(frozen=True)
class ValidationResult:
    """How closely an artifact reproduces its source on `samples` evaluation inputs."""

    samples: int
    max_abs_error: float
    mean_abs_error: float
    top1_agreement: float
    source_accuracy: float | None
    artifact_accuracy: float | None
    tolerance: Tolerance
    passed: bool
    failures: tuple[str, ...]
    runtime: str
    delegate: str
    dataset: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = list(self.failures)
        return data


def compare_outputs(
    source: np.ndarray, artifact: np.ndarray, labels: np.ndarray | None, tolerance: Tolerance
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Metrics of `artifact` vs `source` outputs and every tolerance they break (all at once)."""
    error = np.abs(source.astype(np.float64) - artifact.astype(np.float64))
    agreement = float(np.mean(source.argmax(-1) == artifact.argmax(-1)))
    metrics: dict[str, Any] = {
        "max_abs_error": float(error.max()),
        "mean_abs_error": float(error.mean()),
        "top1_agreement": agreement,
        "source_accuracy": None,
        "artifact_accuracy": None,
    }
    failures = []
    if tolerance.max_abs_error is not None and metrics["max_abs_error"] > tolerance.max_abs_error:
        failures.append(f"max abs error {metrics['max_abs_error']:.3g} > {tolerance.max_abs_error:g}")
    if agreement < tolerance.min_top1_agreement:
        failures.append(f"top-1 agreement {agreement:.2%} < {tolerance.min_top1_agreement:.0%}")
    if labels is not None:
        metrics["source_accuracy"] = float(np.mean(source.argmax(-1) == labels))
        metrics["artifact_accuracy"] = float(np.mean(artifact.argmax(-1) == labels))
        drop = metrics["source_accuracy"] - metrics["artifact_accuracy"]
        if drop > tolerance.max_accuracy_drop:
            failures.append(f"accuracy drop {drop * 100:.2f} points > {tolerance.max_accuracy_drop * 100:.1f}")
    return metrics, tuple(failures)


def validate(bundle: ModelBundle, session: Any, mode: str, runtime: str) -> ValidationResult:
    """Run the evaluation split through the source model and the artifact session and compare."""
    data = bundle.eval_data
    if data is None:
        raise DataError(
            "No evaluation data to validate the artifact on: pass --eval-data FILE.npz (array 'x' "
            "shaped like the model input, optional integer labels 'y'), or --no-validate to skip."
        )
    tolerance = tolerance_for(mode)
    source = bundle.predict(data.x)
    artifact = session.run(data.x)
    metrics, failures = compare_outputs(source, artifact, data.y, tolerance)
    return ValidationResult(
        samples=len(data), tolerance=tolerance, passed=not failures, failures=failures,
        runtime=runtime, delegate=session.delegate, dataset=data.name, **metrics,
    )
