"""LiteRT (TFLite) interpreter runtime: reference kernels or the XNNPACK delegate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime.base import Availability
from pipeline.core.errors import ArtifactError, RuntimeUnavailableError, UnknownNameError
from pipeline.core.registry import unknown_name_message

DELEGATES = ("xnnpack", "cpu", "gpu")
GPU_DEVICE_GLOBS = ("/dev/dri/renderD*", "/dev/nvidia[0-9]*", "/dev/kgsl-3d0", "/dev/mali*")


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float -> the tensor's integer type with its scale/zero point (identity for float tensors)."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.issubdtype(detail["dtype"], np.floating):
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


@dataclass
class LiteRTSession:
    """One interpreter; runs batches by resizing the batch dim or sample by sample."""

    interpreter: Any
    delegate: str

    def __post_init__(self) -> None:
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])

    def input_details(self) -> dict[str, Any]:
        return self._input

    def output_details(self) -> dict[str, Any]:
        return self._output

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._input["index"], _quantize(x, self._input))
        self.interpreter.invoke()
        return _dequantize(self.interpreter.get_tensor(self._output["index"]), self._output)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a float batch; integer I/O tensors are (de)quantized here."""
        if len(x) == self._batch:
            return self._invoke(x)
        return np.concatenate([self._invoke(x[i : i + self._batch]) for i in range(0, len(x), self._batch)])

    def op_names(self) -> list[str]:
        """Names of the ops in the execution plan (a delegated block shows as 'DELEGATE')."""
        return [op["op_name"] for op in self.interpreter._get_ops_details()]

    def close(self) -> None:
        self.interpreter = None


@dataclass
class LiteRTGpuSession:
    """LiteRT's GPU accelerator through the CompiledModel API (GPU only: no silent CPU fallback)."""

    model: Any
    delegate: str = "gpu"

    def run(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a float batch, one sample per GPU run (the model is compiled for batch 1)."""
        inputs = self.model.create_input_buffers(0)
        outputs = self.model.create_output_buffers(0)
        shape = tuple(outputs[0].get_tensor_details()["shape"])
        results = []
        for sample in x:
            inputs[0].write(np.ascontiguousarray(sample[None], dtype=np.float32))
            self.model.run_by_index(0, inputs, outputs)
            results.append(np.asarray(outputs[0].read(int(np.prod(shape)), np.float32)).reshape(shape))
        return np.concatenate(results)

    def close(self) -> None:
        self.model.close()


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

    def delegation_report(self, model_path: Path) -> dict[str, Any]:
        """Which ops XNNPACK takes and which stay on the reference kernels."""
        return tflite_delegation_report(Path(model_path))

    def _load_gpu(self, model_path: Path) -> LiteRTGpuSession:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator

        try:
            model = CompiledModel.from_file(str(model_path), hardware_accel=HardwareAccelerator.GPU)
        except RuntimeError as exc:
            raise RuntimeUnavailableError(f"GPU delegate unavailable: LiteRT could not compile {model_path} for the GPU ({exc}).") from None
        if not model.is_fully_accelerated():
            raise RuntimeUnavailableError(f"GPU delegate would not run all of {model_path}: some ops are not supported on the GPU.")
        return LiteRTGpuSession(model)

    def load(self, model_path: Path, delegate: str = "xnnpack", threads: int | None = None) -> Any:
        """Open `model_path`; `cpu` uses the reference kernels, `xnnpack` the default delegate."""
        availability = self.is_available(delegate)
        if not availability.ok:
            if delegate not in DELEGATES:
                raise UnknownNameError(availability.reason)
            raise RuntimeUnavailableError(availability.reason)
        if delegate == "gpu":
            return self._load_gpu(model_path)
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = (
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if delegate == "cpu" else OpResolverType.AUTO
        )
        if not Path(model_path).is_file():
            raise ArtifactError(f"TFLite model {model_path} does not exist; export one with `pipeline export MODEL --target tflite`.")
        try:
            interpreter = Interpreter(
                model_path=str(model_path), num_threads=threads, experimental_op_resolver_type=resolver
            )
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(
                f"LiteRT could not load {model_path}: {exc}. The file is truncated, corrupt or not a "
                "TFLite flatbuffer; re-export it."
            ) from None
        return LiteRTSession(interpreter, delegate)


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


def tflite_delegation_report(model_path: Path) -> dict[str, Any]:
    """Which ops the XNNPACK delegate takes and which stay on the reference kernels."""
    session = LiteRTRuntime().load(model_path, "xnnpack")
    ops = [op for op in session.interpreter._get_ops_details()]
    session.close()
    covered = delegated_nodes(ops)
    nodes = [op for op in ops if op["op_name"] != "DELEGATE"]
    left = sorted({op["op_name"] for op in nodes if op["index"] not in covered})
    return {
        "delegate": "xnnpack",
        "ops_total": len(nodes),
        "ops_delegated": len(covered),
        "delegated_share": round(len(covered) / len(nodes), 4) if nodes else 0.0,
        "ops_not_delegated": left,
    }
