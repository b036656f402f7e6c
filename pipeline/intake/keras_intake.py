"""Keras `.keras` files and TensorFlow SavedModel directories."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from pipeline.core.bundle import TensorSpec
from pipeline.core.errors import IntakeError, converter_errors, first_line, tensorflow_errors


def layout_for_rank(rank: int) -> str:
    """Keras's layout for an input of `rank` dimensions (channels last)."""
    return {4: "NHWC", 2: "NC"}.get(rank, f"rank{rank}")


def _single_input_error(path: Path | str, count: int) -> IntakeError:
    return IntakeError(f"{path} has {count} inputs; the pipeline takes models with exactly one input tensor.")


def load_keras_file(path: Path) -> tuple[Any, TensorSpec]:
    """Load a `.keras` archive with Keras safe mode on (no arbitrary code in lambdas)."""
    import keras

    def unreadable(exc: Exception) -> IntakeError:
        return IntakeError(
            f"Could not read Keras model {path}: {exc}. The file must be a complete `.keras` "
            "archive written by `model.save(...)`; re-save it, or check that it was fully copied."
        )

    with converter_errors(unreadable, f"Reading {path}", zipfile.BadZipFile, *tensorflow_errors()):
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    return model, keras_input_spec(model, str(path))


def keras_input_spec(model: Any, where: str) -> TensorSpec:
    """The single input of a built Keras model; IntakeError for a model with several inputs."""
    if len(model.inputs) != 1:
        raise _single_input_error(where, len(model.inputs))
    tensor = model.inputs[0]
    shape = tuple(None if d is None else int(d) for d in tensor.shape)
    name = getattr(tensor, "name", None) or "input"
    return TensorSpec(name=name, shape=shape, dtype=str(tensor.dtype), layout=layout_for_rank(len(shape)))


def load_saved_model(path: Path) -> tuple[Any, TensorSpec]:
    """Load a SavedModel directory and describe its `serving_default` signature."""
    import tensorflow as tf

    def unreadable(exc: Exception) -> IntakeError:
        return IntakeError(f"Could not read SavedModel {path}: {first_line(exc)}. Re-export it with tf.saved_model.save.")

    with converter_errors(unreadable, f"Reading {path}", *tensorflow_errors()):
        loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise IntakeError(f"SavedModel {path} has no 'serving_default' signature; export one with tf.saved_model.save.")
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1:
        raise _single_input_error(path, len(inputs))
    name, spec = next(iter(inputs.items()))
    shape = tuple(spec.shape.as_list())
    return loaded, TensorSpec(name=name, shape=shape, dtype=spec.dtype.name, layout=layout_for_rank(len(shape)))
