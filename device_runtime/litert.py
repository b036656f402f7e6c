"""LiteRT (TFLite) interpreter runtime: reference kernels or the XNNPACK delegate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from device_runtime.base import Availability, ProgramSession
from device_runtime.device_scripts.edge_bench import load_program
from pipeline.core.errors import ArtifactError, RuntimeUnavailableError, UnknownNameError
from pipeline.core.records import DelegationReport
from pipeline.core.registry import unknown_name_message

DELEGATES = ("xnnpack", "cpu", "gpu")
GPU_DEVICE_GLOBS = ("/dev/dri/renderD*", "/dev/nvidia[0-9]*", "/dev/kgsl-3d0", "/dev/mali*")


class LiteRTSession(ProgramSession):
    """A loaded `.tflite` program (interpreter or GPU accelerator) behind the runtime interface.

    The program classes live in the on-device script, so validation, `pipeline bench`, the app and a
    real board all run a model through the same code.
    """

    @property
    def interpreter(self) -> Any:
        return self.program.interpreter

    def op_names(self) -> list[str]:
        """Names of the ops in the execution plan (a delegated block shows as 'DELEGATE')."""
        return [op["op_name"] for op in self.program.ops]


def gpu_availability() -> Availability:
    """Whether a GPU the LiteRT accelerator could use exists here, and if not, why."""
    import glob

    if not any(glob.glob(pattern) for pattern in GPU_DEVICE_GLOBS):
        return Availability(
            False,
            "GPU delegate unavailable: no GPU device on this machine (no /dev/dri render node, NVIDIA, Adreno or Mali "
            "device). LiteRT's WebGPU accelerator (libLiteRtWebGpuAccelerator.so) reports 'No adapters found' and "
            "does not accept a software Vulkan device (llvmpipe).",
        )
    return Availability(True)


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
        started = time.perf_counter()
        try:
            program = load_program(Path(model_path), threads, delegate)
        except (ValueError, RuntimeError) as exc:
            if delegate == "gpu":
                raise RuntimeUnavailableError(f"GPU delegate unavailable: LiteRT could not run {model_path} on the GPU "
                                              f"({exc}).") from None
            raise ArtifactError(
                f"LiteRT could not load {model_path}: {exc}. The file is truncated, corrupt or not a "
                "TFLite flatbuffer; re-export it."
            ) from None
        return LiteRTSession(program, load_ms=(time.perf_counter() - started) * 1000)


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
