"""Quantization coverage: which weights an artifact stores in the mode's type and which it leaves in float.

One reader per target reads the written artifact itself (never the converter's intent): `.tflite` from its
flatbuffer tensors and buffers, `.pte` from the program's constant tensors and each XNNPACK delegate's graph
(weights live inside the delegate payload, which only names them by content hash, so they are named by the
node that reads them), TF.js from model.json's weightsManifest, ONNX from the graph's initializers. A weight
is a stored constant that is float or carries quantization; integer constants without it (shapes, indices)
and quantization parameters (scales, zero points) are not weights.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.registry import Registry

FLOAT_SHARE_WARNING = 0.10  # a quantized export keeping more of its weight bytes in float is flagged
FLOAT_TYPES = frozenset({"float32", "float16", "bfloat16", "float64"})
MODE_TYPES = {"none": (), "fp16": ("float16",), "uint8": ("uint8",), "uint16": ("uint16",)}
EIGHT_BIT = ("int8", "uint8")  # every other mode (dynamic-int8, weight-int8, int8, qat-int8)
LISTED = 50  # float tensors listed by name in the manifest, largest first


@dataclass(frozen=True)
class StoredTensor:
    """One constant as the artifact stores it. `quantized`: stored with scales/zero points (or read as data by a
    (de)quantize op); `read_by`: the op(s) reading it (none of the four quantizers records why it left a tensor
    float, so the op that reads it is the evidence: a FullyConnected filter in float is a layer it did not take)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    size_bytes: int
    quantized: bool = False
    read_by: str = ""
    reader_names: tuple[str, ...] = ()  # the reading ops' names (.tflite: output tensor names; ONNX: node names)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "size_bytes": self.size_bytes,
                "read_by": self.read_by}


Reader = Callable[[Path], list[StoredTensor]]
READERS: Registry[Reader] = Registry("coverage reader")


def _nbytes(shape: Iterable[int], dtype: str) -> int:
    bits = {"int4": 4, "bfloat16": 16}.get(dtype) or np.dtype(dtype).itemsize * 8
    return int(np.prod(list(shape), dtype=np.int64)) * bits // 8


def _uses(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """tensor key -> names of the ops reading it, from (key, op) pairs."""
    found: dict[str, list[str]] = {}
    for key, op in pairs:
        found.setdefault(key, [])
        if op not in found[key]:
            found[key].append(op)
    return found


# --- TFLite / LiteRT ---

_TFLITE_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8",
                 10: "float64", 16: "uint16", 17: "int4"}


def read_tflite(path: Path) -> list[StoredTensor]:
    """Constant tensors (those whose buffer holds data) of every subgraph, each buffer counted once."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    tensors, seen = [], set()
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        ops = [graph.Operators(k) for k in range(graph.OperatorsLength())]
        readers = _uses((str(i), _tflite_op(codes[op.OpcodeIndex()], op_names))
                        for op in ops for i in op.InputsAsNumpy().tolist() if i >= 0)
        reader_names = _uses((str(i), ";".join(graph.Tensors(o).Name().decode() for o in op.OutputsAsNumpy().tolist()
                                               if o >= 0))
                             for op in ops for i in op.InputsAsNumpy().tolist() if i >= 0)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            buffer = model.Buffers(tensor.Buffer())
            if tensor.Buffer() in seen or not (buffer.DataLength() or buffer.Size() > 1):
                continue
            seen.add(tensor.Buffer())
            quant = tensor.Quantization()
            shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
            tensors.append(StoredTensor(tensor.Name().decode(), _TFLITE_TYPES.get(tensor.Type(), str(tensor.Type())),
                                        shape, int(buffer.DataLength() or buffer.Size()),
                                        quantized=bool(quant and quant.ScaleLength()),
                                        read_by=", ".join(readers.get(str(t), [])),
                                        reader_names=tuple(reader_names.get(str(t), []))))
    return tensors


def _tflite_op(code: Any, names: dict[int, str]) -> str:
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    return code.CustomCode().decode() if code.CustomCode() else names.get(builtin, str(builtin))


# --- TF.js ---

def read_tfjs(path: Path) -> list[StoredTensor]:
    """Every weight of model.json's weightsManifest: its stored dtype is the quantization dtype when it has one."""
    groups = json.loads(path.read_text()).get("weightsManifest", [])
    tensors = []
    for weight in (w for group in groups for w in group.get("weights", [])):
        quant = weight.get("quantization") or {}
        dtype = quant.get("dtype", weight["dtype"])
        shape = tuple(weight.get("shape", ()))
        # the converter only quantizes float32 weights; uint8/uint16 are affine (scale, min), float16 is a cast
        tensors.append(StoredTensor(weight["name"], dtype, shape, _nbytes(shape, dtype), quantized=bool(quant)))
    return tensors


# --- ONNX ---

# op -> input slots holding quantization parameters (scales, zero points) rather than data
_ONNX_PARAM_SLOTS = {
    "QuantizeLinear": {1, 2}, "DequantizeLinear": {1, 2}, "MatMulInteger": {2, 3}, "ConvInteger": {2, 3},
    "QLinearMatMul": {1, 2, 4, 5, 6, 7}, "QLinearConv": {1, 2, 4, 5, 6, 7},
    "DynamicQuantizeMatMul": {2, 3}, "MatMulIntegerToFloat": {2, 3, 4, 5},
}


