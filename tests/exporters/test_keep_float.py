"""Selective quantization: `keep_float` layers stay float on the TFLite (Keras, torch) and ONNX routes."""

import numpy as np
import pytest

from exporters.routes.layer_names import kept_onnx_nodes, layer_label
from pipeline.core.errors import ConfigError, UnsupportedRouteError
from pipeline.export import export_bundle
from pipeline.intake import load_model
from quantize import ROUTE_HANDLERS, check_keep_float_route, quantization_config

KERAS_CONV = "conv2d_1_2"  # the second conv: 18 KB of float weights, a third of the model's int8 bytes
TORCH_CONV = "Conv2d_2"  # a part of the fused label 'ReLU_3+Conv2d_2'
ONNX_CONV = "node_conv2d_1"  # torch.onnx's node name of the second conv

PLAN = {  # name: (framework, target, mode, keep_float)
    "keras-fp32": ("keras", "tflite", "none", ()),
    "keras-int8": ("keras", "tflite", "int8", ()),
    "keras-int8-kept": ("keras", "tflite", "int8", (KERAS_CONV,)),
    "keras-dynamic": ("keras", "tflite", "dynamic-int8", ()),
    "keras-dynamic-kept": ("keras", "tflite", "dynamic-int8", (KERAS_CONV,)),
    "torch-fp32": ("torch", "tflite", "none", ()),
    "torch-dynamic": ("torch", "tflite", "dynamic-int8", ()),
    "torch-dynamic-kept": ("torch", "tflite", "dynamic-int8", (TORCH_CONV,)),
    "onnx-fp32": ("torch", "onnx", "none", ()),
    "onnx-int8": ("torch", "onnx", "int8", ()),
    "onnx-int8-kept": ("torch", "onnx", "int8", (ONNX_CONV,)),
}


def _config(mode, keep_float):
    return quantization_config(mode, **({"keep_float": list(keep_float)} if keep_float else {}))


@pytest.fixture(scope="module")
def bundles(model_paths):
    return {framework: load_model(str(path)) for framework, path in model_paths.items()}


@pytest.fixture(scope="module")
def exports(bundles, tmp_path_factory):
    root = tmp_path_factory.mktemp("keep-float")
    return {name: export_bundle(bundles[fw], target, _config(mode, kept), root / name)
            for name, (fw, target, mode, kept) in PLAN.items()}


