"""Per-layer error of a quantized `.tflite` against its float twin: every intermediate tensor kept, matched, compared.

Both models run in LiteRT's interpreter on its reference kernels (no XNNPACK: a delegate keeps its intermediate
tensors to itself) with `experimental_preserve_all_tensors`, one sample at a time. A tensor of the quantized
model is paired with one of the float model by exact name, then by name with the converter's numeric suffixes
dropped, then by position among the still unpaired tensors of the same shape (only where both models have as
many of that shape); a QUANTIZE/DEQUANTIZE output takes its input's partner when that one is still free.
Quantized tensors are dequantized with their scale and zero point (per channel where they have several).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime.device_scripts.edge_bench import (
    feed_rows,
    feed_samples,
    prepare_feed,
    tflite_signature,
    tflite_tensor,
)
from exporters.routes.layer_names import layer_label
from pipeline.core.errors import ArtifactError, RuntimeUnavailableError

DEBUG_FILE = "debug.json"
DEBUG_SCHEMA_VERSION = 2  # 2: channel-averaged noise behind the share, keep_with
DEBUG_SAMPLES = 64  # evaluation samples run through both models by default
SQNR_CAP_DB = 200.0  # as in validation: identical tensors would be +inf dB, which JSON cannot hold
REPRESENTATION_OPS = ("QUANTIZE", "DEQUANTIZE")
SHARE_METHOD = (
    "Each layer's added noise is its relative noise power (||q - f||^2 / ||f||^2, averaged over the channels of its "
    "last axis, so that a few outlier channels cannot hide the noise in the others) minus the largest of its inputs' "
    "(walking back through unmatched tensors); its share is its positive added noise over the sum of all positive "
    "added noise. This assumes noise adds up and passes through later layers at the same relative power, which "
    "softmax, ReLU and pooling bend: read shares as a ranking of culprits, not an exact budget."
)


@dataclass(frozen=True)
class GraphTensor:
    """An activation of a TFLite graph: a graph input or the output of an op fed (at some remove) by one."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    op: str
    position: int
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    axis: int = 0

    @property
    def quantized(self) -> bool:
        return bool(self.scales) and not self.dtype.startswith("float")


@dataclass
class Graph:
    """A loaded interpreter, its activation tensors in execution order and which op produced each."""

    interpreter: Any
    tensors: list[GraphTensor]
    producer_inputs: dict[int, list[int]]
    inputs: list[Any]
    outputs: list[int]


def load_graph(model_file: Path) -> Graph:
    """Open `model_file` on the reference kernels with every tensor preserved; list its activation tensors."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as exc:
        raise RuntimeUnavailableError(f"ai-edge-litert is not installed ({exc}); run `make setup`.") from None
    try:
        interpreter = Interpreter(model_path=str(model_file), experimental_preserve_all_tensors=True,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(f"LiteRT could not load {model_file}: {exc}; re-export it.") from None
    signature = tflite_signature(interpreter)
    names = {index: name for name, index in signature.get("inputs", {}).items()}
    inputs = [tflite_tensor(d, names.get(d["index"])) for d in interpreter.get_input_details()]
    live = {t.index for t in inputs}
    tensors = [_tensor(interpreter, t.index, "INPUT", -1) for t in inputs]
    producer_inputs: dict[int, list[int]] = {}
    for op in interpreter._get_ops_details():
        op_inputs = [int(i) for i in op["inputs"] if int(i) >= 0]
        if op["op_name"] == "DELEGATE" or not live.intersection(op_inputs):
            continue  # weights being dequantized, shapes being computed: not activations
        for out in (int(i) for i in op["outputs"]):
            live.add(out)
            producer_inputs[out] = op_inputs
            tensors.append(_tensor(interpreter, out, op["op_name"], int(op["index"])))
    outputs = list(signature.get("outputs", {}).values()) or [d["index"] for d in interpreter.get_output_details()]
    return Graph(interpreter, tensors, producer_inputs, inputs, [int(i) for i in outputs])


def _tensor(interpreter: Any, index: int, op: str, position: int) -> GraphTensor:
    detail = interpreter._get_tensor_details(index, 0)
    params = detail.get("quantization_parameters") or {}
    return GraphTensor(index, str(detail["name"]), tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name,
                       op, position, tuple(float(s) for s in params.get("scales", ())),
                       tuple(int(z) for z in params.get("zero_points", ())), int(params.get("quantized_dimension", 0)))


def comparable(tensor: GraphTensor) -> bool:
    """Float or quantized values (integer indices, masks and shapes are not compared)."""
    return tensor.dtype.startswith("float") or tensor.quantized


def dequantize(values: np.ndarray, tensor: GraphTensor) -> np.ndarray:
    """`values` of `tensor` as float64 real numbers (per-channel scales broadcast along its quantized axis)."""
    if not tensor.quantized:
        return values.astype(np.float64)
    scales, zeros = np.asarray(tensor.scales), np.asarray(tensor.zero_points)
    if scales.size > 1:
        shape = [1] * values.ndim
        shape[tensor.axis] = scales.size
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    return (values.astype(np.float64) - zeros) * scales


def stripped_name(name: str) -> str:
    """A tensor name without the converter's numeric parts (';1', ';2' or a ':0' suffix), for a looser match."""
    parts = [p.rsplit(":", 1)[0] for p in name.split(";") if p and not p.isdigit()]
    return ";".join(dict.fromkeys(parts))


