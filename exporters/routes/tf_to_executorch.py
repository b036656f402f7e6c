"""Keras / SavedModel -> ExecuTorch with ONNX as the bridge.

The frozen serving function (`tf_source`: one named input per model input, batch 1, integer inputs kept
integer) -> tf2onnx -> onnx2fx (FX GraphModule, rewritten by onnx_rewrites, positional inputs in the model's
order) -> torch.export, then the ExecuTorch lowering (torch_to_executorch). Every step's failure is an
ExportError naming the route, the step and the op it failed on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from exporters.base import AppliedStage
from exporters.routes import torch_to_executorch
from exporters.routes.onnx_common import OPSET, first_line, on_ops, step_failed
from exporters.routes.onnx_rewrites import REWRITES
from exporters.routes.tf_source import FrozenFunction, check_weight_bytes, frozen_function, source_parameter_bytes
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, PipelineError, converter_errors, tensorflow_errors
from pipeline.core.records import DelegationReport
from quantize import QuantizationConfig, explain_refusal, handler_for, register_handler

TF_TO_EXECUTORCH = "Keras/SavedModel -> ExecuTorch"
TARGET = "executorch"
BRIDGED_MODES = ("none", "dynamic-int8", "int8")  # the PT2E modes of torch -> executorch; not QAT
KERAS_TO_EXECUTORCH_ROUTE = (
    "Keras model -> tf.function (one TensorSpec per input, batch 1) -> variables frozen -> tf2onnx (opset 18) -> "
    "onnx2fx (FX GraphModule, NHWC input) -> torch.export -> to_edge_transform_and_lower (XnnpackPartitioner) "
    "-> to_executorch"
)
SAVED_MODEL_TO_EXECUTORCH_ROUTE = KERAS_TO_EXECUTORCH_ROUTE.replace("Keras model", "SavedModel serving_default")


def serving_to_onnx(frozen: FrozenFunction) -> Any:
    """Step 2/5: tf2onnx on the frozen serving function (inputs in the model's order, outputs in the source's);
    ExportError on TF ops ONNX lacks."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    def outputs(*inputs: Any) -> Any:
        results = frozen.function(*inputs)
        listed = [results[name] for name in frozen.output_names]
        return listed[0] if len(listed) == 1 else listed

    def failed(exc: Exception) -> PipelineError:
        return step_failed(TF_TO_EXECUTORCH, "2/5 (tf2onnx)", "", first_line(exc),
                           "Simplify the model's TF graph, or export to tflite/tfjs, which take TF ops directly.")

    with converter_errors(failed, "tf2onnx", *tensorflow_errors()):
        proto, _ = tf2onnx.convert.from_function(tf.function(outputs), input_signature=list(frozen.input_specs),
                                                 opset=OPSET)
    # tf2onnx leaves ops it cannot convert in the graph under their TF names (continue_on_error)
    unconverted = [n.op_type for n in proto.graph.node if not onnx.defs.has(n.op_type, n.domain)]
    if unconverted:
        raise step_failed(TF_TO_EXECUTORCH, "2/5 (tf2onnx)", on_ops(unconverted), "TF op(s) with no ONNX equivalent",
                          "Replace them in the model, or export to tflite/tfjs, which take TF ops directly.")
    return proto


def onnx_to_torch_module(model_proto: Any) -> Any:
    """Step 3/5: onnx2fx turns the ONNX graph into a torch.fx.GraphModule (eval mode, shapes inlined, Gemm as linear)."""
    import onnx2fx
    from onnx2fx.exceptions import Onnx2FxError

    def failed(exc: Exception) -> PipelineError:  # UnsupportedOpError, ConversionError (both carry op_type)
        return step_failed(TF_TO_EXECUTORCH, "3/5 (onnx2fx)", on_ops([getattr(exc, "op_type", None)]), first_line(exc),
                           "Replace the op in the model, register a handler with onnx2fx.register_op, "
                           "or export to tflite/tfjs.")

    with converter_errors(failed, "onnx2fx", Onnx2FxError):
        module = onnx2fx.convert(model_proto)
    for rewrite in (*REWRITES, matmul_to_linear):
        module = rewrite(module)
    return module.eval()


def _constant(module: Any, node: Any) -> Any:
    """The tensor behind a get_attr node, else None."""
    return getattr(module, node.target) if getattr(node, "op", "") == "get_attr" else None


