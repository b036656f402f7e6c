"""Validation of an artifact against its source model on real evaluation data."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import DataError


@dataclass(frozen=True)
class Tolerance:
    """What 'agrees with the source' means for one quantization mode.

    Outputs are class probabilities, so `max_abs_error` is in probability units; None leaves it
    unbounded (a mode that retrains the weights is judged on agreement and accuracy only).
    """

    max_abs_error: float | None
    min_top1_agreement: float
    max_accuracy_drop: float  # in accuracy points (0.015 = 1.5 points)


TOLERANCES = {
    "none": Tolerance(max_abs_error=1e-4, min_top1_agreement=0.99, max_accuracy_drop=0.005),
    "fp16": Tolerance(max_abs_error=1e-2, min_top1_agreement=0.99, max_accuracy_drop=0.01),
    # 8-bit weights: one boundary sample of 600 moved by 0.15 on the MobileNet (TF.js uint8, 99.7% agreement)
    "dynamic-int8": Tolerance(max_abs_error=0.2, min_top1_agreement=0.97, max_accuracy_drop=0.015),
    "weight-int8": Tolerance(max_abs_error=0.2, min_top1_agreement=0.97, max_accuracy_drop=0.015),
    # full-integer: activations are int8 too, so boundary samples move more (0.26 measured on the pruned MobileNet)
    "int8": Tolerance(max_abs_error=0.35, min_top1_agreement=0.97, max_accuracy_drop=0.015),
    # QAT fine-tunes the weights, so outputs move away from the source's by design (a sample near a decision
    # boundary can change its probabilities by 0.8): agreement and accuracy are what must hold
    "qat-int8": Tolerance(max_abs_error=None, min_top1_agreement=0.97, max_accuracy_drop=0.015),
    "uint16": Tolerance(max_abs_error=1e-2, min_top1_agreement=0.99, max_accuracy_drop=0.01),
    "uint8": Tolerance(max_abs_error=0.2, min_top1_agreement=0.97, max_accuracy_drop=0.015),
}


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
    tolerance = TOLERANCES[mode]
    source = bundle.predict(data.x)
    artifact = session.run(data.x)
    metrics, failures = compare_outputs(source, artifact, data.y, tolerance)
    return ValidationResult(
        samples=len(data), tolerance=tolerance, passed=not failures, failures=failures,
        runtime=runtime, delegate=session.delegate, dataset=data.name, **metrics,
    )
