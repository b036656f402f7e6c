"""PyTorch -> `.pte` through torch.export and `to_edge_transform_and_lower` (XNNPACK or portable kernels).

One registered handler per mode: float, PT2E dynamic or static int8 (XNNPACKQuantizer), PT2E QAT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.base import AppliedStage
from exporters.routes.calibration import calibration_feed, example_feed, per_sample, torch_args
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, UnsupportedRouteError, converter_errors, first_line
from pipeline.core.records import DelegationReport
from quantize import Int8StaticConfig, QatInt8Config, QuantizationConfig, handler_for, register_handler

ROUTE = "torch.export -> to_edge_transform_and_lower (XnnpackPartitioner) -> to_executorch"
TARGET = "executorch"
PT2E_TOOL = "PT2E (XNNPACKQuantizer)"


def example_args(bundle: ModelBundle, route: str = ROUTE) -> tuple[Any, ...]:
    """One batch-1 tensor per input, in input order and dtype, with standard strides (real data when there is
    some); UnsupportedRouteError naming an input whose dynamic dimension no data fixes."""
    return torch_args(example_feed(bundle, route))


def export_program(module: Any, args: tuple[Any, ...]) -> Any:
    """torch.export with an error that points at the construct it could not trace."""
    import torch

    def untraceable(exc: Exception) -> ExportError:  # UserError, GuardOnDataDependentSymNode, ...
        return ExportError(
            f"torch.export cannot trace {type(module).__name__}: {first_line(exc, 600)}. Make forward() free of "
            "data-dependent Python control flow (use torch.cond / torch.where), then export again."
        )

    with converter_errors(untraceable, "torch.export"):
        return torch.export.export(module, args)


def pt2e_quantize(bundle: ModelBundle, args: tuple[Any, ...], dynamic: bool, per_channel: bool = True,
                  calibration: int = 0, keep_float: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """XNNPACKQuantizer PT2E: static int8 calibrated on `calibration` real samples, or dynamic int8 (linear layers);
    the `keep_float` modules stay float (ConfigError naming the closest modules for a name that is none).

    Embedding tables are stored as 8-bit rows in both modes (XNNPACK does not quantize lookups; without this a
    text encoder's vocabulary table stays float and dominates the file). Returns the converted (q/dq) module and
    what it quantized or kept float.
    """
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from quantize.pt2e import (
        check_keep_float,
        embedding_count,
        kept_float_effect,
        with_embedding_tables,
        xnnpack_int8_quantizer,
    )

    samples = per_sample(calibration_feed(bundle, calibration)) if calibration else ()
    quantizer = xnnpack_int8_quantizer(per_channel=per_channel, dynamic=dynamic, keep_float=keep_float)
    program = export_program(bundle.model, args).module()
    kept = check_keep_float(program, bundle.model, keep_float)
    embeddings = embedding_count(program)
    prepared = prepare_pt2e(program, with_embedding_tables(quantizer) if embeddings else quantizer)
    with torch.no_grad():
        prepared(*args)  # weight observers need one pass even for dynamic quantization
        for sample in samples:  # real ids for integer inputs: an embedding's output range depends on them
            prepared(*torch_args(sample))
    quantized = {"embedding_tables": f"{embeddings} as uint8 rows (quantized_decomposed::embedding_byte)"} if embeddings else {}
    return convert_pt2e(prepared), {**quantized, **kept_float_effect(kept)}


def lower(module: Any, args: tuple[Any, ...], model_file: Path, delegate: str,
          stages: tuple[AppliedStage, ...], quantized_lookups: bool = False) -> tuple[tuple[AppliedStage, ...], DelegationReport]:
    """torch.export `module`, lower it (XNNPACK or portable kernels) into `model_file`; returns `stages` and the
    delegation report. `quantized_lookups`: fuse dequantize + embedding into `embedding_byte` (8-bit tables)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower

    program = export_program(module, args)
    if (delegate == "none" and stages) or quantized_lookups:
        import executorch.kernels.quantized  # noqa: F401  (registers out-variants of quantized ops)
    partitioners = [XnnpackPartitioner()] if delegate == "xnnpack" else []
    with converter_errors(lambda exc: ExportError(f"ExecuTorch lowering failed: {str(exc)[:600]}"), "ExecuTorch lowering"):
        edge = to_edge_transform_and_lower(program, partitioner=partitioners)
        report = delegation_report(edge.exported_program().graph_module, delegate)
        config = ExecutorchBackendConfig(do_quant_fusion_and_const_prop=quantized_lookups)
        model_file.write_bytes(edge.to_executorch(config).buffer)
    return stages, report


# --- one handler per mode: (bundle, model_file, quantization, delegate) -> (stages, delegation report) ---

Lowered = tuple[tuple[AppliedStage, ...], DelegationReport]


def _float(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig, delegate: str) -> Lowered:
    return lower(bundle.model, example_args(bundle), model_file, delegate, ())


def _dynamic_int8(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig, delegate: str) -> Lowered:
    args = example_args(bundle)
    module, quantized = pt2e_quantize(bundle, args, dynamic=True, keep_float=quantization.keep_float)
    stage = AppliedStage("quantize", quantization.to_json(), PT2E_TOOL, quantized)
    return lower(module, args, model_file, delegate, (stage,), quantized_lookups="embedding_tables" in quantized)


def _int8(bundle: ModelBundle, model_file: Path, quantization: Int8StaticConfig, delegate: str) -> Lowered:
    args = example_args(bundle)
    module, quantized = pt2e_quantize(bundle, args, dynamic=False, per_channel=quantization.per_channel,
                                      calibration=quantization.calibration_samples, keep_float=quantization.keep_float)
    stage = AppliedStage("quantize", quantization.to_json(), PT2E_TOOL, quantized)
    return lower(module, args, model_file, delegate, (stage,), quantized_lookups="embedding_tables" in quantized)


def _qat_int8(bundle: ModelBundle, model_file: Path, quantization: QatInt8Config, delegate: str) -> Lowered:
    from quantize.qat.torch_qat import qat_torch, xnnpack_qat_quantizer

    args = example_args(bundle)
    module, effect = qat_torch(bundle, quantization, xnnpack_qat_quantizer(quantization.keep_float))
    return lower(module, args, model_file, delegate, (AppliedStage("quantize", quantization.to_json(), effect["tool"], effect),))


POST_TRAINING_MODES = ("int8", "dynamic-int8")


def quantized_program(bundle: ModelBundle, quantization: QuantizationConfig) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """The PT2E-converted (q/dq) module an int8 or dynamic-int8 export lowers, its batch-1 example and the
    quantize effect, rebuilt from `bundle` (per-layer debugging lowers it to portable kernels).

    Raises UnsupportedRouteError for any other mode (QAT would have to fine-tune again).
    """
    if quantization.mode not in POST_TRAINING_MODES:
        raise UnsupportedRouteError(
            f"Rebuilding the quantized program covers {', '.join(POST_TRAINING_MODES)}, not {quantization.mode} "
            "(QAT would fine-tune again and land elsewhere); export with --quantize int8 to rank its layers.")
    args = example_args(bundle)
    static = isinstance(quantization, Int8StaticConfig)
    module, effect = pt2e_quantize(
        bundle, args, dynamic=not static, per_channel=quantization.per_channel if static else True,
        calibration=quantization.calibration_samples if static else 0, keep_float=quantization.keep_float)
    return module, args, effect


def convert_torch_to_executorch(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig, delegate: str) -> Lowered:
    """Write `model_file` with the handler registered for the mode; returns the stages applied and the delegation report."""
    return handler_for(quantization.mode, bundle.framework, TARGET)(bundle, model_file, quantization, delegate)


def delegation_report(graph_module: Any, delegate: str) -> DelegationReport:
    """Delegated vs total compute ops, and the ops left on portable kernels."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    # getitem only unpacks delegate outputs; it is not compute
    ops = {name: b for name, b in info.delegation_by_operator.items() if name != "getitem"}
    delegated = sum(b.delegated for b in ops.values())
    return DelegationReport(
        delegate, ops_total=delegated + sum(b.non_delegated for b in ops.values()), ops_delegated=delegated,
        ops_not_delegated=tuple(sorted(name for name, b in ops.items() if b.non_delegated)),
        delegated_subgraphs=info.num_delegated_subgraphs,
    )


register_handler("none", "torch", TARGET, _float)
register_handler("dynamic-int8", "torch", TARGET, _dynamic_int8, keep_float=True)
register_handler("int8", "torch", TARGET, _int8, keep_float=True)
register_handler("qat-int8", "torch", TARGET, _qat_int8, keep_float=True)