def matmul_to_linear(module: Any) -> Any:
    """Rewrite matmul(x, W) (+ b) on a constant 2-D W (and 1-D b) as F.linear.

    tf2onnx writes a Dense layer as MatMul (+ Add) rather than Gemm when its bias folds away (a zero bias, as in
    an untrained or bias-free head) or when its input is not 2-D; onnx2fx keeps a matmul, which the XNNPACK
    quantizer does not annotate, so the layer (a classifier's 1000 x 1280 weights) would stay float.
    """
    import operator

    import torch

    for node in list(module.graph.nodes):
        if node.op != "call_function" or node.target is not torch.matmul or len(node.args) != 2:
            continue
        x, w = node.args
        weight = _constant(module, w)
        if weight is None or weight.dim() != 2 or not weight.is_floating_point() or len(w.users) != 1:
            continue
        add = next(iter(node.users)) if len(node.users) == 1 else None
        bias_node = None
        if add is not None and add.op == "call_function" and add.target in (torch.add, operator.add) and not add.kwargs:
            other = add.args[1] if add.args[0] is node else add.args[0]
            bias = _constant(module, other)
            if bias is not None and bias.dim() == 1 and bias.shape[0] == weight.shape[1] and len(other.users) == 1:
                bias_node = other
        module.register_buffer(w.target, weight.t().contiguous())  # linear takes [out, in]
        with module.graph.inserting_before(add if bias_node is not None else node):
            linear = module.graph.call_function(torch.nn.functional.linear, (x, w, bias_node))
        (add if bias_node is not None else node).replace_all_uses_with(linear)
        if bias_node is not None:
            module.graph.erase_node(add)
        module.graph.erase_node(node)
    module.graph.lint()
    module.recompile()
    return module


def keras_to_torch_module(bundle: ModelBundle, scratch_dir: Path | None = None) -> Any:
    """Steps 1-4: a Keras model or SavedModel as a torch.export-able GraphModule (same inputs and layout, batch 1).

    Nothing is written to disk: `scratch_dir` is accepted for older callers and not used.
    """
    route = SAVED_MODEL_TO_EXECUTORCH_ROUTE if bundle.framework == "tensorflow" else KERAS_TO_EXECUTORCH_ROUTE

    def failed(exc: Exception) -> PipelineError:  # Keras raises many types for layers it cannot trace
        return step_failed(TF_TO_EXECUTORCH, "1/5 (tf.function, variables frozen)", "", first_line(exc),
                           "Make the model traceable: it must run under tf.function with one tensor per input.")

    with converter_errors(failed, "Tracing the model", *tensorflow_errors()):
        frozen = frozen_function(bundle, route)
    module = onnx_to_torch_module(serving_to_onnx(frozen))
    try:
        torch_to_executorch.export_program(module, torch_to_executorch.example_args(bundle, route))
    except PipelineError as exc:
        raise ExportError(f"{TF_TO_EXECUTORCH} step 4/5 (torch.export) failed: {exc}") from None
    return module


def _bridged(
    bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig, delegate: str
) -> tuple[tuple[AppliedStage, ...], DelegationReport]:
    """The handler of every bridged mode: steps 1-4 here, then the torch -> executorch handler of the same mode.

    ExportError when the `.pte` is too small to hold the source's weights (its size bounds the weight bytes).
    """
    lower = handler_for(quantization.mode, "torch", TARGET)
    module = keras_to_torch_module(bundle)
    torch_bundle = replace(bundle, framework="torch", model=module)
    try:
        lowered = lower(torch_bundle, model_file, quantization, delegate)
    except ExportError as exc:
        raise ExportError(f"{TF_TO_EXECUTORCH} step 5/5 (ExecuTorch lowering) failed: {exc}") from None
    check_weight_bytes(source_parameter_bytes(bundle), model_file.stat().st_size, quantization.mode,
                       f"ExecuTorch program {model_file.name}")
    return lowered


def convert_keras_to_executorch(
    bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig, delegate: str
) -> tuple[tuple[AppliedStage, ...], DelegationReport]:
    """All five steps: write `model_file`; returns the stages applied and the delegation report.

    An impossible mode is refused (UnsupportedRouteError) before anything is converted.
    """
    return handler_for(quantization.mode, bundle.framework, TARGET)(bundle, model_file, quantization, delegate)


for _framework in ("keras", "tensorflow"):
    for _mode in BRIDGED_MODES:
        register_handler(_mode, _framework, TARGET, _bridged)
    explain_refusal("qat-int8", _framework, TARGET, "QAT fine-tunes the source model, and this route hands ExecuTorch "
                    "a graph converted through ONNX instead; export the Keras model to tflite, or choose int8")
