"""In-memory models: a `keras.Model`, a `torch.nn.Module` or a `torch.export.ExportedProgram` as a ModelBundle.

The bundle's source is recorded as format 'in-memory' with a content hash (architecture and weights), so
an artifact's manifest still says what it was made from and the same model always hashes the same.
"""

from __future__ import annotations

import copy
import hashlib
import sys
from typing import Any

from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
from pipeline.core.datasets.base import LAYOUTS
from pipeline.core.errors import ConfigError, IntakeError
from pipeline.intake import keras_intake, torch_intake

IN_MEMORY_TYPES = ("a keras.Model", "a torch.nn.Module (with example_inputs)", "a torch.export.ExportedProgram")


def framework_of(model: Any) -> str | None:
    """'keras', 'torch', 'torch-program' for the objects this module takes; None for anything else.

    Only frameworks already imported are asked: a model object implies its framework is loaded.
    """
    if "torch" in sys.modules:
        import torch

        if isinstance(model, torch.export.ExportedProgram):
            return "torch-program"
        if isinstance(model, torch.nn.Module):
            return "torch"
    if "keras" in sys.modules:
        import keras

        if isinstance(model, keras.Model):
            return "keras"
    return None


def model_name(model: Any) -> str:
    """A Keras model's own name, else the model's class name."""
    name = getattr(model, "name", None)
    return name if isinstance(name, str) and name else type(model).__name__


def _example_shape(example_inputs: Any) -> tuple[tuple[int, ...], str]:
    """The shape and dtype of the single example input (a tensor, an array or a 1-tuple of one)."""
    if isinstance(example_inputs, (tuple, list)):
        if len(example_inputs) != 1:
            raise ConfigError(f"example_inputs must be one input batch (the pipeline takes models with exactly one "
                              f"input tensor), got {len(example_inputs)}.")
        example_inputs = example_inputs[0]
    shape = getattr(example_inputs, "shape", None)
    if shape is None:
        raise ConfigError(f"example_inputs must be a tensor or array batch, got {type(example_inputs).__name__}.")
    dtype = str(getattr(example_inputs, "dtype", "float32")).removeprefix("torch.")
    return tuple(int(d) for d in shape), dtype


def _spec_from_shape(shape: tuple[int, ...], dtype: str, layout: str, name: str = "input") -> TensorSpec:
    if len(shape) < 2 or any(d < 1 for d in shape):
        raise ConfigError(f"The input shape {list(shape)} must be a batch: batch first, then positive dimensions.")
    return TensorSpec(name=name, shape=(None, *shape[1:]), dtype=dtype, layout=layout)


def _digest(parts: list[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _torch_state_bytes(state: dict[str, Any]) -> list[bytes]:
    import torch

    parts = []
    for name, tensor in sorted(state.items()):
        if isinstance(tensor, torch.Tensor):
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            parts += [f"{name}:{tensor.dtype}:{list(tensor.shape)}".encode(), flat.view(torch.uint8).numpy().tobytes()]
    return parts


def _keras_hash(model: Any) -> str:
    try:
        architecture = model.to_json().encode()
    except (NotImplementedError, TypeError, ValueError):  # a subclassed model without get_config
        architecture = f"{type(model).__module__}.{type(model).__qualname__}".encode()
    weights = [w.tobytes() for w in model.get_weights()]
    return _digest([architecture, *weights])


def _keras_bundle(model: Any, example_inputs: Any, input_shape: tuple[int, ...] | None) -> tuple[Any, TensorSpec]:
    try:
        inputs = model.inputs
    except AttributeError:  # a subclassed model that was never called has no symbolic inputs
        inputs = None
    if inputs:
        spec = keras_intake.keras_input_spec(model, "the keras.Model")
        if any(d is None for d in spec.shape[1:]) and (example_inputs is not None or input_shape):
            shape = input_shape or _example_shape(example_inputs)[0]
            spec = TensorSpec(spec.name, (None, *shape[1:]), spec.dtype, spec.layout)
        return model, spec
    if example_inputs is None and input_shape is None:
        raise ConfigError("The keras.Model has no input shape (a subclassed model that was never built); pass "
                          "example_inputs=a batch of inputs (or input_shape=(1, ...)).")
    shape, dtype = (input_shape, "float32") if input_shape else _example_shape(example_inputs)
    return model, _spec_from_shape(shape, dtype, keras_intake.layout_for_rank(len(shape)))


def _torch_module(model: Any, example_inputs: Any, input_shape: tuple[int, ...] | None) -> tuple[Any, TensorSpec]:
    if example_inputs is None and input_shape is None:
        raise ConfigError(f"A torch.nn.Module ({type(model).__name__}) does not say what input it takes; pass "
                          "example_inputs=a batch of inputs (e.g. torch.randn(1, 3, 64, 64)) or input_shape=(1, 3, 64, 64).")
    shape, dtype = (input_shape, "float32") if input_shape else _example_shape(example_inputs)
    if model.training:  # export what inference runs (BatchNorm statistics, no dropout), leaving the caller's module as it is
        model = copy.deepcopy(model).eval()
    return model, _spec_from_shape(shape, dtype, torch_intake.layout_for_rank(len(shape)))


def bundle_from_object(
    model: Any,
    *,
    example_inputs: Any = None,
    input_shape: tuple[int, ...] | None = None,
    layout: str | None = None,
    name: str | None = None,
) -> ModelBundle:
    """A ModelBundle for an in-memory model (no data yet: add it with `with_data`).

    A `torch.nn.Module` needs `example_inputs` (or `input_shape`) to know its input; a module in training
    mode is exported from an eval-mode copy. `layout` overrides the input layout (default: NCHW for a 4-D
    PyTorch input, NHWC for Keras). `name` labels the source (default: a Keras model's name, else the class
    name). Raises IntakeError for an object of another type, ConfigError for a
    missing or contradicting input description.
    """
    framework = framework_of(model)
    if framework is None:
        raise IntakeError(f"Cannot take a {type(model).__module__}.{type(model).__qualname__} as a model. "
                          f"Supported in memory: {'; '.join(IN_MEMORY_TYPES)}; or pass a model file or a "
                          "'package.module:factory' reference.")
    label = f"<in-memory {(name or model_name(model)).replace('.', '_')}>"
    if framework == "keras":
        module, spec = _keras_bundle(model, example_inputs, input_shape)
        digest = _keras_hash(model)
    elif framework == "torch-program":
        module, spec = torch_intake.program_module(model, label)
        digest = _digest([str(model.graph_module.code).encode(), *_torch_state_bytes(model.state_dict)])
        framework = "torch"
    else:
        module, spec = _torch_module(model, example_inputs, input_shape)
        digest = _digest([f"{type(model).__module__}.{type(model).__qualname__}".encode(), str(model).encode(),
                          *_torch_state_bytes(model.state_dict())])
    if layout is not None:
        if layout not in LAYOUTS or (layout != "NC") != (len(spec.shape) == 4):
            raise ConfigError(f"layout '{layout}' does not fit the {len(spec.shape)}-D input {list(spec.shape)}: "
                              f"use NHWC or NCHW for 4-D image inputs, NC for 2-D.")
        spec = TensorSpec(spec.name, spec.shape, spec.dtype, layout)
    if any(d is None for d in spec.shape[1:]):
        raise ConfigError(f"The model's input {list(spec.shape)} has unknown dimensions; pass example_inputs or "
                          "input_shape=(1, ...) with every dimension.")
    source = SourceInfo(framework=framework, format="in-memory", path=label, sha256=digest)
    return ModelBundle(framework=framework, model=module, input_spec=spec, source=source)
