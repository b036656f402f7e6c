"""Per-module error of a PyTorch -> ExecuTorch int8 program against its float model, read from the runtime.

The export's quantized (q/dq) program is rebuilt from the source (same quantizer, config and calibration samples)
and lowered to portable kernels with an ETRecord (no XNNPACK: a delegate keeps its intermediate tensors to itself).
Each sample runs in the ExecuTorch runtime with ETDump and a debug buffer; executorch.devtools' Inspector hands
out every instruction's output with its debug handle. A debug handle covers one traced op plus the quantize /
dequantize pair after it, so its last output is what the next op reads. A module's output is the last op of its
subtree read outside it (node.meta['nn_module_stack']); the float reference is the same op of the float program,
run in PyTorch. Ranked modules are those that own ops themselves, named as `keep_float` takes them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import RuntimeUnavailableError
from pipeline.core.tensors import feed_length, slice_feed
from pipeline.layer_errors import DEBUG_SCHEMA_VERSION, ErrorSums
from quantize import QuantizationConfig

RUNTIME = ("executorch portable kernels (the export's PT2E program rebuilt without the XNNPACK delegate; ETDump + "
           "debug buffer read with executorch.devtools Inspector)")
MATCH_RULE = "module name (nn_module_stack)"
SHARE_METHOD = (
    "Each module's added noise is its output's relative noise power (||q - f||^2 / ||f||^2, averaged over its "
    "channels so that a few outlier channels cannot hide the noise in the others) minus the largest of the "
    "modules feeding it (walking back through ops no ranked module outputs); its share is its positive added noise "
    "over the sum of all positive added noise. This assumes noise adds up and passes through later layers at the "
    "same relative power, which softmax, ReLU and pooling bend: read shares as a ranking of culprits, not an exact "
    "budget."
)
DEBUG_BUFFER_MIN_BYTES = 1 << 20


@dataclass(frozen=True)
class ModuleOutput:
    """The node giving a module's output in a traced graph, with the module's class and the node's place."""

    module: str
    kind: str
    node: Any
    position: int


def _stack(node: Any) -> list[tuple[str, str]]:
    from quantize.pt2e import module_path

    return [(module_path(path), str(kind)) for path, kind in (node.meta.get("nn_module_stack") or {}).values()]


def module_outputs(graph: Any) -> dict[str, ModuleOutput]:
    """Each module owning a traced op itself -> the last node of its subtree read outside it; where two modules
    give the same node, the innermost keeps it. Root-level ops (quantize/dequantize pairs) belong to no module."""
    nodes = [n for n in graph.nodes if n.op == "call_function"]
    position = {n: i for i, n in enumerate(nodes)}
    subtree: dict[str, list[Any]] = {}
    kinds, depth, owners = {}, {}, set()
    for node in nodes:
        stack = [(name, kind) for name, kind in _stack(node) if name]
        for level, (name, kind) in enumerate(stack):
            subtree.setdefault(name, []).append(node)
            kinds[name], depth[name] = kind.rsplit(".", 1)[-1], level
        if stack:
            owners.add(stack[-1][0])
    by_node: dict[Any, ModuleOutput] = {}
    for name in owners:
        inside = set(subtree[name])
        read_outside = [n for n in subtree[name] if any(user not in inside for user in n.users)]
        if not read_outside:
            continue
        out = ModuleOutput(name, kinds[name], read_outside[-1], position[read_outside[-1]])
        if out.node not in by_node or depth[name] > depth[by_node[out.node].module]:
            by_node[out.node] = out
    return {out.module: out for out in sorted(by_node.values(), key=lambda o: o.position)}


def upstream_modules(outputs: Mapping[str, ModuleOutput]) -> dict[str, set[str]]:
    """Each module -> the ranked modules whose outputs it reads (walking back through unranked nodes)."""
    owner = {out.node: name for name, out in outputs.items()}
    feeding: dict[str, set[str]] = {}
    for name, out in outputs.items():
        found, seen, todo = set(), set(), list(out.node.all_input_nodes)
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            if node in owner and owner[node] != name:
                found.add(owner[node])
            else:
                todo.extend(node.all_input_nodes)
        feeding[name] = found
    return feeding


