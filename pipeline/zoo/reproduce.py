"""Check that `pipeline train` reproduces a zoo model's shipped weights: same accuracy, same predictions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import ConfigError
from pipeline.intake import load_model
from pipeline.intake.card import read_card
from pipeline.zoo.materialize import materialize, shipped_model


@dataclass(frozen=True)
class Reproduction:
    """A fresh training run next to the shipped model, on the card dataset's test split."""

    name: str
    framework: str
    seed: int
    shipped_accuracy: float
    trained_accuracy: float
    agreement: float  # fraction of test samples where both predict the same class
    train_seconds: float

    def matches(self, max_accuracy_gap: float = 0.01, min_agreement: float = 0.97) -> bool:
        return abs(self.trained_accuracy - self.shipped_accuracy) <= max_accuracy_gap and self.agreement >= min_agreement

    def describe(self) -> str:
        return (f"{self.name} ({self.framework}, seed {self.seed}): shipped {self.shipped_accuracy:.2%}, "
                f"retrained {self.trained_accuracy:.2%} in {self.train_seconds:.0f} s, "
                f"agreement {self.agreement:.2%}: {'reproduced' if self.matches() else 'NOT reproduced'}")


def _predicted_classes(path: Path) -> np.ndarray:
    """The class the model predicts for each sample of its card's test split."""
    bundle = load_model(str(path))
    return np.argmax(bundle.predict(bundle.eval_data), axis=-1)


def reproduce(name: str, framework: str, out: Path) -> Reproduction:
    """Train `name` for `framework` into `out` with the shipped card's seed and compare it with the shipped model.

    Accuracies are the cards' (test split, measured when training); agreement is over the same split.
    """
    shipped = shipped_model(name, framework)
    card = read_card(shipped) if shipped else None
    if card is None:
        raise ConfigError(f"Zoo model '{name}' ships no '{framework}' weights to reproduce.")
    trained = materialize(name, framework, out, retrain=True, seed=card.seed)
    agreement = float(np.mean(_predicted_classes(shipped) == _predicted_classes(trained.path)))
    return Reproduction(name=name, framework=framework, seed=card.seed,
                        shipped_accuracy=float(card.training["test_accuracy"]),
                        trained_accuracy=float(trained.test_accuracy or 0.0), agreement=agreement,
                        train_seconds=trained.seconds)
