"""The PT2E quantizer every PyTorch -> ExecuTorch mode shares (post-training and QAT)."""

from __future__ import annotations

from typing import Any


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


def xnnpack_int8_quantizer(*, per_channel: bool = True, dynamic: bool = False, qat: bool = False) -> Any:
    """`xnnpack_quantizer()` set to symmetric int8: static or dynamic (linear layers), post-training or QAT."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

    return xnnpack_quantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=dynamic, is_qat=qat))


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
