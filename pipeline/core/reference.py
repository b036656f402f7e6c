"""Run a source model in its own framework: the reference every artifact is compared with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.core.registry import Registry


def predict_keras(model: Any, x: np.ndarray) -> np.ndarray:
    """Inference-mode forward pass on one batch."""
    return np.asarray(model(x, training=False))


def predict_saved_model(loaded: Any, x: np.ndarray) -> np.ndarray:
    """Run the `serving_default` signature on one batch (its first output)."""
    import tensorflow as tf

    signature = loaded.signatures["serving_default"]
    name = next(iter(signature.structured_input_signature[1]))
    result = signature(**{name: tf.constant(x)})
    return np.asarray(next(iter(result.values())))


def predict_torch(model: Any, x: np.ndarray) -> np.ndarray:
    """Forward pass without gradients on one batch."""
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()


PREDICTORS: Registry[Callable[[Any, np.ndarray], np.ndarray]] = Registry("framework")
PREDICTORS.register("keras", predict_keras)
PREDICTORS.register("tensorflow", predict_saved_model)
PREDICTORS.register("torch", predict_torch)
