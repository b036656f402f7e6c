"""PyTorch -> `.pte` through torch.export and `to_edge_transform_and_lower` (XNNPACK or portable kernels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import AppliedStage
from exporters.routes.calibration import calibration_samples
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, UnsupportedRouteError, first_line
from quantize import DynamicInt8Config, Int8StaticConfig, QatInt8Config, QuantizationConfig

ROUTE = "torch.export -> to_edge_transform_and_lower (XnnpackPartitioner) -> to_executorch"
SUPPORTED_MODES = ("none", "dynamic-int8", "int8")
TORCH_ONLY_MODES = ("qat-int8",)  # fine-tunes the PyTorch model itself: not through the Keras ONNX bridge


def example_args(bundle: ModelBundle) -> tuple[Any, ...]:
    """A batch-1 example with default (row-major) strides, from real data when there is some."""
    import torch

    data = bundle.eval_data or bundle.calibration_data
    if data is not None:
        return (torch.tensor(np.asarray(data.x[:1], dtype=np.float32)),)
    return (torch.zeros([1, *bundle.input_spec.shape[1:]], dtype=torch.float32),)


def export_program(module: Any, args: tuple[Any, ...]) -> Any:
    """torch.export with an error that points at the construct it could not trace."""
    import torch

    try:
        return torch.export.export(module, args)
    except Exception as exc:  # torch.export raises UserError, GuardOnDataDependentSymNode, ...
        raise ExportError(
            f"torch.export cannot trace {type(module).__name__}: {first_line(exc, 600)}. Make forward() free of "
            "data-dependent Python control flow (use torch.cond / torch.where), then export again."
        ) from None


def _pt2e(bundle: ModelBundle, args: tuple[Any, ...], quantization: QuantizationConfig) -> Any:
    """XNNPACKQuantizer PT2E: static int8 calibrated on real samples, or dynamic int8 (linear layers)."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    dynamic = isinstance(quantization, DynamicInt8Config)
    per_channel = getattr(quantization, "per_channel", True)
    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=dynamic)
    )
    prepared = prepare_pt2e(export_program(bundle.model, args).module(), quantizer)
    with torch.no_grad():
        prepared(*args)  # weight observers need one pass even for dynamic quantization
        if isinstance(quantization, Int8StaticConfig):
            for sample in calibration_samples(bundle, quantization.calibration_samples):
                prepared(torch.from_numpy(sample[None].copy()))
    return convert_pt2e(prepared)


def convert_torch_to_executorch(
    bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig, delegate: str
) -> tuple[tuple[AppliedStage, ...], dict[str, Any]]:
    """Write `model_file`; returns the stages applied and the delegation report."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    if quantization.mode not in (*SUPPORTED_MODES, *TORCH_ONLY_MODES):
        raise UnsupportedRouteError(
            f"Quantization '{quantization.mode}' is not supported on the ExecuTorch route. "
            f"Options: {', '.join(SUPPORTED_MODES + TORCH_ONLY_MODES)}."
        )
    args = example_args(bundle)
    stages: tuple[AppliedStage, ...] = ()
    module = bundle.model
    if isinstance(quantization, QatInt8Config):
        from quantize.qat.torch_qat import qat_torch, xnnpack_qat_quantizer

        module, effect = qat_torch(bundle, quantization, xnnpack_qat_quantizer())
        stages = (AppliedStage("quantize", quantization.to_json(), effect["tool"], effect),)
    elif quantization.mode != "none":
        module = _pt2e(bundle, args, quantization)
        stages = (AppliedStage("quantize", quantization.to_json(), "PT2E (XNNPACKQuantizer)"),)
    program = export_program(module, args)
    if delegate == "none" and stages:
        import executorch.kernels.quantized  # noqa: F401  (registers out-variants of quantized ops)
    partitioners = [XnnpackPartitioner()] if delegate == "xnnpack" else []
    try:
        edge = to_edge_transform_and_lower(program, partitioner=partitioners)
        report = delegation_report(edge.exported_program().graph_module, delegate)
        model_file.write_bytes(edge.to_executorch().buffer)
    except Exception as exc:
        raise ExportError(f"ExecuTorch lowering failed: {str(exc)[:600]}") from None
    return stages, report


def delegation_report(graph_module: Any, delegate: str) -> dict[str, Any]:
    """Delegated vs total compute ops, and the ops left on portable kernels."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    # getitem only unpacks delegate outputs; it is not compute
    ops = {name: b for name, b in info.delegation_by_operator.items() if name != "getitem"}
    delegated = sum(b.delegated for b in ops.values())
    total = delegated + sum(b.non_delegated for b in ops.values())
    return {
        "delegate": delegate,
        "delegated_subgraphs": info.num_delegated_subgraphs,
        "ops_total": total,
        "ops_delegated": delegated,
        "delegated_share": round(delegated / total, 4) if total else 0.0,
        "ops_not_delegated": sorted(name for name, b in ops.items() if b.non_delegated),
    }
