"""PyTorch `.pt2` programs and `package.module:factory` models with safe state dicts."""

from __future__ import annotations

import importlib
import pickle
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.core.bundle import TensorSpec
from pipeline.core.errors import ConfigError, IntakeError, converter_errors


def layout_for_rank(rank: int) -> str:
    """PyTorch's layout for an input of `rank` dimensions (channels first)."""
    return {4: "NCHW", 2: "NC"}.get(rank, f"rank{rank}")


@contextmanager
def _tensors_only_unpickling() -> Iterator[None]:
    """Force `torch.load(weights_only=True)` inside `torch.export.load`.

    torch.export.load retries with full unpickling when the safe load fails;
    an untrusted `.pt2` must never get that far.
    """
    import torch

    original = torch.load

    def guarded(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    torch.load = guarded
    try:
        yield
    finally:
        torch.load = original


def load_pt2(path: Path) -> tuple[Any, TensorSpec]:
    """Load a `torch.export.save` archive; returns the ExportedProgram's module."""
    import torch

    def unreadable(exc: Exception) -> IntakeError:
        return IntakeError(
            f"Could not read PyTorch program {path}: {exc}. A `.pt2` must be written by "
            "`torch.export.save` and hold only tensors (pickled Python objects are refused)."
        )

    with converter_errors(unreadable, f"Reading {path}", pickle.UnpicklingError, zipfile.BadZipFile), \
            _tensors_only_unpickling():
        program = torch.export.load(str(path))
    return program_module(program, str(path))


def program_module(program: Any, where: str) -> tuple[Any, TensorSpec]:
    """An ExportedProgram's module (in eval mode) and its single input; IntakeError for several inputs."""
    placeholders = [
        node for node in program.graph.nodes
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs
    ]
    if len(placeholders) != 1:
        raise IntakeError(f"{where} has {len(placeholders)} inputs; the pipeline takes exactly one input tensor.")
    value = placeholders[0].meta["val"]
    shape = tuple(int(d) if isinstance(d, int) else None for d in value.shape)
    dtype = str(value.dtype).removeprefix("torch.")
    spec = TensorSpec(name=placeholders[0].name, shape=shape, dtype=dtype, layout=layout_for_rank(len(shape)))
    module = program.module()
    for submodule in module.modules():  # the program was traced in eval mode; say so
        submodule.training = False
    return module, spec


def parse_factory(reference: str) -> tuple[str, str]:
    """Split 'package.module:factory' into its module and attribute names."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute.isidentifier():
        raise ConfigError(f"'{reference}' is not of the form package.module:factory (e.g. mypkg.models:build_net).")
    return module_name, attribute


def load_factory(reference: str, weights: Path | None, input_shape: tuple[int, ...] | None) -> tuple[Any, TensorSpec]:
    """Build a model by calling `package.module:factory()`, then load a state dict safely."""
    import torch

    module_name, attribute = parse_factory(reference)
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise IntakeError(
            f"Could not import '{reference}': {exc}. Make sure the package is importable "
            "(installed, or on PYTHONPATH) and the factory exists."
        ) from None
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise IntakeError(f"'{reference}' returned {type(model).__name__}, not a torch.nn.Module.")
    if weights is not None:
        load_state_dict(model, weights)
    if input_shape is None:
        raise ConfigError(
            f"The input shape of '{reference}' cannot be read from the model; pass --input-shape, "
            "e.g. --input-shape 1,3,64,64 (batch first, NCHW)."
        )
    spec = TensorSpec(name="input", shape=(None, *input_shape[1:]), layout=layout_for_rank(len(input_shape)))
    return model.eval(), spec


def load_state_dict(model: Any, weights: Path) -> None:
    """Load `weights` (a state dict; `.safetensors` or a torch file) without unpickling objects."""
    import torch

    if not weights.is_file():
        raise IntakeError(f"Weights file {weights} does not exist.")
    from safetensors import SafetensorError

    def unreadable(exc: Exception) -> IntakeError:
        return IntakeError(
            f"Could not read weights {weights}: {exc}. Weights must be a state dict of tensors "
            "(torch.save(model.state_dict(), path) or a .safetensors file); pickled objects are refused."
        )

    with converter_errors(unreadable, f"Reading {weights}", pickle.UnpicklingError, zipfile.BadZipFile, SafetensorError):
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(weights))
        else:
            state = torch.load(str(weights), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise IntakeError(f"Weights file {weights} holds a {type(state).__name__}, not a state dict.")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise IntakeError(f"Weights {weights} do not fit the model: {exc}") from None