short_name = layer_label  # the label `--keep-float` selects layers by: one definition, the exporters'


def match_tensors(quantized: Graph, reference: Graph) -> list[tuple[GraphTensor, GraphTensor, str]]:
    """One-to-one pairs (quantized tensor, float tensor, rule) in the quantized model's execution order."""
    ours = [t for t in quantized.tensors if comparable(t) and (t.op != "INPUT" or t.quantized)]
    theirs = [t for t in reference.tensors if comparable(t)]
    pairs: dict[int, tuple[GraphTensor, str]] = {}
    taken: set[int] = set()

    def pair(q: GraphTensor, f: GraphTensor, rule: str) -> None:
        pairs[q.index] = (f, rule)
        taken.add(f.index)

    float_inputs = {spec.name: t for spec, t in zip(reference.inputs, reference.tensors, strict=False)}
    for spec, q in zip(quantized.inputs, quantized.tensors, strict=False):  # a graph's inputs come first
        f = float_inputs.get(spec.name)
        if q.quantized and f is not None and f.shape == q.shape:
            pair(q, f, "input name")
    for rule, key in (("name", lambda t: t.name), ("name without suffixes", lambda t: stripped_name(t.name))):
        free_q = [t for t in ours if t.index not in pairs and (rule == "name" or t.op not in REPRESENTATION_OPS)]
        free_f = [t for t in theirs if t.index not in taken]
        for q in free_q:
            candidates = [f for f in free_f if key(f) == key(q) and f.shape == q.shape and f.index not in taken]
            if len(candidates) == 1 and sum(key(o) == key(q) for o in free_q) == 1:
                pair(q, candidates[0], rule)
    _match_representation_ops(quantized, ours, theirs, pairs, taken, pair)
    free_q = [t for t in ours if t.index not in pairs and t.op not in REPRESENTATION_OPS]
    free_f = [t for t in theirs if t.index not in taken and t.op != "INPUT"]
    for shape in dict.fromkeys(t.shape for t in free_q):
        same_q, same_f = [t for t in free_q if t.shape == shape], [t for t in free_f if t.shape == shape]
        if len(same_q) == len(same_f):
            for q, f in zip(same_q, same_f, strict=True):
                pair(q, f, "position among same-shaped tensors")
    _match_representation_ops(quantized, ours, theirs, pairs, taken, pair)
    return [(q, *pairs[q.index]) for q in ours if q.index in pairs]


