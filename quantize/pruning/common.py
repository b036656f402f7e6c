"""What the pruning stages share: config checks, training data, accuracy and the fine-tune loops."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.datasets import Dataset
from pipeline.core.errors import ConfigError, DataError


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


def training_data(bundle: ModelBundle, stage: str, epochs: int) -> Dataset | None:
    """The bundle's labelled training split, or DataError when fine-tuning needs one (None if epochs == 0)."""
    if epochs == 0:
        return None
    data = bundle.train_data
    if data is None or data.y is None:
        what = "no training data" if data is None else f"training data '{data.name}' without labels"
        raise DataError(
            f"Stage '{stage}' fine-tunes for {epochs} epoch(s) and needs labelled training data, but "
            f"{bundle.source.path or 'the model'} has {what}. Use a model trained with `pipeline train` "
            "(its card names the dataset, whose train split is used), or set fine_tune_epochs=0 to "
            "prune without fine-tuning."
        )
    bundle.input_spec.check_batch(data.x, "training data")
    return data


def eval_accuracy(bundle: ModelBundle) -> float | None:
    """Top-1 accuracy on the bundle's labelled evaluation data (None when it has none)."""
    data = bundle.eval_data
    if data is None or data.y is None:
        return None
    return round(float(np.mean(np.argmax(bundle.predict(data.x), axis=-1) == data.y)), 6)


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


def train_torch_model(
    model: Any,
    data: Dataset,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    on_step: Callable[[int], None] | None = None,
    static_batch: int | None = None,
) -> None:
    """Adam on the cross-entropy of the model's outputs; `on_step(step)` runs before each batch.

    Outputs that are probabilities (the zoo models end in softmax) are turned into log-probabilities,
    so the loss is right for logits and probabilities alike. Works on an exported GraphModule too; one
    exported with a fixed batch size is trained in batches of exactly that size.
    """
    import torch

    if static_batch:
        batch_size = static_batch

    torch.manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32))
    y = torch.from_numpy(np.asarray(data.y, dtype=np.int64))
    with torch.no_grad():
        probe = model(x[:batch_size])
    probabilities = bool(probe.min() >= 0 and torch.allclose(probe.sum(-1), torch.ones(len(probe)), atol=1e-3))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    step = 0
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            if on_step is not None:
                on_step(step)
            batch = order[start : start + batch_size]
            if static_batch and len(batch) < static_batch:
                break
            optimizer.zero_grad()
            out = model(x[batch])
            logits = torch.log(out.clamp_min(1e-12)) if probabilities else out
            torch.nn.functional.cross_entropy(logits, y[batch]).backward()
            optimizer.step()
            step += 1
    model.eval()