def quantized_output(node: Any) -> bool:
    """Whether `node`'s output is quantized in the program (it is, or it feeds, a quantize op)."""
    def quantizes(n: Any) -> bool:
        name = str(getattr(n, "target", ""))
        return "quantize_per" in name and "dequantize" not in name

    return quantizes(node) or any(quantizes(user) for user in node.users)


# modules whose output range is their own (weighted or normalizing): an activation kept float may be quantized
# again after them without harm, so the walk of `carried_to` stops there (a residual stream would otherwise carry
# it through every later block of a transformer)
RANGE_RESETTING_KINDS = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "Linear", "Embedding",
                         "LayerNorm", "BatchNorm1d", "BatchNorm2d", "GroupNorm", "RMSNorm")


def carried_to(feeding: Mapping[str, set[str]], kinds: Mapping[str, str]) -> dict[str, list[str]]:
    """Each module -> the modules its output must cross in float to reach the next weighted or normalizing module
    (that one included): kept float alone, a module's output is quantized again for an int8 reader."""
    readers: dict[str, list[str]] = {name: [] for name in feeding}
    for name, sources in feeding.items():
        for source in sources:
            readers.setdefault(source, []).append(name)
    carried = {}
    for start in feeding:
        found, todo = [], list(readers.get(start, ()))
        while todo:
            name = todo.pop(0)
            if name in found:
                continue
            found.append(name)
            if kinds.get(name) not in RANGE_RESETTING_KINDS:
                todo += readers.get(name, ())
        carried[start] = found
    return carried


def _float_values(graph_module: Any, nodes: list[Any], args: tuple[Any, ...]) -> tuple[dict[Any, np.ndarray], list[Any]]:
    """Run the float program on `args`, keeping the values of `nodes`; returns them and the program's outputs."""
    import torch

    wanted, kept = set(nodes), {}

    class Keeper(torch.fx.Interpreter):
        def run_node(self, node: Any) -> Any:
            value = super().run_node(node)
            if node in wanted and isinstance(value, torch.Tensor):
                kept[node] = value.detach().double().numpy()
            return value

    with torch.no_grad():
        result = Keeper(graph_module).run(*args)
    return kept, list(result) if isinstance(result, (tuple, list)) else [result]


class RuntimeProgram:
    """A portable-kernel `.pte` with its ETRecord: runs one sample at a time and returns its per-op outputs."""

    def __init__(self, module: Any, args: tuple[Any, ...], folder: Path, quantized_lookups: bool) -> None:
        try:
            import executorch.kernels.quantized  # noqa: F401  (registers out-variants of quantized ops)
            from executorch.devtools import parse_etrecord
            from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
        except ImportError as exc:
            raise RuntimeUnavailableError(f"ExecuTorch devtools are not installed ({exc}); run `make setup`.") from None
        from exporters.routes.torch_to_executorch import export_program

        edge = to_edge_transform_and_lower(export_program(module, args), partitioner=[], generate_etrecord=True)
        program = edge.to_executorch(ExecutorchBackendConfig(do_quant_fusion_and_const_prop=quantized_lookups))
        self.folder, self.buffer = folder, program.buffer
        program.get_etrecord().save(str(folder / "etrecord.bin"))  # the saved form keys handles as the Inspector reads
        self.etrecord = parse_etrecord(str(folder / "etrecord.bin"))
        self.graph = self.etrecord.edge_dialect_program.graph
        self.debug_buffer_size = DEBUG_BUFFER_MIN_BYTES + 2 * sum(
            v.numel() * v.element_size() for n in self.graph.nodes
            for v in (lambda val: val if isinstance(val, (tuple, list)) else [val])(n.meta.get("val"))
            if hasattr(v, "numel"))

    def run(self, args: tuple[Any, ...]) -> tuple[dict[int, np.ndarray], list[np.ndarray]]:
        """Debug handle -> the last output recorded under it, and the program's outputs, for one sample."""
        from executorch.devtools import Inspector
        from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer

        # one load per sample: the Inspector refuses an ETDump whose runs hold different intermediate values
        runtime = _load_for_executorch_from_buffer(self.buffer, enable_etdump=True,
                                                   debug_buffer_size=self.debug_buffer_size)
        outputs = [np.asarray(o.detach().double()) for o in runtime.forward(args)]
        etdump, debug_buffer = self.folder / "run.etdp", self.folder / "run.bin"
        runtime.write_etdump_result_to_file(str(etdump), str(debug_buffer))
        inspector = Inspector(etdump_path=str(etdump), etrecord=self.etrecord, debug_buffer_path=str(debug_buffer))
        values: dict[int, np.ndarray] = {}
        for block in inspector.event_blocks:
            for event in block.events:  # in execution order: a later event of a handle is its later output
                handles = event.debug_handles
                if event.name == "OPERATOR_CALL" or handles is None or not event.debug_data:
                    continue
                value = event.debug_data[0]
                if hasattr(value, "detach"):
                    for handle in (handles,) if isinstance(handles, int) else tuple(handles):
                        values[int(handle)] = value.detach().double().numpy()
        return values, outputs


