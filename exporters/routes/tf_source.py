"""The TensorFlow side of the Keras/SavedModel routes: one serving function over the model's named inputs, its
variables frozen into constants, and the weight bytes an artifact of each mode should hold.

The TFLite and ExecuTorch routes (and TF.js from Keras) convert the same function: one `tf.TensorSpec` per input
(its name and dtype, batch 1), the outputs named `output_0`, `output_1`, ... in the Keras model's order (a
SavedModel keeps its signature's names).
Freezing makes the artifact self-contained whatever the source kept as resources: a SavedModel written by
`tf.saved_model.save` from a subclassed Keras model otherwise converts to READ_VARIABLE ops that read nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, UnsupportedRouteError

# The share of the source's float32 parameter bytes an artifact of each mode holds as weights.
EXPECTED_WEIGHT_SHARE = {"none": 1.0, "fp16": 0.5, "uint16": 0.5, "dynamic-int8": 0.25, "weight-int8": 0.25,
                         "int8": 0.25, "qat-int8": 0.25, "uint8": 0.25}
MISSING_WEIGHTS_SHARE = 0.10  # below this share of the expected bytes, the weights did not make it in
RESAVE_FIX = ("Re-save the model so its weights are part of the graph it exports: save the Keras model itself "
              "(model.save('model.keras')) or export it with model.export(path, format='tf_saved_model'), "
              "then convert that.")


@dataclass(frozen=True)
class FrozenFunction:
    """The serving function with its variables as constants."""

    function: Any  # a ConcreteFunction taking the inputs positionally, returning {output name: tensor}
    input_specs: tuple[Any, ...]  # tf.TensorSpec per input, in the model's input order
    output_names: tuple[str, ...]  # sorted: the source model's order (a SavedModel's: sorted by name)


def tf_input_specs(bundle: ModelBundle, route: str) -> list[Any]:
    """One `tf.TensorSpec` per input (name, dtype, shape with batch 1); UnsupportedRouteError naming an input
    with a dynamic non-batch dimension, and how to fix it."""
    import tensorflow as tf

    open_dims = [spec for spec in bundle.inputs if any(d is None for d in spec.shape[1:])]
    if open_dims:
        fixed = ",".join(f"{s.name}:1x{'x'.join(str(d or 128) for d in s.shape[1:])}:{s.dtype}" for s in bundle.inputs)
        raise UnsupportedRouteError(
            f"{route} exports fixed shapes, and input(s) {', '.join(s.describe() for s in open_dims)} have a dynamic "
            f"dimension (-1). Fix it with --input-spec {fixed} (the size the device will use).")
    return [tf.TensorSpec([1, *spec.shape[1:]], tf.as_dtype(spec.dtype), name=spec.name) for spec in bundle.inputs]


def output_keys(count: int) -> list[str]:
    """`output_0`, `output_1`, ...: zero-padded so that sorting them by name keeps the model's order."""
    width = len(str(max(count - 1, 0)))
    return [f"output_{i:0{width}d}" for i in range(count)]


def _flat_outputs(result: Any) -> list[Any]:
    """A model call's result as a list of tensors (a dict's values in its order, like the reference predictor)."""
    if isinstance(result, Mapping):
        return list(result.values())
    return list(result) if isinstance(result, (list, tuple)) else [result]


def serving_function(bundle: ModelBundle) -> Callable[..., dict[str, Any]]:
    """The model as a function of its inputs (positional, in input order) returning a dict of named outputs."""
    if bundle.framework == "tensorflow":
        signature = bundle.model.signatures["serving_default"]
        names = bundle.input_names
        return lambda *inputs: dict(signature(**dict(zip(names, inputs, strict=True))))
    model = bundle.model

    def call(*inputs: Any) -> dict[str, Any]:
        outputs = _flat_outputs(model(inputs[0] if len(inputs) == 1 else list(inputs), training=False))
        return dict(zip(output_keys(len(outputs)), outputs, strict=True))

    return call


def variable_bytes(variables: Any) -> int:
    """The bytes the variables hold (elements times element size; TensorFlow or Keras variables)."""
    import numpy as np

    return sum(int(np.prod([int(d) for d in v.shape])) * np.dtype(getattr(v.dtype, "as_numpy_dtype", v.dtype)).itemsize
               for v in variables)


def frozen_function(bundle: ModelBundle, route: str) -> FrozenFunction:
    """Trace the serving function on the bundle's input specs and replace every variable it reads by a constant."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    specs = tf_input_specs(bundle, route)
    traced = tf.function(serving_function(bundle)).get_concrete_function(*specs)
    keys = sorted(traced.structured_outputs)  # the order the traced function returns them (tf.nest sorts keys)
    frozen = convert_variables_to_constants_v2(traced)
    function = tf.function(lambda *inputs: dict(zip(keys, frozen(*inputs), strict=True))).get_concrete_function(*specs)
    return FrozenFunction(function, tuple(specs), tuple(keys))


def save_frozen(frozen: FrozenFunction, path: Path) -> Path:
    """Write the frozen function as a SavedModel (its `serving_default` signature; no variables)."""
    import tensorflow as tf

    tf.saved_model.save(tf.Module(), str(path), signatures=frozen.function)
    return path


def source_parameter_bytes(bundle: ModelBundle) -> int:
    """The bytes of the source's parameters: a SavedModel signature's variables, a Keras model's weights."""
    if bundle.framework == "tensorflow":
        return variable_bytes(bundle.model.signatures["serving_default"].variables)
    return variable_bytes(bundle.model.weights)


def check_weight_bytes(source_bytes: int, artifact_bytes: int, mode: str, artifact: str,
                       variable_ops: tuple[str, ...] = ()) -> dict[str, Any]:
    """The manifest notes `source_parameter_bytes` and `artifact_weight_bytes` (and `variable_ops` when the
    artifact reads variables, a red flag); ExportError when the artifact holds under 10% of the bytes its mode
    keeps of the source's parameters: the weights did not make it into the artifact."""
    notes: dict[str, Any] = {"source_parameter_bytes": int(source_bytes), "artifact_weight_bytes": int(artifact_bytes)}
    if variable_ops:
        notes["variable_ops"] = list(variable_ops)
    expected = source_bytes * EXPECTED_WEIGHT_SHARE.get(mode, 0.25)
    if artifact_bytes < MISSING_WEIGHTS_SHARE * expected:
        ops = f", and reads variables it does not hold through {', '.join(variable_ops)} ops" if variable_ops else ""
        raise ExportError(
            f"The weights did not make it into the {artifact}: it holds {artifact_bytes} weight bytes where the "
            f"source's parameters are {source_bytes} bytes (about {int(expected)} expected for mode '{mode}'){ops}. "
            f"{RESAVE_FIX}")
    return notes
