"""Deterministic training loops for the reference models, one per framework."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.core.datasets import DatasetSplits
from pipeline.core.errors import ConfigError

LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters shared by both frameworks so their models stay comparable."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    lr_schedule: str = "constant"  # or "cosine": decay to 0 over all steps, per batch

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ConfigError(f"Training needs epochs >= 1, batch_size >= 1 and learning_rate > 0; got {self}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"Unknown lr_schedule '{self.lr_schedule}'. Options: {', '.join(LR_SCHEDULES)}.")

    def total_steps(self, samples: int) -> int:
        """Optimizer steps over all epochs (the last batch of an epoch may be short)."""
        return self.epochs * -(-samples // self.batch_size)


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in [0, 1]."""
    return float(np.mean(np.argmax(probabilities, axis=-1) == labels))


def train_keras(model: Any, splits: DatasetSplits, config: TrainConfig) -> None:
    """Adam (optionally cosine-decayed) + sparse cross-entropy on the model's probabilities, seeded."""
    import keras

    keras.utils.set_random_seed(config.seed)
    rate = config.learning_rate
    if config.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, config.total_steps(len(splits.train)))
    model.compile(
        optimizer=keras.optimizers.Adam(rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    )
    model.fit(
        splits.train.x, splits.train.y, epochs=config.epochs, batch_size=config.batch_size,
        shuffle=True, verbose=0,
    )


def train_torch(model: Any, splits: DatasetSplits, config: TrainConfig) -> None:
    """Adam (optionally cosine-decayed) + cross-entropy on the logits (the model minus its final softmax), seeded."""
    import torch

    torch.manual_seed(config.seed)
    logits_model = model[:-1]
    train = splits.train.in_layout("NCHW")
    x = torch.from_numpy(train.x)
    y = torch.from_numpy(train.y)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = None
    if config.lr_schedule == "cosine":  # same curve as keras CosineDecay(alpha=0)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.total_steps(len(x)))
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(logits_model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
    model.eval()
