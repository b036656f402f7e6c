"""prune-magnitude: unstructured magnitude pruning of conv/dense weights, ramped up while fine-tuning.

Sparsity follows TFMOT's PolynomialDecay (cubic) from 0 to the target over `ramp_fraction` of the
fine-tune steps, starting after `begin_fraction` of them; the rest fine-tunes at the target.
Keras: TFMOT `prune_low_magnitude` (per-layer) on a tf_keras twin of the model, weights copied back.
PyTorch: `torch.nn.utils.prune.global_unstructured` (L1, over all conv/linear weights), made
permanent with `prune.remove`. With fine_tune_epochs=0 the weights are pruned once, without data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ConfigError, UnsupportedRouteError
from quantize.finetune import baseline, fine_tune_effect, fit_keras, objective_for, train_torch_model
from quantize.pruning.common import (
    check_fine_tune,
    check_range,
    polynomial_sparsity,
    stage_training_data,
    steps_per_epoch,
)
from quantize.stages import StageConfig


@dataclass(frozen=True)
class MagnitudePruningConfig(StageConfig):
    """Zero the `sparsity` fraction of smallest-magnitude conv/dense weights, fine-tuning as it ramps up."""

    stage: ClassVar[str] = "prune-magnitude"
    sparsity: float
    fine_tune_epochs: int = 3
    begin_fraction: float = 0.0
    ramp_fraction: float = 0.5
    learning_rate: float = 1e-3
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("sparsity", self.sparsity, 0.0, 1.0)
        check_fine_tune(self.fine_tune_epochs, self.batch_size, self.learning_rate)
        check_range("begin_fraction", self.begin_fraction, 0.0, 1.0)
        check_range("ramp_fraction", self.ramp_fraction, 0.0, 1.0, high_inclusive=True)
        if self.begin_fraction + self.ramp_fraction > 1.0 + 1e-9:
            raise ConfigError(
                f"begin_fraction + ramp_fraction must be <= 1 (the ramp has to end within fine-tuning), "
                f"got {self.begin_fraction} + {self.ramp_fraction}."
            )

    def schedule(self, total_steps: int) -> tuple[int, int, int]:
        """(begin, end, frequency) in 1-based training steps; the target is reached at `end` <= total."""
        begin = max(1, math.floor(self.begin_fraction * total_steps))
        ramp = max(0, min(math.floor(self.ramp_fraction * total_steps), total_steps - begin))
        frequency = max(1, ramp // 10)  # about ten mask updates along the ramp
        return begin, begin + (ramp // frequency) * frequency, frequency  # end == begin: prune once, at begin


def _effect(config: MagnitudePruningConfig, tool: str, granularity: str, prunable: list[np.ndarray],
            parameters_total: int, fine_tune: dict[str, Any]) -> dict[str, Any]:
    size = sum(w.size for w in prunable)
    zeros = sum(int(np.count_nonzero(w == 0)) for w in prunable)
    return {
        "tool": tool,
        "granularity": granularity,
        "sparsity_target": config.sparsity,
        "sparsity_reached": round(zeros / size, 6) if size else 0.0,
        "prunable_parameters": int(size),
        "parameters_total": int(parameters_total),
        "zeros": zeros,
        **fine_tune,
    }


def prune_torch(bundle: ModelBundle, config: MagnitudePruningConfig) -> tuple[ModelBundle, dict[str, Any]]:
    """Global L1 unstructured pruning with torch.nn.utils.prune, stepped up over the fine-tune."""
    from torch.nn.utils import prune

    from quantize.pruning.torch_layers import prunable_layers, with_layer_modules

    data = stage_training_data(bundle, config.stage, config.fine_tune_epochs)
    objective = objective_for(bundle, data) if data is not None else None
    base = baseline(bundle)
    model = with_layer_modules(bundle.model)
    targets = [(module, "weight") for _, module in prunable_layers(model)]
    if not targets:
        raise UnsupportedRouteError(
            f"Stage '{config.stage}': {bundle.source.path} has no Conv or Linear layers to prune."
        )
    size = sum(module.weight.numel() for module, _ in targets)

    def prune_to(sparsity: float) -> None:
        masked = sum(int((getattr(m, "weight_mask", m.weight.new_ones(1)) == 0).sum()) for m, _ in targets)
        extra = round(sparsity * size) - masked
        if extra > 0:
            prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=extra)

    started = time.perf_counter()
    if objective is None:
        prune_to(config.sparsity)
    else:
        static = bundle.static_batch
        total = config.fine_tune_epochs * steps_per_epoch(objective.samples, config.batch_size, static)
        begin, end, frequency = config.schedule(total)

        def on_step(step: int) -> None:  # step is 0-based; the schedule counts from 1 like TFMOT
            if begin <= step + 1 <= end and (step + 1 - begin) % frequency == 0:
                prune_to(polynomial_sparsity(step + 1, begin, end, config.sparsity))

        train_torch_model(model, objective, config.fine_tune_epochs, config.batch_size, config.learning_rate,
                          config.seed, on_step=on_step, static_batch=static)
        prune_to(config.sparsity)  # a no-op unless the schedule fell short
    seconds = time.perf_counter() - started
    for module, name in targets:
        if prune.is_pruned(module):
            prune.remove(module, name)
    model.eval()
    pruned = replace(bundle, model=model)
    weights = [module.weight.detach().numpy() for module, _ in targets]
    parameters = sum(p.numel() for p in model.parameters())
    tool = "torch.nn.utils.prune.global_unstructured (L1Unstructured) + prune.remove"
    return pruned, _effect(config, tool, "global over conv/linear weights", weights, parameters,
                           fine_tune_effect(base, pruned, objective, config.fine_tune_epochs, seconds))


def _prunable_weight_names(layer: Any) -> list[str]:
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    try:
        return list(PruneRegistry._weight_names(layer))  # what prune_low_magnitude would prune
    except KeyError:
        return []


def prune_keras(bundle: ModelBundle, config: MagnitudePruningConfig) -> tuple[ModelBundle, dict[str, Any]]:
    """TFMOT prune_low_magnitude + PolynomialDecay + UpdatePruningStep + strip_pruning, via tf_keras."""
    import keras
    import tf_keras

    from quantize.pruning.keras_bridge import copy_weights, import_tfmot, to_tf_keras

    tfmot = import_tfmot()
    sparsity_api = tfmot.sparsity.keras
    data = stage_training_data(bundle, config.stage, config.fine_tune_epochs)
    objective = objective_for(bundle, data) if data is not None else None
    base = baseline(bundle)
    twin = to_tf_keras(bundle.model)
    tf_keras.utils.set_random_seed(config.seed)
    static = bundle.static_batch  # a fixed model batch: train in exactly that size
    if objective is None:
        schedule = sparsity_api.ConstantSparsity(config.sparsity, begin_step=0, frequency=1)
        how = "ConstantSparsity, one shot"
    else:
        batch_size = static or config.batch_size
        total = config.fine_tune_epochs * steps_per_epoch(objective.samples, batch_size, static)
        begin, end, frequency = config.schedule(total)
        schedule = (sparsity_api.PolynomialDecay(0.0, config.sparsity, begin, end, power=3, frequency=frequency)
                    if end > begin else sparsity_api.ConstantSparsity(config.sparsity, begin, end_step=end))
        how = "PolynomialDecay, UpdatePruningStep"
    pruned_names = [layer.name for layer in twin.layers if _prunable_weight_names(layer)]
    if not pruned_names:
        raise UnsupportedRouteError(f"Stage '{config.stage}': {bundle.source.path} has no layer TFMOT can prune.")

    def wrap(layer: Any) -> Any:
        if layer.name not in pruned_names:
            return layer
        return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)

    wrapped = tf_keras.models.clone_model(twin, clone_function=wrap)
    started = time.perf_counter()
    if objective is None:  # one shot: let each wrapper compute its mask at step 0 and apply it
        for layer in wrapped.layers:
            if hasattr(layer, "pruning_obj"):  # a PruneLowMagnitude wrapper
                layer.pruning_step.assign(0)
                layer.pruning_obj.conditional_mask_update()
                layer.pruning_obj.weight_mask_op()
    else:
        fit_keras(wrapped, objective, config.fine_tune_epochs, config.batch_size, config.learning_rate,
                  static_batch=static, callbacks=[sparsity_api.UpdatePruningStep()])
    seconds = time.perf_counter() - started
    stripped = sparsity_api.strip_pruning(wrapped)
    model = keras.models.clone_model(bundle.model)
    copy_weights(stripped, model)
    pruned = replace(bundle, model=model)
    weights = [np.asarray(getattr(model.get_layer(name), attr))
               for name in pruned_names for attr in _prunable_weight_names(twin.get_layer(name))]
    return pruned, _effect(config, f"tensorflow-model-optimization {tfmot.__version__} prune_low_magnitude "
                           f"({how}, strip_pruning) on a tf_keras twin of the Keras 3 model",
                           "per layer", weights, model.count_params(),
                           fine_tune_effect(base, pruned, objective, config.fine_tune_epochs, seconds))