def compare_executorch(bundle: ModelBundle, quantization: QuantizationConfig, feed: Mapping[str, np.ndarray],
                       samples: int) -> dict[str, Any]:
    """Rebuild the int8 / dynamic-int8 program of `bundle`, run it on portable kernels on the first `samples`
    samples of `feed` and rank its modules by the SQNR of their outputs against the float model's, worst first
    (the schema of pipeline.layer_errors.compare_tflite; `layer` is a module name `keep_float` takes).

    Raises UnsupportedRouteError for another mode, RuntimeUnavailableError without ExecuTorch's devtools.
    """
    from exporters.routes.calibration import per_sample, torch_args
    from exporters.routes.torch_to_executorch import export_program, quantized_program

    module, args, effect = quantized_program(bundle, quantization)
    reference = export_program(bundle.model, args).module()
    count = min(samples, feed_length(feed))
    with tempfile.TemporaryDirectory(prefix="executorch-debug-") as tmp:
        program = RuntimeProgram(module, args, Path(tmp), "embedding_tables" in effect)
        ours, theirs = module_outputs(program.graph), module_outputs(reference.graph)
        names = [name for name in ours if name in theirs]
        sums = {name: ErrorSums(channels_first=True) for name in names}
        output_sums: list[ErrorSums] = []
        shapes: dict[str, tuple[int, ...]] = {}
        for sample in per_sample(slice_feed(dict(feed), 0, count)):
            values, outputs = program.run(torch_args(sample))
            expected, float_outputs = _float_values(reference, [theirs[n].node for n in names], torch_args(sample))
            for name in names:
                got, want = values.get(ours[name].node.meta.get("debug_handle")), expected.get(theirs[name].node)
                if got is not None and want is not None and got.shape == want.shape:
                    sums[name].add(got, want)
                    shapes[name] = got.shape
            output_sums = output_sums or [ErrorSums() for _ in outputs]
            for total, got, want in zip(output_sums, outputs, float_outputs, strict=False):
                total.add(got, want.detach().double().numpy())
    names = [name for name in names if name in shapes]
    relative = {name: sums[name].channel_relative_power() for name in names}
    feeding = upstream_modules({name: ours[name] for name in names})
    carried = carried_to(feeding, {name: ours[name].kind for name in names})
    # a module whose output stays float (softmax, unquantized ops) carries its inputs' noise, reshaped, but adds
    # none of its own: keeping it float would change nothing
    added = {name: relative[name] - max((relative[f] for f in feeding[name]), default=0.0)
             if np.isfinite(relative[name]) and quantized_output(ours[name].node) else 0.0 for name in names}
    positive = sum(max(a, 0.0) for a in added.values())
    layers = [{"layer": name, "tensor": ours[name].node.name, "reference_tensor": theirs[name].node.name,
               "op": ours[name].kind, "position": ours[name].position, "shape": list(shapes[name]),
               "dtype": "float32", "match": MATCH_RULE, **sums[name].metrics(), "added_noise": added[name],
               "share": max(added[name], 0.0) / positive if positive > 0 else 0.0,
               "keep_with": carried[name]} for name in names]
    layers.sort(key=lambda layer: (layer["sqnr_db"], layer["position"]))
    output_names = [spec.name for spec in bundle.outputs] or [f"output_{i}" for i in range(len(output_sums))]
    return {"schema_version": DEBUG_SCHEMA_VERSION, "runtime": RUNTIME, "samples": count, "matched": len(layers),
            "tensors": {"quantized": len(ours), "reference": len(theirs)},
            "match_rules": {MATCH_RULE: len(layers)} if layers else {},
            "outputs": [{"tensor": name, **total.metrics()} for name, total in zip(output_names, output_sums, strict=False)],
            "share_method": SHARE_METHOD, "layers": layers}
