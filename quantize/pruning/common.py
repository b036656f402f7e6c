"""What the pruning stages share: config checks, their training data and the sparsity schedule."""

from __future__ import annotations

import math

from pipeline.core.bundle import ModelBundle
from pipeline.core.datasets import Dataset
from pipeline.core.errors import ConfigError
from quantize.finetune import TRAIN_DATA_FORM, training_data


def check_range(name: str, value: float, low: float, high: float, *, high_inclusive: bool = False) -> None:
    """ConfigError naming the value and the valid range unless low <= value < high (or <= high)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value and (
        value <= high if high_inclusive else value < high
    )
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise ConfigError(f"{name} must be in [{low:g}, {high:g}{bracket}, got {value!r}.")


def check_fine_tune(epochs: int, batch_size: int, learning_rate: float) -> None:
    """ConfigError for a negative epoch count, a batch below 1 or a non-positive learning rate."""
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise ConfigError(f"fine_tune_epochs must be an integer >= 0, got {epochs!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    if not learning_rate > 0:
        raise ConfigError(f"learning_rate must be > 0, got {learning_rate!r}.")


def stage_training_data(bundle: ModelBundle, stage: str, epochs: int) -> Dataset | None:
    """The bundle's training split for a pruning fine-tune (None if epochs == 0); DataError naming both fixes."""
    return training_data(
        bundle, epochs, needs=f"Stage '{stage}' fine-tunes for {epochs} epoch(s) and needs training data",
        fix=f"Pass {TRAIN_DATA_FORM}, or --finetune-epochs 0 for one-shot pruning without data (Python: "
            "train_data=..., or fine_tune_epochs=0 in the stage config). A model trained with `pipeline train` "
            "brings its own.")


def steps_per_epoch(samples: int, batch_size: int, static_batch: int | None = None) -> int:
    """Optimizer steps in one epoch (a fixed model batch drops the last, partial batch)."""
    if static_batch:
        return max(1, samples // static_batch)
    return max(1, math.ceil(samples / batch_size))


def polynomial_sparsity(step: int, begin: int, end: int, target: float, power: int = 3) -> float:
    """TFMOT's PolynomialDecay from 0 to `target` between steps `begin` and `end` (same curve in torch)."""
    if step < begin:
        return 0.0
    if step >= end or end <= begin:
        return target
    return target * (1.0 - (1.0 - (step - begin) / (end - begin)) ** power)
