"""Layer names for selective quantization (`keep_float`): the labels `pipeline debug` ranks, matched to graph ops.

A `.tflite` op is named by its output tensors ('digits_cnn_1/conv2d_1/Relu;digits_cnn_1/conv2d_1/BiasAdd;...'), an
ONNX node by its node name ('.../digits_cnn_1/conv2d_1/BiasAdd'); either's label is the path segment that names
the layer ('conv2d_1'), several layers fused into one tensor joined by '+' ('ReLU_1+Conv2d_0'). A user's name
selects every op whose full name or label (or one part of a '+'-joined label) equals it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError

LABEL_CHARS = 80  # a ranking shows labels cut to this length
LISTED = 30  # labels listed in an unknown-name error


def layer_parts(name: str) -> list[str]:
    """The layer label of each ';'-separated part of a tensor or node name, without repeats."""
    labels = []
    for part in (p for p in name.split(";") if p and not p.isdigit()):
        segments = part.split("/")
        labels.append((segments[-2] if len(segments) >= 3 else segments[-1]).rsplit(".", 1)[-1])
    return list(dict.fromkeys(labels))


def layer_label(name: str) -> str:
    """A readable layer label ('digits_cnn/conv2d_1/Relu;...' -> 'conv2d_1'), as `pipeline debug` ranks layers."""
    return "+".join(layer_parts(name))[:LABEL_CHARS] or name[:LABEL_CHARS]


def names_of(name: str) -> set[str]:
    """Every name that selects an op named `name`: the name itself, its label and each part of the label."""
    return {name, layer_label(name), *layer_parts(name)}


def select_ops(keep_float: Iterable[str], ops: Mapping[Any, Iterable[str]], what: str) -> list[Any]:
    """The keys of `ops` (op -> its names: output tensor or node names) that one of `keep_float` selects, in
    `ops` order.

    Raises ConfigError for a name that selects nothing, listing the labels there are (`what` names the graph).
    """
    keep = tuple(keep_float)
    selected = {key: set().union(*(names_of(n) for n in names)) & set(keep) for key, names in ops.items()}
    matched = set().union(*selected.values()) if selected else set()
    unknown = [name for name in keep if name not in matched]
    if unknown:
        labels = sorted({layer_label(n) for names in ops.values() for n in names})
        shown = ", ".join(labels[:LISTED]) + (f", ... and {len(labels) - LISTED} more" if len(labels) > LISTED else "")
        raise ConfigError(
            f"keep_float name(s) {', '.join(repr(n) for n in unknown)} match no layer of {what}. Layers: {shown}. "
            "Pass a label from that list (or a full tensor/node name); `pipeline debug ARTIFACT_DIR` ranks a "
            "quantized export's layers by the error they add.")
    return [key for key, hits in selected.items() if hits]


def tflite_ops(model_file: Path) -> dict[tuple[int, int], tuple[str, list[str]]]:
    """(subgraph, op index) -> (op name, its output tensor names) for every op of a `.tflite`."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(model_file.read_bytes(), 0)
    op_names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    ops = {}
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            code = codes[op.OpcodeIndex()]
            outputs = [graph.Tensors(i).Name().decode() for i in op.OutputsAsNumpy().tolist() if i >= 0]
            ops[(s, k)] = (op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM"),
                           [n for n in outputs if n])
    return ops


def kept_tflite_ops(model_file: Path, keep_float: Iterable[str]) -> list[dict[str, Any]]:
    """The ops of the float `model_file` that `keep_float` selects, as {'op', 'outputs', 'layer'}; ConfigError for
    a name that selects nothing."""
    ops = tflite_ops(model_file)
    chosen = select_ops(keep_float, {key: outputs for key, (_, outputs) in ops.items()}, "the float .tflite")
    return [{"op": ops[key][0], "outputs": ops[key][1], "layer": layer_label(";".join(ops[key][1]))}
            for key in chosen]


def kept_onnx_nodes(graph: Any, keep_float: Iterable[str]) -> list[str]:
    """The names of the ONNX `graph`'s nodes that `keep_float` selects; ConfigError for a name that selects
    nothing."""
    nodes = {node.name: [node.name] for node in graph.node if node.name}
    return select_ops(keep_float, nodes, "the ONNX graph")