def _match_representation_ops(quantized: Graph, ours: list[GraphTensor], theirs: list[GraphTensor],
                              pairs: dict[int, tuple[GraphTensor, str]], taken: set[int], pair: Any) -> None:
    """A QUANTIZE/DEQUANTIZE output holds its input's values in another form: give it the input's partner, or,
    for the quantized model's input quantization, the float model's input of that shape, when free."""
    float_inputs = [t for t in theirs if t.op == "INPUT"]
    for q in ours:
        if q.index in pairs or q.op not in REPRESENTATION_OPS:
            continue
        source = (quantized.producer_inputs.get(q.index) or [None])[0]
        partner = pairs.get(source, (None, ""))[0] if source is not None else None
        if partner is None and source in {t.index for t in quantized.inputs}:
            partner = next((f for f in float_inputs if f.shape == q.shape), None)
        if partner is not None and partner.index not in taken and partner.shape == q.shape:
            pair(q, partner, f"{q.op.lower()} of a matched tensor")


def _db(relative: float) -> float:
    return SQNR_CAP_DB if relative == 0 else float(np.clip(-10 * np.log10(relative), -SQNR_CAP_DB, SQNR_CAP_DB))


class ErrorSums:
    """Running sums over samples for one tensor pair: noise and signal energy, overall and per channel (the last
    axis), and the largest absolute error."""

    def __init__(self, channels_first: bool = False) -> None:
        self.noise = self.signal = self.max_abs = 0.0
        self.channel_noise: np.ndarray | None = None
        self.channel_signal: np.ndarray | None = None
        self.channels_first = channels_first  # NCHW (PyTorch) images: channels on axis 1, else the last axis

    def add(self, ours: np.ndarray, reference: np.ndarray) -> None:
        diff = ours - reference
        self.noise += float(np.sum(diff * diff))
        self.signal += float(np.sum(reference * reference))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(diff), initial=0.0)))
        if reference.ndim >= 2:
            channel = 1 if self.channels_first and reference.ndim == 4 else reference.ndim - 1
            axes = tuple(axis for axis in range(reference.ndim) if axis != channel)
            noise, signal = np.sum(diff * diff, axis=axes), np.sum(reference * reference, axis=axes)
            self.channel_noise = noise if self.channel_noise is None else self.channel_noise + noise
            self.channel_signal = signal if self.channel_signal is None else self.channel_signal + signal

    def relative_power(self) -> float:
        return self.noise / self.signal if self.signal > 0 else (0.0 if self.noise == 0 else float("inf"))

    def channel_relative_power(self) -> float:
        """The mean over channels of each channel's relative noise power: a few large channels setting a tensor's
        int8 range drown the others in noise, which the whole tensor's ratio (dominated by the large ones) hides."""
        if self.channel_noise is None or self.channel_signal is None:
            return self.relative_power()
        live = self.channel_signal > 0
        if not live.any():
            return self.relative_power()
        # a channel whose noise outweighs its signal is lost whatever the ratio: capped at 1 so that a nearly dead
        # channel (a ReLU output that is almost always 0) cannot outvote the rest
        return float(np.mean(np.minimum(self.channel_noise[live] / self.channel_signal[live], 1.0)))

    def metrics(self) -> dict[str, float]:
        relative = self.relative_power()
        return {"sqnr_db": _db(relative), "channel_sqnr_db": _db(self.channel_relative_power()),
                "relative_l2": float(np.sqrt(relative)), "max_abs_error": self.max_abs}


def _run(graph: Graph, sample: Mapping[str, np.ndarray] | np.ndarray) -> None:
    for tensor, array in zip(graph.inputs, prepare_feed(graph.inputs, sample), strict=True):
        graph.interpreter.set_tensor(tensor.index, array)
    graph.interpreter.invoke()