def _tflite_filters(result):
    """label of each conv / fully connected op -> the dtype of its weight tensor."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(result.out_dir / result.manifest["model_file"]))
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    return {layer_label(";".join(tensors[i]["name"] for i in op["outputs"])): np.dtype(tensors[op["inputs"][1]]["dtype"]).name
            for op in interpreter._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")}


def _size(result):
    return result.manifest["size_bytes"]


@pytest.mark.parametrize("kept, plain, fp32, layer", [
    ("keras-int8-kept", "keras-int8", "keras-fp32", KERAS_CONV),
    ("keras-dynamic-kept", "keras-dynamic", "keras-fp32", KERAS_CONV),
    ("torch-dynamic-kept", "torch-dynamic", "torch-fp32", TORCH_CONV),
])
def test_tflite_keeps_the_named_layer_float(exports, kept, plain, fp32, layer):
    result = exports[kept]
    assert result.manifest["validation"]["passed"]
    filters = _tflite_filters(result)
    ours = [label for label in filters if layer in label.split("+")]
    assert ours and all(filters[label] == "float32" for label in ours)
    assert all(dtype == "int8" for label, dtype in filters.items() if label not in ours)
    assert _size(exports[plain]) < _size(result) < _size(exports[fp32])
    stage = next(s for s in result.manifest["stages"] if s["name"] == "quantize")
    assert list(stage["config"]["keep_float"]) == [layer] and stage["tool"].startswith("ai-edge-quantizer")
    assert [op["layer"] for op in stage["effect"]["kept_float"]] == ours
    assert "keep_float" not in next(s for s in exports[plain].manifest["stages"] if s["name"] == "quantize")["config"]


def test_keras_int8_without_keep_float_stays_on_the_converter(exports):
    stage = next(s for s in exports["keras-int8"].manifest["stages"] if s["name"] == "quantize")
    assert stage["tool"] == "tf.lite.TFLiteConverter"


def test_keeping_a_layer_float_does_not_cost_accuracy(exports):
    """Both int8 files calibrate with min/max over every sample: a moving average of batch-1 ranges made the
    keep-float file's error 1.6x the converter's."""
    plain, kept = (exports[name].manifest["validation"] for name in ("keras-int8", "keras-int8-kept"))
    assert kept["mean_abs_error"] <= plain["mean_abs_error"] * 1.05
    assert kept["max_abs_error"] <= plain["max_abs_error"] * 1.05


def test_onnx_int8_leaves_the_named_node_unquantized(exports):
    import onnx

    result = exports["onnx-int8-kept"]
    assert result.manifest["validation"]["passed"]
    graph = onnx.load(str(result.out_dir / result.manifest["model_file"])).graph
    initializers = {t.name: t for t in graph.initializer}
    conv_weights = {node.name: node.input[1] for node in graph.node if node.op_type == "Conv"}
    kept_weight = initializers[conv_weights[ONNX_CONV]]  # read directly, not through a DequantizeLinear
    assert onnx.helper.tensor_dtype_to_np_dtype(kept_weight.data_type) == np.float32
    dequantized = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    others = [dequantized[w] for name, w in conv_weights.items() if name != ONNX_CONV]
    assert others and all(initializers[w].data_type == onnx.TensorProto.INT8 for w in others)
    assert _size(exports["onnx-int8"]) < _size(result) < _size(exports["onnx-fp32"])
    stage = next(s for s in result.manifest["stages"] if s["name"] == "quantize")
    assert list(stage["config"]["keep_float"]) == [ONNX_CONV] and stage["effect"]["kept_float_nodes"] == [ONNX_CONV]


@pytest.mark.parametrize("name", ["keras-int8-kept", "onnx-int8-kept"])
def test_coverage_names_the_kept_layer_as_the_reason(exports, name):
    coverage = exports[name].manifest["quantization_coverage"]
    kept = [t for t in coverage["float_tensors"] if "keep_float" in t.get("reason", "")]
    assert kept and coverage["kept_float_bytes"] == sum(t["size_bytes"] for t in kept) > 10_000
    assert coverage["float_bytes"] == coverage["kept_float_bytes"]  # nothing else was left float
    assert "warning" not in coverage  # a third of the bytes in float, but on request


@pytest.mark.parametrize("framework, target, mode, options", [
    ("keras", "tflite", "int8", "conv2d_1, conv2d_1_2, dense_1"),
    ("torch", "tflite", "dynamic-int8", "Conv2d_0, Linear_6+ReLU_7"),
    ("torch", "onnx", "int8", "node_conv2d, node_linear"),
])
def test_unknown_name_lists_the_layers(bundles, tmp_path, framework, target, mode, options):
    with pytest.raises(ConfigError) as caught:
        export_bundle(bundles[framework], target, _config(mode, ("conv2d_9",)), tmp_path / "out")
    message = str(caught.value)
    assert "'conv2d_9'" in message and "pipeline debug" in message
    assert all(option in message for option in options.split(", "))
    assert not (tmp_path / "out").exists()


def test_onnx_labels_select_nodes_and_long_lists_are_cut():
    from onnx import helper

    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="PartitionedCall/model/dense_1/MatMul_Gemm__7"),
             helper.make_node("Relu", ["y"], ["z"], name="PartitionedCall/model/dense_1/Relu"),
             *(helper.make_node("Relu", ["z"], [f"r{i}"], name=f"model/layer_{i:02d}/Relu") for i in range(40))]
    graph = helper.make_graph(nodes, "g", [], [])
    assert kept_onnx_nodes(graph, ["dense_1"]) == [nodes[0].name, nodes[1].name]
    assert kept_onnx_nodes(graph, ["model/layer_03/Relu"]) == ["model/layer_03/Relu"]
    with pytest.raises(ConfigError, match=r"dense_1, layer_00, .*layer_28, \.\.\. and 11 more"):
        kept_onnx_nodes(graph, ["dense_2"])


def test_a_route_without_a_selective_handler_refuses():
    selective = set(ROUTE_HANDLERS.keep_float_routes())
    routes = [(m, f, t) for m in ("int8", "dynamic-int8", "weight-int8")
              for f, t in ROUTE_HANDLERS.routes_for(m) if (m, f, t) not in selective]
    if not routes:
        pytest.skip("every int8 route honours keep_float")
    mode, framework, target = routes[0]
    with pytest.raises(UnsupportedRouteError, match="keras -> tflite"):
        check_keep_float_route(_config(mode, ("conv2d_1",)), framework, target)
