"""ONNX Runtime: runs `.onnx` models on the execution providers the installed wheel has (CPU, XNNPACK)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime.base import Availability, ProgramSession
from device_runtime.device_scripts.edge_bench import OnnxProgram
from pipeline.core.errors import ArtifactError, RuntimeUnavailableError, UnknownNameError
from pipeline.core.records import DelegationReport
from pipeline.core.registry import unknown_name_message

DELEGATES = tuple(OnnxProgram.PROVIDERS)  # cpu, xnnpack


class OnnxRuntimeSession(ProgramSession):
    """A loaded `.onnx` model (the on-device script's `OnnxProgram`) behind the runtime interface."""

    def benchmark(self, feed: Mapping[str, np.ndarray] | np.ndarray, labels: np.ndarray | None,
                  protocol: Any) -> dict[str, Any]:
        """The harness protocol's result, plus `backend_info`: the session's providers, intra-op threads and graph
        optimization level."""
        return {**super().benchmark(feed, labels, protocol), "backend_info": self.program.backend_info}


def _provider_of(name: str) -> str:
    return OnnxProgram.PROVIDERS[name]


class OnnxRuntimeRuntime:
    """Loads `.onnx` files into an `onnxruntime.InferenceSession`."""

    name = "onnxruntime"
    delegates = DELEGATES
    target = "onnx"
    default_delegate = "cpu"
    packages: tuple[str, ...] = ("onnxruntime", "onnx")

    def is_available(self, delegate: str) -> Availability:
        if delegate not in DELEGATES:
            return Availability(False, unknown_name_message("ONNX Runtime delegate", delegate, list(DELEGATES)))
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return Availability(False, f"onnxruntime is not installed ({exc}); run `make setup`.")
        available = ort.get_available_providers()
        if _provider_of(delegate) not in available:
            return Availability(False, f"this onnxruntime wheel has no {delegate.upper()} execution provider "
                                       f"(it has: {', '.join(available)})")
        return Availability(True)

    def delegation_report(self, model_path: Path) -> DelegationReport:
        """Which nodes of the optimized graph the CPU provider ran, read from ONNX Runtime's profile of one run."""
        return onnx_delegation_report(Path(model_path), self.default_delegate)

    def load(self, model_path: Path, delegate: str = "cpu", threads: int | None = None) -> OnnxRuntimeSession:
        """Open `model_path` on `delegate`'s execution provider; raises ArtifactError for a model it cannot load."""
        availability = self.is_available(delegate)
        if not availability.ok:
            raise (UnknownNameError if delegate not in DELEGATES else RuntimeUnavailableError)(availability.reason)
        if not Path(model_path).is_file():
            raise ArtifactError(f"ONNX model {model_path} does not exist; export one with `pipeline export MODEL --target onnx`.")
        started = time.perf_counter()
        try:
            program = OnnxProgram(Path(model_path), threads, delegate)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented types
            raise ArtifactError(f"ONNX Runtime could not load {model_path}: {str(exc)[:600]}. The file is truncated, "
                                "corrupt or uses ops this build lacks; re-export it.") from None
        return OnnxRuntimeSession(program, load_ms=(time.perf_counter() - started) * 1000)


def zeros_feed(session: Any) -> dict[str, np.ndarray]:
    """One sample per input of an InferenceSession: zeros of its type (open dimensions as 1)."""
    types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}
    return {arg.name: np.zeros([d if isinstance(d, int) else 1 for d in arg.shape], types.get(arg.type, np.float32))
            for arg in session.get_inputs()}


def onnx_delegation_report(model_path: Path, delegate: str) -> DelegationReport:
    """Run the model once with ONNX Runtime's profiler on `delegate`'s provider and count, per node of the
    optimized graph, the provider that ran it; the op types run elsewhere are the ones not delegated."""
    import tempfile

    import onnxruntime as ort

    provider = _provider_of(delegate)
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as scratch:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(scratch) / "profile")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(model_path), options, providers=[provider])
        session.run(None, zeros_feed(session))
        events = json.loads(Path(session.end_profiling()).read_text())
    nodes: dict[str, tuple[str, str]] = {}
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") == "Node" and "provider" in args:
            nodes[event["name"].removesuffix("_kernel_time")] = (args.get("op_name", "?"), args["provider"])
    ops = Counter(op for op, _ in nodes.values())
    elsewhere = sorted({op for op, where in nodes.values() if where != provider})
    return DelegationReport(delegate, ops_total=len(nodes), ops_delegated=sum(where == provider for _, where in nodes.values()),
                            ops_not_delegated=tuple(elsewhere), graph_ops=tuple(sorted(ops)))
