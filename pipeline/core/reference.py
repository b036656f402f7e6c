"""Run a source model in its own framework: the reference every artifact is compared with.

A predictor takes a feed (input name -> batch, in the model's input order) and returns every output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.core.registry import Registry
from pipeline.core.tensors import Feed, as_outputs, output_names


def predict_keras(model: Any, feed: Feed) -> list[np.ndarray]:
    """Inference-mode forward pass on one batch (a list of inputs for a multi-input model)."""
    arrays = list(feed.values())
    return as_outputs(model(arrays[0] if len(arrays) == 1 else arrays, training=False))


def natural_key(name: str) -> list[Any]:
    """Sort key that puts output_2 before output_10 (the order the runtimes give a signature's outputs)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def saved_model_output_names(loaded: Any, feed: Feed | None = None) -> tuple[str, ...]:
    """The `serving_default` signature's outputs, in natural name order (the order the runtimes give them)."""
    return tuple(sorted(loaded.signatures["serving_default"].structured_outputs, key=natural_key))


def predict_saved_model(loaded: Any, feed: Feed) -> list[np.ndarray]:
    """Run the `serving_default` signature on one batch; outputs sorted by name."""
    import tensorflow as tf

    signature = loaded.signatures["serving_default"]
    expected = signature.structured_input_signature[1]
    result = signature(**{name: tf.constant(array, dtype=expected[name].dtype) for name, array in feed.items()})
    return [np.asarray(result[name]) for name in sorted(result, key=natural_key)]


def predict_torch(model: Any, feed: Feed) -> list[np.ndarray]:
    """Forward pass without gradients on one batch; inputs are passed positionally in the model's order."""
    import torch

    with torch.no_grad():
        result = model(*(torch.from_numpy(np.ascontiguousarray(array)) for array in feed.values()))
    return as_outputs(result)


def keras_output_names(model: Any, feed: Feed | None = None) -> tuple[str, ...]:
    names = getattr(model, "output_names", None)
    return tuple(names) if names else ()


def torch_output_names(model: Any, feed: Feed) -> tuple[str, ...]:
    """The keys of a module that returns a dict or a model-output object (run once on `feed`); () for tensors."""
    import torch

    with torch.no_grad():
        result = model(*(torch.from_numpy(np.ascontiguousarray(array)) for array in feed.values()))
    return output_names(result)


PREDICTORS: Registry[Callable[[Any, Feed], list[np.ndarray]]] = Registry("framework")
PREDICTORS.register("keras", predict_keras)
PREDICTORS.register("tensorflow", predict_saved_model)
PREDICTORS.register("torch", predict_torch)

OUTPUT_NAMES: Registry[Callable[[Any, Feed], tuple[str, ...]]] = Registry("framework")
OUTPUT_NAMES.register("keras", keras_output_names)
OUTPUT_NAMES.register("tensorflow", saved_model_output_names)
OUTPUT_NAMES.register("torch", torch_output_names)
