"""PyTorch `.pt2` programs and `package.module:factory` models with safe state dicts."""

from __future__ import annotations

import importlib
import pickle
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError, IntakeError, converter_errors
from pipeline.core.tensors import DTYPES, TensorSpec, dtype_name, layout_for


def layout_for_rank(rank: int) -> str:
    """PyTorch's layout for an input of `rank` dimensions (channels first)."""
    return layout_for(rank, channels_last=False)


def input_spec(name: str, shape: Any, dtype: Any, where: str) -> TensorSpec:
    """One input as the pipeline describes it; IntakeError for a dtype no target takes."""
    dims = tuple(int(d) if isinstance(d, int) else None for d in shape)
    kind = dtype_name(dtype)
    if kind not in DTYPES:
        raise IntakeError(f"{where}: input '{name}' has dtype {kind}; the pipeline takes {', '.join(DTYPES)}.")
    return TensorSpec(name=name, shape=dims, dtype=kind,
                      layout=layout_for_rank(len(dims)) if kind.startswith("float") else "NC")


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


def load_pt2(path: Path) -> tuple[Any, tuple[TensorSpec, ...]]:
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


def program_module(program: Any, where: str) -> tuple[Any, tuple[TensorSpec, ...]]:
    """An ExportedProgram's module (in eval mode) and its tensor inputs, in call order, from the graph signature."""
    placeholders = [
        node for node in program.graph.nodes
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs
    ]
    tensors = [node for node in placeholders if hasattr(node.meta.get("val"), "shape")]
    if not tensors or len(tensors) != len(placeholders):
        raise IntakeError(f"{where} takes {len(placeholders)} inputs of which {len(tensors)} are tensors; the "
                          "pipeline takes programs whose inputs are all tensors (export with tensor example inputs).")
    specs = tuple(input_spec(node.name, node.meta["val"].shape, node.meta["val"].dtype, where) for node in tensors)
    module = program.module()
    for submodule in module.modules():  # the program was traced in eval mode; say so
        submodule.training = False
    return module, specs


def parse_factory(reference: str) -> tuple[str, str]:
    """Split 'package.module:factory' into its module and attribute names."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute.isidentifier():
        raise ConfigError(f"'{reference}' is not of the form package.module:factory (e.g. mypkg.models:build_net).")
    return module_name, attribute


def load_factory(reference: str, weights: Path | None,
                 input_specs: tuple[TensorSpec, ...] | None) -> tuple[Any, tuple[TensorSpec, ...]]:
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
    if not input_specs:
        raise ConfigError(
            f"The inputs of '{reference}' cannot be read from the model; pass --input-shape 1,3,64,64 (one float "
            "input, batch first, NCHW) or --input-spec name:shape:dtype for each input, e.g. "
            "--input-spec input_ids:1x128:int64,attention_mask:1x128:int64."
        )
    return model.eval(), tuple(replace(spec, shape=(None, *spec.shape[1:])) for spec in input_specs)


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
