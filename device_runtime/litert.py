"""LiteRT (TFLite) runtime: the interpreter (reference kernels or XNNPACK) or the GPU accelerator (`CompiledModel`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime.base import Availability, ProgramSession
from device_runtime.device_scripts.edge_bench import load_program
from device_runtime.gpu import GpuStack, find_gpu, unsupported_ops, use_stack
from pipeline.core.errors import ArtifactError, RuntimeUnavailableError, UnknownNameError
from pipeline.core.records import DelegationReport
from pipeline.core.registry import unknown_name_message

DELEGATES = ("xnnpack", "cpu", "gpu")


@dataclass
class LiteRTSession(ProgramSession):
    """A loaded `.tflite` program (interpreter or GPU accelerator) behind the runtime interface.

    The program classes live in the on-device script, so validation, `pipeline bench`, the app and a
    real board all run a model through the same code. `gpu` is the Vulkan stack a GPU program runs on.
    """

    gpu: GpuStack | None = None
    model_path: Path | None = None

    @property
    def interpreter(self) -> Any:
        return self.program.interpreter

    def op_names(self) -> list[str]:
        """Names of the ops in the execution plan (a delegated block shows as 'DELEGATE'); on the GPU, where the
        accelerator holds the whole graph, the model's own ops."""
        if self.gpu is not None and self.model_path is not None:
            return tflite_op_names(self.model_path)
        return [op["op_name"] for op in self.program.ops]

    def benchmark(self, feed: Mapping[str, np.ndarray] | np.ndarray, labels: np.ndarray | None,
                  protocol: Any) -> dict[str, Any]:
        """The harness protocol's result; a GPU run adds `backend_info`: the adapter the accelerator selected,
        its label (e.g. 'software GPU (SwiftShader Vulkan)') and the ops it holds (all of them: a GPU program
        refuses a graph the accelerator would not take whole)."""
        result = super().benchmark(feed, labels, protocol)
        if self.gpu is None or self.gpu.adapter is None:
            return result
        ops = len(self.op_names())
        return {**result, "backend_info": {**self.gpu.adapter.to_json(), "vulkan_stack": self.gpu.source,
                                           "fully_accelerated": True, "ops_accelerated": ops, "ops_total": ops}}


def gpu_refusal(model_path: Path, gpu: GpuStack, exc: Exception) -> str:
    """Why the GPU accelerator would not run `model_path`: the ops it refuses where its compiler names them."""
    why = unsupported_ops(model_path, gpu)
    if why:
        return (f"GPU delegate unavailable for {model_path.name}: the GPU accelerator does not run all of its ops "
                f"({why}); a gpu row never falls back to the CPU, so measure it on xnnpack.")
    detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"GPU delegate unavailable: LiteRT could not run {model_path} on the GPU ({detail})."


def gpu_availability() -> Availability:
    """Whether LiteRT's GPU accelerator runs here (probed in a child process, once per process), on which
    adapter, and if not, why."""
    probe = find_gpu()
    if probe.stack is None or probe.stack.adapter is None:
        return Availability(False, probe.reason)
    adapter = probe.stack.adapter
    return Availability(True, device=f"{adapter.label}: {adapter.describe()}")


class LiteRTRuntime:
    """Loads `.tflite` files into `ai_edge_litert`'s interpreter."""

    name = "litert"
    delegates = DELEGATES
    target = "tflite"
    default_delegate = "xnnpack"
    packages: tuple[str, ...] = ("ai-edge-litert",)

    def is_available(self, delegate: str) -> Availability:
        if delegate not in DELEGATES:
            return Availability(False, unknown_name_message("LiteRT delegate", delegate, list(DELEGATES)))
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError as exc:
            return Availability(False, f"ai-edge-litert is not installed ({exc}); run `make setup`.")
        return gpu_availability() if delegate == "gpu" else Availability(True)

    def delegation_report(self, model_path: Path) -> DelegationReport:
        """Which ops XNNPACK takes and which stay on the reference kernels."""
        return tflite_delegation_report(Path(model_path))

    def load(self, model_path: Path, delegate: str = "xnnpack", threads: int | None = None) -> LiteRTSession:
        """Open `model_path`: `xnnpack` (default delegate), `cpu` (reference kernels) or `gpu` (GPU accelerator only)."""
        availability = self.is_available(delegate)
        if not availability.ok:
            if delegate not in DELEGATES:
                raise UnknownNameError(availability.reason)
            raise RuntimeUnavailableError(availability.reason)
        if not Path(model_path).is_file():
            raise ArtifactError(f"TFLite model {model_path} does not exist; export one with `pipeline export MODEL --target tflite`.")
        gpu = find_gpu().stack if delegate == "gpu" else None
        if gpu is not None:
            use_stack(gpu)
        started = time.perf_counter()
        try:
            program = load_program(Path(model_path), threads, delegate)
        except (ValueError, RuntimeError) as exc:
            if gpu is not None:
                raise RuntimeUnavailableError(gpu_refusal(Path(model_path), gpu, exc)) from None
            raise ArtifactError(
                f"LiteRT could not load {model_path}: {exc}. The file is truncated, corrupt or not a "
                "TFLite flatbuffer; re-export it."
            ) from None
        return LiteRTSession(program, load_ms=(time.perf_counter() - started) * 1000, gpu=gpu, model_path=Path(model_path))


def tflite_op_names(model_path: Path) -> list[str]:
    """The builtin (or custom) op names of a `.tflite` file's main graph, in graph order, read from its flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    builtin = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAs(Path(model_path).read_bytes(), 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]

    def name(code: Any) -> str:
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        return (code.CustomCode() or b"CUSTOM").decode() if number == schema.BuiltinOperator.CUSTOM else builtin[number]

    graph = model.Subgraphs(0)
    return [name(codes[graph.Operators(i).OpcodeIndex()]) for i in range(graph.OperatorsLength())]


def delegated_nodes(ops: list[dict[str, Any]]) -> set[int]:
    """Indices of the nodes each DELEGATE node replaced, found by walking back from its outputs.

    After a delegate is applied the interpreter still lists the original nodes; the ones a
    delegate replaced are exactly those between the delegate's input and output tensors.
    """
    producers = {int(t): op["index"] for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    inputs_of = {op["index"]: [int(t) for t in op["inputs"]] for op in ops}
    covered: set[int] = set()
    for delegate in (op for op in ops if op["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in delegate["inputs"]}
        stack = [int(t) for t in delegate["outputs"]]
        while stack:
            tensor = stack.pop()
            node = producers.get(tensor)
            if tensor in boundary or node is None or node in covered:
                continue
            covered.add(node)
            stack.extend(inputs_of[node])
    return covered


def tflite_delegation_report(model_path: Path) -> DelegationReport:
    """Which ops the XNNPACK delegate takes and which stay on the reference kernels."""
    session = LiteRTRuntime().load(model_path, "xnnpack")
    ops = list(session.program.ops)
    session.close()
    covered = delegated_nodes(ops)
    nodes = [op for op in ops if op["op_name"] != "DELEGATE"]
    left = sorted({op["op_name"] for op in nodes if op["index"] not in covered})
    return DelegationReport("xnnpack", ops_total=len(nodes), ops_delegated=len(covered), ops_not_delegated=tuple(left))
