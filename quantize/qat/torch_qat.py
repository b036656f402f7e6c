"""qat-int8 for PyTorch: PT2E `prepare_qat_pt2e` with the target's quantizer, fine-tune, `convert_pt2e`.

The model gets real layer modules (see pruning.torch_layers) and is exported in training mode, so
PT2E sees conv + batch-norm patterns (folded into the fake-quantized conv weights) and batch norms
keep learning. The batch dimension stays dynamic for training; the exporters lower the converted
model with their own batch-1 example, exactly as for post-training int8.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from typing import Any

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, converter_errors, first_line
from pipeline.core.tensors import Feed, slice_feed
from pipeline.core.versions import package_version
from quantize.config import QatInt8Config
from quantize.finetune import baseline, fine_tune_effect, objective_for, train_torch_model
from quantize.qat.common import qat_training_data


def litert_qat_quantizer() -> Any:
    """litert-torch's PT2EQuantizer, symmetric per-channel int8 with fake quantization for QAT."""
    from litert_torch.quantize import pt2e_quantizer

    return pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_qat=True)
    )


def xnnpack_qat_quantizer(keep_float: tuple[str, ...] = ()) -> Any:
    """ExecuTorch's XNNPACKQuantizer (integer arithmetic kept integer), symmetric per-channel int8 with fake
    quantization for QAT; the `keep_float` modules (fully qualified names) stay float."""
    from quantize.pt2e import xnnpack_int8_quantizer

    return xnnpack_int8_quantizer(per_channel=True, qat=True, keep_float=keep_float)


@contextmanager
def _litert_patterns_as_modules() -> Iterator[None]:
    """litert-torch 0.10 hands torchao its conv-bn QAT patterns as plain functions, which torch.export
    (2.13) refuses ("Expected `mod` to be an instance of `torch.nn.Module`"); wrap them in a module."""
    import torch
    from litert_torch.quantize import pt2e_quantizer_utils as utils
    from torchao.quantization.pt2e import WrapperModule

    original = utils._get_aten_graph_module_for_pattern

    def as_module(pattern: Any, *args: Any, **kwargs: Any) -> Any:
        return original(pattern if isinstance(pattern, torch.nn.Module) else WrapperModule(pattern), *args, **kwargs)

    utils._get_aten_graph_module_for_pattern = as_module
    try:
        yield
    finally:
        utils._get_aten_graph_module_for_pattern = original


def _training_program(bundle: ModelBundle, feed: Feed) -> Any:
    """The model exported in training mode on every input, batch dimension dynamic unless the model fixes it."""
    import torch

    from quantize.pruning.torch_layers import with_layer_modules

    model = with_layer_modules(bundle.model)
    model.train()
    example = tuple(torch.from_numpy(np.ascontiguousarray(array)) for array in feed.values())
    dynamic = None if bundle.static_batch else tuple({0: torch.export.Dim.AUTO} for _ in example)

    def untraceable(exc: Exception) -> ExportError:
        return ExportError(
            f"torch.export cannot trace {type(bundle.model).__name__} in training mode for QAT: {first_line(exc)}. "
            "Make forward() free of data-dependent Python control flow, or choose --quantize int8."
        )

    with converter_errors(untraceable, "Tracing the model for QAT"):
        return torch.export.export(model, example, dynamic_shapes=dynamic).module()


def qat_torch(bundle: ModelBundle, config: QatInt8Config, quantizer: Any, *,
              fold_quantize: bool = True) -> tuple[Any, dict[str, Any]]:
    """prepare_qat_pt2e -> fine-tune -> convert_pt2e; returns the converted module and the effect.

    `quantizer` must already leave `config.keep_float` float; those names are checked against the traced model
    here (ConfigError naming the closest modules) before any training, and the effect lists what they kept.
    """
    import torch
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    from quantize.pt2e import check_keep_float, kept_float_effect

    objective = objective_for(bundle, qat_training_data(bundle, config))
    base = baseline(bundle)
    static = bundle.static_batch
    torch.manual_seed(config.seed)
    program = _training_program(bundle, slice_feed(objective.feed, 0, static or min(config.batch_size,
                                                                                     objective.samples)))
    kept = check_keep_float(program, bundle.model, config.keep_float)
    patch = _litert_patterns_as_modules() if type(quantizer).__module__.startswith("litert_torch") else nullcontext()
    with patch:
        prepared = prepare_qat_pt2e(program, quantizer)
    allow_exported_model_train_eval(prepared)  # train()/eval() switch fake quant, batch norm and dropout
    started = time.perf_counter()
    train_torch_model(prepared, objective, config.fine_tune_epochs, config.batch_size, config.learning_rate,
                      config.seed, static_batch=static)
    seconds = time.perf_counter() - started
    move_exported_model_to_eval(prepared)
    for module in prepared.modules():  # converters check the flag, which the move above leaves set
        module.training = False
    converted = _drop_unused_tensors(convert_pt2e(prepared, fold_quantize=fold_quantize))
    tool = (f"PT2E prepare_qat_pt2e/convert_pt2e (torchao {package_version('torchao')}, {type(quantizer).__name__} "
            "per-channel symmetric, is_qat=True), fine-tuned with Adam")
    effect = fine_tune_effect(base, replace(bundle, model=converted), objective, config.fine_tune_epochs, seconds)
    return converted, {"tool": tool, **effect, **kept_float_effect(kept)}


def _drop_unused_tensors(model: Any) -> Any:
    """Delete parameters and buffers the graph no longer reads (float weights and batch-norm tensors that
    convert_pt2e folded away); torch.export would keep them and ExecuTorch serialize them."""
    used = {node.target for node in model.graph.nodes if node.op == "get_attr"}
    for name in [n for n, _ in [*model.named_parameters(), *model.named_buffers()] if n not in used]:
        owner, _, attr = name.rpartition(".")
        delattr(model.get_submodule(owner) if owner else model, attr)
    return model
