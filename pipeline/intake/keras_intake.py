"""Keras `.keras` files and TensorFlow SavedModel directories."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from pipeline.core.errors import IntakeError, converter_errors, first_line, tensorflow_errors
from pipeline.core.tensors import DTYPES, TensorSpec, dtype_name, layout_for


def layout_for_rank(rank: int) -> str:
    """Keras's layout for an input of `rank` dimensions (channels last)."""
    return layout_for(rank, channels_last=True)


def input_spec(name: str, shape: Any, dtype: Any, where: str) -> TensorSpec:
    """One input as the pipeline describes it; IntakeError for a dtype no target takes."""
    dims = tuple(None if d is None else int(d) for d in shape)
    kind = dtype_name(dtype)
    if kind not in DTYPES:
        raise IntakeError(f"{where}: input '{name}' has dtype {kind}; the pipeline takes {', '.join(DTYPES)}.")
    return TensorSpec(name=name, shape=dims, dtype=kind, layout=layout_for_rank(len(dims)) if kind.startswith("float")
                      else "NC")


def load_keras_file(path: Path) -> tuple[Any, tuple[TensorSpec, ...]]:
    """Load a `.keras` archive with Keras safe mode on (no arbitrary code in lambdas)."""
    import keras

    def unreadable(exc: Exception) -> IntakeError:
        return IntakeError(
            f"Could not read Keras model {path}: {exc}. The file must be a complete `.keras` "
            "archive written by `model.save(...)`; re-save it, or check that it was fully copied."
        )

    with converter_errors(unreadable, f"Reading {path}", zipfile.BadZipFile, *tensorflow_errors()):
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    return model, keras_input_specs(model, str(path))


def keras_input_specs(model: Any, where: str) -> tuple[TensorSpec, ...]:
    """The inputs of a built Keras model, in its call order, named as Keras names them."""
    return tuple(input_spec(getattr(tensor, "name", None) or f"input_{i}", tensor.shape, tensor.dtype, where)
                 for i, tensor in enumerate(model.inputs))


def load_saved_model(path: Path) -> tuple[Any, tuple[TensorSpec, ...]]:
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
    if not inputs:
        raise IntakeError(f"SavedModel {path}: 'serving_default' takes no inputs; export a signature over the model's inputs.")
    return loaded, tuple(input_spec(name, spec.shape.as_list(), spec.dtype.name, str(path))
                         for name, spec in inputs.items())
