"""Keras / SavedModel -> ONNX: the frozen serving function (`tf_source`: one named input per model input, batch 1,
integer inputs kept integer) -> tf2onnx. Graph inputs keep the model's input names, outputs are output_0, ...
(a SavedModel's: its signature's output names, sorted), like the other targets' artifacts.
"""

from __future__ import annotations

from typing import Any

from exporters.routes.onnx_common import OPSET, first_line, on_ops, step_failed
from exporters.routes.tf_source import frozen_function
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import PipelineError, converter_errors, tensorflow_errors

TF_TO_ONNX = "Keras/SavedModel -> ONNX"
KERAS_ROUTE = (f"Keras model -> tf.function (one TensorSpec per input, batch 1) -> variables frozen -> "
               f"tf2onnx (opset {OPSET}; input names kept, outputs output_0, ...)")
SAVED_MODEL_ROUTE = KERAS_ROUTE.replace("Keras model", "SavedModel serving_default")
_FIX = "Simplify the model's TF graph, or export to tflite/tfjs, which take TF ops directly."


def rename_values(proto: Any, names: dict[str, str]) -> Any:
    """`proto` with the values in `names` renamed everywhere the main graph uses them (inputs, outputs, nodes)."""
    graph = proto.graph
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
    return proto


def tf_model_proto(bundle: ModelBundle) -> Any:
    """The Keras model or SavedModel as an in-memory ONNX ModelProto; ExportError naming a step that fails or
    TF ops ONNX lacks."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    route = SAVED_MODEL_ROUTE if bundle.framework == "tensorflow" else KERAS_ROUTE

    def failed(exc: Exception) -> PipelineError:
        return step_failed(TF_TO_ONNX, "(tf.function -> tf2onnx)", "", first_line(exc), _FIX)

    with converter_errors(failed, "tf2onnx", *tensorflow_errors()):
        frozen = frozen_function(bundle, route)

        def outputs(*inputs: Any) -> Any:
            results = frozen.function(*inputs)
            listed = [results[name] for name in frozen.output_names]
            return listed[0] if len(listed) == 1 else listed

        proto, _ = tf2onnx.convert.from_function(tf.function(outputs), input_signature=list(frozen.input_specs),
                                                 opset=OPSET)
    unconverted = [n.op_type for n in proto.graph.node if not onnx.defs.has(n.op_type, n.domain)]
    if unconverted:  # tf2onnx leaves ops it cannot convert in the graph under their TF names
        raise step_failed(TF_TO_ONNX, "(tf2onnx)", on_ops(unconverted), "TF op(s) with no ONNX equivalent", _FIX)
    names = {value.name: name for value, name in zip(proto.graph.input, bundle.input_names, strict=True)}
    names |= {value.name: name for value, name in zip(proto.graph.output, frozen.output_names, strict=True)}
    return rename_values(proto, names)