def read_onnx(path: Path) -> list[StoredTensor]:
    """Initializers and Constant-node tensors of the main graph (sizes from their shapes: external data is not read)."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(path), load_external_data=False).graph
    uses: dict[str, list[tuple[str, int]]] = {}
    nodes: dict[str, list[str]] = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            uses.setdefault(name, []).append((node.op_type, slot))
            nodes.setdefault(name, []).append(node.name)
    constants = [*((t.name, t) for t in graph.initializer),
                 *((node.output[0], attr.t) for node in graph.node if node.op_type == "Constant"
                   for attr in node.attribute if attr.name == "value")]
    tensors = []
    for name, proto in constants:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(proto.data_type)).name
        read = uses.get(name, [])
        params = bool(read) and all(slot in _ONNX_PARAM_SLOTS.get(op, ()) for op, slot in read)
        data_of_quant_op = any(op in _ONNX_PARAM_SLOTS and slot not in _ONNX_PARAM_SLOTS[op] for op, slot in read)
        if params:
            continue
        tensors.append(StoredTensor(name, dtype, tuple(proto.dims), _nbytes(proto.dims, dtype),
                                    quantized=data_of_quant_op and dtype not in FLOAT_TYPES,
                                    read_by=", ".join(dict.fromkeys(op for op, _ in read)),
                                    reader_names=tuple(nodes.get(name, []))))
    return tensors


# --- ExecuTorch ---

_ET_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
             11: "bool", 15: "bfloat16", 27: "uint16"}
_XNN_TYPES = {"fp32": "float32", "pfp32": "float32", "fp16": "float16", "bf16": "bfloat16", "qint8": "int8",
              "qcint8": "int8", "qdint8": "int8", "qpint8": "int8", "quint8": "uint8", "qint32": "int32",
              "qcint32": "int32", "qcint4": "int4", "qbint4": "int4", "int32": "int32"}


def read_pte(path: Path) -> list[StoredTensor]:
    """The program's constant tensors outside delegates, plus every XNNPACK delegate's constant values."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(path.read_bytes()).program
    tensors = []
    for plan in program.execution_plan:
        readers: dict[int, list[tuple[str, int]]] = {}
        for instruction in (i for chain in plan.chains for i in chain.instructions):
            call = instruction.instr_args
            if type(call).__name__ == "KernelCall":
                for slot, value in enumerate(call.args):
                    readers.setdefault(value, []).append((plan.operators[call.op_index].name, slot))
        for index, value in enumerate(plan.values):
            tensor = value.val
            if type(tensor).__name__ != "Tensor" or not tensor.data_buffer_idx:
                continue
            read = readers.get(index, [])
            quant_ops = [(op, slot) for op, slot in read if op.startswith("quantized_decomposed::")]
            if read and len(quant_ops) == len(read) and all(slot > 0 for _, slot in quant_ops):
                continue  # scales and zero points of a (de)quantize op or an 8-bit embedding lookup
            dtype = _ET_TYPES.get(tensor.scalar_type, str(tensor.scalar_type))
            tensors.append(StoredTensor(f"{plan.name} constant #{index}", dtype, tuple(tensor.sizes),
                                        _nbytes(tensor.sizes, dtype),
                                        quantized=any(slot == 0 for _, slot in quant_ops) and dtype not in FLOAT_TYPES,
                                        read_by=", ".join(dict.fromkeys(op for op, _ in read))))
        for number, delegate in enumerate(plan.delegates):
            if "xnnpack" in delegate.id.lower():
                payload = bytes(program.backend_delegate_data[delegate.processed.index].data)
                tensors += _xnnpack_constants(payload, f"{plan.name} {delegate.id}#{number}")
    return tensors


def _xnnpack_constants(payload: bytes, where: str) -> list[StoredTensor]:
    """Constant values of one XNNPACK delegate payload (its XNNGraph flatbuffer read with ExecuTorch's flatc)."""
    graph = _xnnpack_graph(payload)
    readers = _uses((str(node["xnode_union"][key]), f"{node['xnode_union_type'].removeprefix('XNN')}.{key[:-3]}")
                    for node in graph.get("xnodes", []) for key in node["xnode_union"]
                    if key.endswith("_id") and key != "output_id" and isinstance(node["xnode_union"][key], int))
    tensors = []
    for value in graph.get("xvalues", []):
        union = value["xvalue_union"]
        tensor = union.get("tensor_value", union)
        if not tensor.get("constant_buffer_idx"):
            continue
        dtype = _XNN_TYPES.get(tensor["datatype"].removeprefix("xnn_datatype_"), tensor["datatype"])
        size = int(graph["constant_data"][tensor["constant_buffer_idx"]]["size"])
        read_by = ", ".join(readers.get(str(tensor["id_out"]), []))
        tensors.append(StoredTensor(f"{where} value {tensor['id_out']} ({read_by or 'unread'})", dtype,
                                    tuple(tensor.get("dims", ())), size,
                                    quantized=value["xvalue_union_type"] == "XNNQuantizedTensorValue", read_by=read_by))
    return tensors


