"""The PT2E quantizer every PyTorch -> ExecuTorch mode shares (post-training and QAT)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.registry import did_you_mean

SELF_PREFIX = "L['self']."  # how strict (dynamo) tracing spells the root module in nn_module_stack


def module_path(path: str) -> str:
    """A module's fully qualified name from an nn_module_stack path ('' for the root)."""
    return path[len(SELF_PREFIX):] if path.startswith(SELF_PREFIX) else path


def node_modules(node: Any) -> list[str]:
    """The modules `node` was traced inside, outermost first, by fully qualified name."""
    return [module_path(path) for path, _ in (node.meta.get("nn_module_stack") or {}).values()]


def module_ops(graph_module: Any, model: Any = None) -> dict[str, list[str]]:
    """Every module of the traced model (plus `model.named_modules()`) -> the ops traced inside its subtree."""
    ops: dict[str, list[str]] = {} if model is None else {  # holders of weights (a traced program's helpers hold none)
        name: [] for name, module in model.named_modules() if next(module.state_dict().keys().__iter__(), None)}
    for node in graph_module.graph.nodes:
        if node.op == "call_function":
            for name in node_modules(node):
                ops.setdefault(name, []).append(str(getattr(node.target, "__name__", node.target)))
    ops.pop("", None)
    return ops


def check_keep_float(graph_module: Any, model: Any, names: Iterable[str]) -> dict[str, list[str]]:
    """`names` -> the ops each keeps in float (a module with none is fine: nothing to keep).

    Raises ConfigError for a name that is no module of the model, listing the closest module names.
    """
    ops = module_ops(graph_module, model)
    for name in names:
        if name not in ops:
            close = sorted(ops, key=lambda option: -_similarity(name, option))[:8]
            raise ConfigError(
                f"keep_float: '{name}' is not a module of the model.{did_you_mean(name, list(ops))} Closest module "
                f"names: {', '.join(close) or '(none)'}. Names are fully qualified module names as in "
                "model.named_modules(); `pipeline debug ARTIFACT_DIR` ranks them by quantization error.")
    return {name: ops[name] for name in names}


def kept_float_effect(kept: dict[str, list[str]]) -> dict[str, Any]:
    """The effect entry for `check_keep_float`'s answer: module -> the distinct ops it left float ({} for none)."""
    return {"kept_float": {name: sorted(set(ops)) for name, ops in kept.items()}} if kept else {}


def _similarity(name: str, option: str) -> float:
    import difflib

    return difflib.SequenceMatcher(None, name, option).ratio()


def outside_modules(names: Iterable[str]) -> Callable[[Any], bool]:
    """A node filter: True for nodes traced outside every module in `names` (and their submodules)."""
    kept = frozenset(names)
    return lambda node: kept.isdisjoint(node_modules(node))


def xnnpack_quantizer() -> Any:
    """ExecuTorch's XNNPACKQuantizer, keeping integer arithmetic integer.

    Before annotating, it turns every scalar operand of add/mul into a float32 constant, so integer index
    arithmetic (arange(n) + 0, as transformers builds attention masks) turns float and indexing then fails
    ("tensors used as indices must be long"). Constants it made for an integer add/mul get that integer dtype back.
    """
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer

    arithmetic = (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor)

    class IntegerSafeXNNPACKQuantizer(XNNPACKQuantizer):
        def transform_for_annotation(self, model: Any) -> Any:
            model = super().transform_for_annotation(model)
            for node in model.graph.nodes:
                result = node.meta.get("val")
                if node.target not in arithmetic or result is None or result.dtype.is_floating_point:
                    continue
                for arg in node.args:
                    constant = getattr(model, arg.target) if getattr(arg, "op", "") == "get_attr" else None
                    if constant is not None and constant.dim() == 0 and constant.is_floating_point():
                        model.register_buffer(arg.target, constant.to(result.dtype))
                        arg.meta["val"] = result.fake_mode.from_tensor(getattr(model, arg.target), static_shapes=True)
            model.recompile()
            return model

    return IntegerSafeXNNPACKQuantizer()


def xnnpack_int8_quantizer(*, per_channel: bool = True, dynamic: bool = False, qat: bool = False,
                           keep_float: Iterable[str] = ()) -> Any:
    """`xnnpack_quantizer()` set to symmetric int8: static or dynamic (linear layers), post-training or QAT; the
    modules named in `keep_float` (fully qualified names) and their submodules stay float.

    XNNPACKQuantizer.set_module_name refuses a None config (executorch 1.5), so the kept modules are left out with
    its node filter, which every pattern annotator consults.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

    quantizer = xnnpack_quantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=dynamic, is_qat=qat))
    keep_float = tuple(keep_float)
    return quantizer.set_filter_function(outside_modules(keep_float)) if keep_float else quantizer


def embedding_count(graph_module: Any) -> int:
    """How many embedding lookups (`aten.embedding`) the exported graph holds."""
    import torch

    return sum(1 for node in graph_module.graph.nodes if node.target == torch.ops.aten.embedding.default)


def with_embedding_tables(quantizer: Any) -> Any:
    """`quantizer` composed with torchao's EmbeddingQuantizer: embedding tables stored as 8-bit rows (one scale
    and zero point per row), looked up by ExecuTorch's `quantized_decomposed::embedding_byte` kernel."""
    from torchao.quantization.pt2e.quantizer.composable_quantizer import ComposableQuantizer
    from torchao.quantization.pt2e.quantizer.embedding_quantizer import EmbeddingQuantizer

    return ComposableQuantizer([EmbeddingQuantizer(), quantizer])