def compare_tflite(quantized_file: Path, reference_file: Path, feed: Mapping[str, np.ndarray], samples: int) -> dict[str, Any]:
    """Run both models on the first `samples` samples of `feed`; every matched layer's SQNR, relative L2 error,
    largest absolute error and estimated share of the final error, ranked worst SQNR first."""
    quantized, reference = load_graph(quantized_file), load_graph(reference_file)
    pairs = match_tensors(quantized, reference)
    sums = {q.index: ErrorSums() for q, _, _ in pairs}
    count = min(samples, feed_samples(feed))
    for i in range(count):
        _run(quantized, feed_rows(feed, i, i + 1, quantized.inputs[0].shape[0]))
        _run(reference, feed_rows(feed, i, i + 1, reference.inputs[0].shape[0]))
        for q, f, _ in pairs:
            ours = dequantize(quantized.interpreter.get_tensor(q.index), q)
            sums[q.index].add(ours[:1], reference.interpreter.get_tensor(f.index).astype(np.float64)[:1])
    added = _added_noise(quantized, {index: s.channel_relative_power() for index, s in sums.items()})
    positive = sum(max(a, 0.0) for a in added.values())
    carried = _carried_to(quantized, {q.index: short_name(q.name) for q, _, _ in pairs})
    layers = [{"layer": short_name(q.name), "tensor": q.name, "reference_tensor": f.name, "op": q.op,
               "position": q.position, "shape": list(q.shape), "dtype": q.dtype, "match": rule,
               **sums[q.index].metrics(), "added_noise": added[q.index],
               "share": max(added[q.index], 0.0) / positive if positive > 0 else 0.0,
               "keep_with": carried.get(q.index, [])}
              for q, f, rule in pairs]
    layers.sort(key=lambda layer: (layer["sqnr_db"], layer["position"]))
    outputs = [{"tensor": q.name, **sums[q.index].metrics()} for q, _, _ in pairs if q.index in quantized.outputs]
    return {"schema_version": DEBUG_SCHEMA_VERSION, "runtime": "litert (reference kernels, all tensors preserved)",
            "samples": count, "matched": len(pairs),
            "tensors": {"quantized": sum(comparable(t) for t in quantized.tensors),
                        "reference": sum(comparable(t) for t in reference.tensors)},
            "match_rules": {rule: sum(r == rule for _, _, r in pairs) for rule in dict.fromkeys(r for _, _, r in pairs)},
            "outputs": outputs, "share_method": SHARE_METHOD, "layers": layers}


# ops that compute with weights: where an activation kept in float may be quantized again without harm
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "EMBEDDING_LOOKUP")


def _carried_to(graph: Graph, labels: dict[int, str]) -> dict[int, list[str]]:
    """Per matched tensor, the layers that must stay float with its producer for the tensor to reach the next
    weighted op unquantized: every matched op downstream of it up to and including the first weighted op on each
    path (an op kept float still quantizes its output for an int8 consumer, and that consumer quantizes its input)."""
    consumers: dict[int, list[int]] = {}
    for out, inputs in graph.producer_inputs.items():
        for index in inputs:
            consumers.setdefault(index, []).append(out)
    ops = {t.index: t.op for t in graph.tensors}
    carried: dict[int, list[str]] = {}
    for start in labels:
        found: list[str] = []
        todo, seen = list(consumers.get(start, ())), {start}
        while todo:
            index = todo.pop(0)
            if index in seen:
                continue
            seen.add(index)
            if index in labels and labels[index] != labels[start]:
                found.append(labels[index])
            if ops.get(index) not in WEIGHTED_OPS:
                todo += consumers.get(index, ())
        carried[start] = list(dict.fromkeys(found))
    return carried


def _added_noise(graph: Graph, relative: dict[int, float]) -> dict[int, float]:
    """Each matched tensor's relative noise power minus the largest among its nearest matched upstream tensors."""
    memo: dict[int, float] = {}

    def upstream(index: int) -> float:
        if index not in memo:
            memo[index] = 0.0  # guards against a cycle in a malformed graph
            memo[index] = max((relative[i] if i in relative else upstream(i)
                               for i in graph.producer_inputs.get(index, ())), default=0.0)
        return memo[index]

    return {index: value - upstream(index) if np.isfinite(value) else 0.0 for index, value in relative.items()}