def _xnnpack_graph(payload: bytes) -> dict[str, Any]:
    import tempfile

    from executorch.backends.xnnpack.serialization import xnnpack_graph_serialize
    from executorch.exir._serialize._flatbuffer import _flatc_decompile

    header = xnnpack_graph_serialize.XNNHeader.from_bytes(payload[:xnnpack_graph_serialize.XNNHeader.EXPECTED_LENGTH])
    schema = Path(xnnpack_graph_serialize.__file__).with_name("schema.fbs")
    with tempfile.TemporaryDirectory() as folder:
        binary = Path(folder) / "graph.bin"
        binary.write_bytes(payload[header.flatbuffer_offset:header.flatbuffer_offset + header.flatbuffer_size])
        _flatc_decompile(folder, str(schema), str(binary))
        text = (Path(folder) / "graph.json").read_text()
    # flatc writes non-finite floats (clamp bounds) bare, which JSON lacks
    return json.loads(re.sub(r"(?<=[\s:\[,])(-?)inf\b", r"\1Infinity", text).replace(": nan", ": NaN"))


READERS.register("tflite", read_tflite)
READERS.register("tfjs", read_tfjs)
READERS.register("onnx", read_onnx)
READERS.register("executorch", read_pte)


# --- the manifest record ---

def _kept_layer(tensor: StoredTensor, keep_float: tuple[str, ...]) -> str:
    """The `keep_float` name selecting an op that reads `tensor` ('' when none does)."""
    from exporters.routes.layer_names import names_of

    return next((name for reader in tensor.reader_names for name in keep_float if name in names_of(reader)), "")


def summarize(tensors: list[StoredTensor], mode: str, keep_float: tuple[str, ...] = ()) -> dict[str, Any]:
    """The manifest's `quantization_coverage`: bytes per stored dtype, the share in the mode's type, the float
    tensors left (largest first) and a `warning` when a quantized export keeps > 10% of its weight bytes float.
    Float weights read by the layers `keep_float` names were left float on request: each says so (`reason`), and
    they count in `kept_float_bytes`, not towards the warning."""
    weights = [t for t in tensors if t.quantized or t.dtype in FLOAT_TYPES]
    target = MODE_TYPES.get(mode, EIGHT_BIT)
    total = sum(t.size_bytes for t in weights)
    in_target = sum(t.size_bytes for t in weights if t.dtype in target)
    left = sorted((t for t in weights if t.dtype in FLOAT_TYPES and t.dtype not in target), key=lambda t: -t.size_bytes)
    kept = {t.name: _kept_layer(t, keep_float) for t in left} if target and keep_float else {}
    kept_bytes = sum(t.size_bytes for t in left if kept.get(t.name))
    left_bytes = sum(t.size_bytes for t in left)
    by_dtype: dict[str, int] = {}
    for t in weights:
        by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + t.size_bytes
    record: dict[str, Any] = {
        "mode": mode, "stored_as": "/".join(target) if target else "float (not quantized)",
        "weight_tensors": len(weights), "weight_bytes": total, "bytes_by_dtype": dict(sorted(by_dtype.items())),
        "quantized_bytes": in_target, "quantized_share": round(in_target / total, 4) if total else None,
        "float_bytes": left_bytes, "float_share": round(left_bytes / total, 4) if total else None,
        "float_tensor_count": len(left),
    }
    if target:
        record["float_tensors"] = [{**t.to_json(), **({"reason": f"keep_float: layer '{kept[t.name]}' left float on "
                                                                 "request"} if kept.get(t.name) else {})}
                                   for t in left[:LISTED]]
        if keep_float:
            record["kept_float_bytes"] = kept_bytes
        unasked = [t for t in left if not kept.get(t.name)]
        unasked_bytes = left_bytes - kept_bytes
        if total and unasked_bytes / total > FLOAT_SHARE_WARNING:
            largest = ", ".join(f"{t.name} {list(t.shape)} {t.size_bytes:,} B" for t in unasked[:3])
            asked = f" besides the {kept_bytes:,} B keep_float asked for" if kept_bytes else ""
            record["warning"] = (
                f"{mode} export keeps {unasked_bytes / total:.0%} of its weight bytes ({unasked_bytes:,} of {total:,} B) "
                f"in float{asked}, in {len(unasked)} tensor(s); largest: {largest}. The file is that much bigger than "
                "a fully quantized one, and those ops may run in float.")
    return record


def quantization_coverage(target: str, model_file: Path, mode: str, keep_float: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read `model_file` with the target's reader and summarize it for `mode` (`keep_float`: the layers left float on
    request); {'unavailable': why} when the artifact cannot be read (the export itself stands)."""
    try:
        tensors = READERS.get(target)(model_file)
    except Exception as exc:  # a reader failing must not lose an exported, validated artifact
        return {"mode": mode, "unavailable": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return summarize(tensors, mode, keep_float)
