"""In-memory models: a `keras.Model`, a `torch.nn.Module` or a `torch.export.ExportedProgram` as a ModelBundle.

The bundle's source is recorded as format 'in-memory' with a content hash (architecture and weights), so
an artifact's manifest still says what it was made from and the same model always hashes the same.
"""

from __future__ import annotations

import copy
import hashlib
import sys
from typing import Any

import numpy as np

from pipeline.core.bundle import ModelBundle, SourceInfo
from pipeline.core.datasets.base import LAYOUTS
from pipeline.core.errors import ConfigError, IntakeError
from pipeline.core.tensors import TensorSpec, describe_inputs
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


def _example_specs(example_inputs: Any, layout_for_rank: Any) -> tuple[TensorSpec, ...]:
    """Input specs from example inputs: one batch, a tuple/list of batches (positional inputs) or a dict of
    name -> batch (keyword order); the batch dimension is left dynamic."""
    if isinstance(example_inputs, dict):
        items = list(example_inputs.items())
    elif isinstance(example_inputs, (tuple, list)):
        items = [(f"input_{i}" if len(example_inputs) > 1 else "input", value) for i, value in enumerate(example_inputs)]
    else:
        items = [("input", example_inputs)]
    if not items:
        raise ConfigError("example_inputs is empty; pass a batch for each input of the model.")
    specs = []
    for name, value in items:
        shape = getattr(value, "shape", None)
        if shape is None:
            raise ConfigError(f"example_inputs['{name}'] must be a tensor or array batch, got {type(value).__name__}.")
        dims = tuple(int(d) for d in shape)
        if len(dims) < 2 or any(d < 1 for d in dims):
            raise ConfigError(f"The input shape {list(dims)} of '{name}' must be a batch: batch first, then positive "
                              "dimensions.")
        spec = torch_intake.input_spec(name, (None, *dims[1:]), getattr(value, "dtype", "float32"), "example_inputs")
        specs.append(TensorSpec(spec.name, spec.shape, spec.dtype, layout_for_rank(len(dims)) if spec.is_float else "NC"))
    return tuple(specs)


def _shape_spec(input_shape: tuple[int, ...], layout_for_rank: Any) -> tuple[TensorSpec, ...]:
    return _example_specs(np.zeros(tuple(input_shape), np.float32), layout_for_rank)


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


def _keras_bundle(model: Any, example_inputs: Any, input_shape: tuple[int, ...] | None) -> tuple[Any, tuple[TensorSpec, ...]]:
    try:
        inputs = model.inputs
    except AttributeError:  # a subclassed model that was never called has no symbolic inputs
        inputs = None
    layout = keras_intake.layout_for_rank
    if inputs:
        specs = keras_intake.keras_input_specs(model, "the keras.Model")
        if any(d is None for spec in specs for d in spec.shape[1:]) and (example_inputs is not None or input_shape):
            given = _shape_spec(input_shape, layout) if input_shape else _example_specs(example_inputs, layout)
            if len(given) == len(specs):
                specs = tuple(TensorSpec(s.name, (None, *g.shape[1:]), s.dtype, s.layout) for s, g in zip(specs, given, strict=True))
        return model, specs
    if example_inputs is None and input_shape is None:
        raise ConfigError("The keras.Model has no input shape (a subclassed model that was never built); pass "
                          "example_inputs=a batch of inputs (or input_shape=(1, ...)).")
    return model, _shape_spec(input_shape, layout) if input_shape else _example_specs(example_inputs, layout)


def _torch_module(model: Any, example_inputs: Any, input_shape: tuple[int, ...] | None) -> tuple[Any, tuple[TensorSpec, ...]]:
    if example_inputs is None and input_shape is None:
        raise ConfigError(f"A torch.nn.Module ({type(model).__name__}) does not say what input it takes; pass "
                          "example_inputs=a batch of inputs (e.g. torch.randn(1, 3, 64, 64)), a tuple of batches for "
                          "several inputs, or input_shape=(1, 3, 64, 64).")
    layout = torch_intake.layout_for_rank
    specs = _shape_spec(input_shape, layout) if input_shape else _example_specs(example_inputs, layout)
    if model.training:  # export what inference runs (BatchNorm statistics, no dropout), leaving the caller's module as it is
        model = copy.deepcopy(model).eval()
    return model, specs


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
        module, specs = _keras_bundle(model, example_inputs, input_shape)
        digest = _keras_hash(model)
    elif framework == "torch-program":
        module, specs = torch_intake.program_module(model, label)
        digest = _digest([str(model.graph_module.code).encode(), *_torch_state_bytes(model.state_dict)])
        framework = "torch"
    else:
        module, specs = _torch_module(model, example_inputs, input_shape)
        digest = _digest([f"{type(model).__module__}.{type(model).__qualname__}".encode(), str(model).encode(),
                          *_torch_state_bytes(model.state_dict())])
    if layout is not None:
        images = [spec for spec in specs if len(spec.shape) == 4]
        if layout not in LAYOUTS or (layout != "NC") != bool(images):
            raise ConfigError(f"layout '{layout}' does not fit the inputs ({describe_inputs(specs)}): "
                              f"use NHWC or NCHW for 4-D image inputs, NC for 2-D.")
        specs = tuple(TensorSpec(s.name, s.shape, s.dtype, layout if len(s.shape) == 4 else s.layout) for s in specs)
    open_dims = [spec for spec in specs if any(d is None for d in spec.shape[1:])]
    if open_dims:
        raise ConfigError(f"The model's inputs {describe_inputs(open_dims)} have unknown dimensions; pass "
                          "example_inputs or input_shape=(1, ...) with every dimension.")
    source = SourceInfo(framework=framework, format="in-memory", path=label, sha256=digest)
    return ModelBundle(framework=framework, model=module, inputs=specs, source=source)
