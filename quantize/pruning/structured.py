"""prune-channels: structured pruning that removes whole conv channels / linear units, then fine-tunes.

PyTorch only, with torch-pruning: its DependencyGraph finds every tensor coupled to a channel (the
next layer's inputs, flatten, batch norm, residual adds) so removing it keeps the model consistent,
and the tensors really shrink. The layers producing the model's outputs are never pruned. A `.pt2`
GraphModule gets real Conv/Linear modules first (see torch_layers), which torch-pruning needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from importlib.metadata import version
from typing import Any, ClassVar

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ConfigError, RuntimeUnavailableError, UnsupportedRouteError, first_line
from pipeline.core.tensors import slice_feed
from quantize.finetune import baseline, fine_tune_effect, objective_for, torch_outputs, train_torch_model
from quantize.pruning.common import check_fine_tune, check_range, stage_training_data
from quantize.stages import StageConfig

IMPORTANCES = {"l1": 1, "l2": 2}
TORCH_PRUNING_PIN = "1.6.1"  # the version this stage is tested with

KERAS_REASON = (
    "Stage 'prune-channels' (structured channel pruning) is available for PyTorch models only. Removing "
    "channels means rewriting every layer coupled to them, which needs a dependency-graph pruner; "
    "torch-pruning is the maintained one, and Keras has none: TensorFlow Model Optimization prunes "
    "weights in place (its structural mode is 2:4 sparsity, which keeps every shape) and kerassurgeon "
    "has had no release since 2020 and does not support Keras 3. Prune the PyTorch version of the "
    "model, or use 'prune-magnitude' on the Keras one."
)


@dataclass(frozen=True)
class ChannelPruningConfig(StageConfig):
    """Remove `ratio` of the channels of every prunable layer (ranked by weight norm), then fine-tune."""

    stage: ClassVar[str] = "prune-channels"
    ratio: float
    fine_tune_epochs: int = 5
    importance: str = "l1"
    learning_rate: float = 1e-3
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("ratio", self.ratio, 0.0, 1.0)
        check_fine_tune(self.fine_tune_epochs, self.batch_size, self.learning_rate)
        if self.importance not in IMPORTANCES:
            raise ConfigError(f"importance must be one of {', '.join(IMPORTANCES)}, got {self.importance!r}.")


def _out_channels(module: Any) -> int:
    return int(module.weight.shape[0])


def _example(bundle: ModelBundle) -> tuple[Any, ...]:
    """One batch of every input, positional: real samples when the bundle has some, else zeros."""
    import torch

    batch = bundle.static_batch or 1
    data = bundle.eval_data or bundle.calibration_data or bundle.train_data
    if data is not None and len(data) >= batch:
        feed = slice_feed(bundle.feed(data), 0, batch)
    else:
        feed = {spec.name: np.zeros([batch, *[d or 1 for d in spec.shape[1:]]], spec.dtype) for spec in bundle.inputs}
    return tuple(torch.from_numpy(np.ascontiguousarray(array)) for array in feed.values())


def _check_runs(model: Any, example: Any, stage: str) -> None:
    """UnsupportedRouteError if the model no longer runs once channels are gone (sizes fixed in forward)."""
    import torch

    try:
        with torch.no_grad():
            model(*example)
    except RuntimeError as exc:
        raise UnsupportedRouteError(
            f"Stage '{stage}': the model does not run after its channels were removed ({first_line(exc, 300)}). Its "
            "forward() has sizes that torch-pruning cannot rewrite, such as a reshape to constant sizes; use "
            "x.flatten(1) or nn.Flatten, or prune it with 'prune-magnitude' instead."
        ) from None


def prune_channels_torch(bundle: ModelBundle, config: ChannelPruningConfig) -> tuple[ModelBundle, dict[str, Any]]:
    """torch-pruning MetaPruner (magnitude importance) over a DependencyGraph, then fine-tuning."""
    import torch

    try:
        import torch_pruning as tp
    except ImportError:
        raise RuntimeUnavailableError(
            f"Stage '{config.stage}' needs the torch-pruning package, which is not installed: "
            f"pip install 'torch-pruning=={TORCH_PRUNING_PIN}'."
        ) from None

    from quantize.pruning.torch_layers import prunable_layers, with_layer_modules

    data = stage_training_data(bundle, config.stage, config.fine_tune_epochs)
    objective = objective_for(bundle, data) if data is not None else None
    base = baseline(bundle)
    model = with_layer_modules(bundle.model)
    example = _example(bundle)
    layers = prunable_layers(model)
    with torch.no_grad():
        widths = {int(out.shape[-1]) for out in torch_outputs(model(*example))}
    # never prune what feeds the outputs: the layers whose channels are an output's last dimension (the classes)
    ignored = [module for _, module in layers if _out_channels(module) in widths]
    if not [module for _, module in layers if module not in ignored]:
        raise UnsupportedRouteError(f"Stage '{config.stage}': {bundle.source.path} has no hidden Conv or Linear "
                                    "layer whose channels could be removed.")
    channels_before = {name: _out_channels(module) for name, module in layers}
    parameters_before = sum(p.numel() for p in model.parameters())
    if config.ratio > 0:
        pruner = tp.pruner.MetaPruner(
            model, example, importance=tp.importance.MagnitudeImportance(p=IMPORTANCES[config.importance]),
            pruning_ratio=config.ratio, ignored_layers=ignored,
        )
        pruner.step()
        _check_runs(model, example, config.stage)
    parameters_after = sum(p.numel() for p in model.parameters())
    started = time.perf_counter()
    if objective is not None:
        train_torch_model(model, objective, config.fine_tune_epochs, config.batch_size, config.learning_rate,
                          config.seed, static_batch=bundle.static_batch)
    seconds = time.perf_counter() - started
    model.eval()
    pruned = replace(bundle, model=model)
    return pruned, {
        "tool": f"torch-pruning {version('torch-pruning')} MetaPruner (MagnitudeImportance p="
                f"{IMPORTANCES[config.importance]}, DependencyGraph)",
        "parameters_before": parameters_before,
        "parameters_after": parameters_after,
        "parameters_removed_ratio": round(1 - parameters_after / parameters_before, 6),
        "channels": {name: [channels_before[name], _out_channels(module)] for name, module in layers},
        "protected_layers": [name for name, module in layers if module in ignored],
        **fine_tune_effect(base, pruned, objective, config.fine_tune_epochs, seconds),
    }

