#!/usr/bin/env python3
"""Benchmark a .tflite, .pte or .onnx artifact on this device with the pipeline's measurement protocol.

Copy this one file (plus the artifact directory) to a Raspberry Pi or any Linux board that has
`ai-edge-litert` (or `tflite-runtime`), ExecuTorch's Python runtime or `onnxruntime`, then run:

    python3 edge_bench.py ARTIFACT_DIR --threads 4 --device-name rpi4 --out result.json

and load the result on the workstation with `pipeline import-results result.json`. Inputs are the
artifact's own evaluation samples (`eval.npz`, written by `pipeline export`: one array per input name, labels `y`),
never zeros. A model may have several inputs (float, integer or boolean) and outputs. Only the standard library
and numpy are required besides the runtime; the pipeline runs every .tflite, .pte and .onnx through this file's
programs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

PROTOCOL_VERSION = 3


@dataclass(frozen=True)
class Protocol:
    """MLPerf-style timing: warm-up excluded, then at least `min_runs` timed samples and `min_duration_s`.

    A sample is one inference, or with `min_sample_ms` > 0 as many back-to-back inferences as fill
    that time, reported per inference (a duty-cycle throttle only slows what spans its periods).
    A run is steady when the medians of its `steady_blocks` consecutive blocks of samples lie within
    `steady_tolerance` (a fraction of the overall median) of each other; an unsteady run goes on, up to
    `steady_extension` times the length it had at its minimum, and is flagged `unsteady` if it never settles.
    `steady_blocks` 0 turns the check off.
    """

    warmup_runs: int = 10
    min_runs: int = 100
    min_duration_s: float = 2.0
    max_runs: int = 100_000
    min_sample_ms: float = 0.0
    steady_blocks: int = 4
    steady_tolerance: float = 0.10
    steady_extension: float = 3.0

    def __post_init__(self) -> None:
        if (self.warmup_runs < 0 or self.min_runs < 1 or self.min_duration_s < 0 or self.max_runs < self.min_runs
                or self.min_sample_ms < 0 or self.steady_blocks < 0 or self.steady_blocks == 1
                or self.steady_tolerance <= 0 or self.steady_extension < 1):
            raise ValueError(f"invalid protocol {self}: need warmup >= 0, 1 <= min_runs <= max_runs, duration >= 0, "
                             "min_sample_ms >= 0, steady_blocks 0 (off) or >= 2, steady_tolerance > 0, "
                             "steady_extension >= 1")


def steadiness(samples_ms: list[float], blocks: int, tolerance: float) -> dict:
    """Whether a run's level holds: the medians of `blocks` consecutive blocks and their spread (max - min) as a
    fraction of the overall median. `unsteady` is None where it cannot be judged (check off, < 2 samples a block)."""
    if blocks < 2 or len(samples_ms) < 2 * blocks:
        return {"unsteady": None, "block_medians_ms": None, "block_spread": None}
    bounds = [i * len(samples_ms) // blocks for i in range(blocks + 1)]
    medians = [statistics.median(samples_ms[bounds[i]:bounds[i + 1]]) for i in range(blocks)]
    overall = statistics.median(samples_ms)
    spread = (max(medians) - min(medians)) / overall if overall > 0 else 0.0
    return {"unsteady": spread > tolerance, "block_medians_ms": medians, "block_spread": spread}


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted list (q in [0, 100])."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = (len(sorted_values) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    """p50/p90/p99/mean/std/cv/min/max of per-run latencies in milliseconds."""
    ordered = sorted(samples_ms)
    mean = statistics.fmean(ordered)
    std = statistics.pstdev(ordered)
    return {
        "latency_ms_p50": percentile(ordered, 50),
        "latency_ms_p90": percentile(ordered, 90),
        "latency_ms_p99": percentile(ordered, 99),
        "latency_ms_mean": mean,
        "latency_ms_std": std,
        "latency_cv": std / mean if mean else 0.0,
        "latency_ms_min": ordered[0],
        "latency_ms_max": ordered[-1],
    }


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def time_runs(run: Callable[[int], object], samples: int, protocol: Protocol,
              clock: Callable[[], float] = time.perf_counter) -> dict:
    """Call `run(i)` (i cycles over `samples` real inputs): warm-up, then timed samples until the protocol's
    minimum is met and the run is steady (or its extension is used up). `clock` returns seconds."""
    first_started = clock()
    run(0)
    first_ms = (clock() - first_started) * 1000
    for i in range(protocol.warmup_runs):
        run((i + 1) % samples)
    latencies: list[float] = []
    calls = 0
    started = clock()
    limit_s = next_check = None
    while len(latencies) < protocol.max_runs:
        t0 = clock()
        in_sample = 0
        while True:
            run((calls + in_sample) % samples)
            in_sample += 1
            elapsed_ms = (clock() - t0) * 1000
            if elapsed_ms >= protocol.min_sample_ms:
                break
        calls += in_sample
        latencies.append(elapsed_ms / in_sample)
        runs, elapsed_s = len(latencies), clock() - started
        if runs < protocol.min_runs or elapsed_s < protocol.min_duration_s or (next_check and runs < next_check):
            continue
        if not steadiness(latencies, protocol.steady_blocks, protocol.steady_tolerance)["unsteady"]:
            break
        limit_s = elapsed_s * protocol.steady_extension if limit_s is None else limit_s
        if elapsed_s >= limit_s:
            break
        next_check = runs + max(protocol.steady_blocks, runs // 4)  # re-judge as the run grows by a quarter
    steady = steadiness(latencies, protocol.steady_blocks, protocol.steady_tolerance)
    return {"first_inference_ms": first_ms, "runs": len(latencies), "inferences": calls,
            "duration_s": clock() - started, **latency_stats(latencies), **steady}


class FeedMismatch(ValueError):
    """A feed that does not fit the artifact's inputs (count, shape or values); the message names the input."""


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a loaded program: its name (None where the artifact keeps none), shape (None for
    an open dimension), element type, a quantized tensor's scale and zero point (scale 0: not quantized), and
    the runtime's handle for it (a TFLite tensor index, a position otherwise)."""

    name: str | None
    shape: tuple[int | None, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0
    index: int = 0

    @property
    def quantized(self) -> bool:
        return bool(self.scale) and not self.dtype.startswith(("float", "bool"))

    def to_json(self) -> dict:
        data = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        return {**data, "scale": self.scale, "zero_point": self.zero_point} if self.quantized else data


def tensor_name(name: str) -> str:
    """A TFLite tensor's name without the converter's `serving_default_` prefix and `:0` suffix."""
    name = name.removeprefix("serving_default_")
    base, colon, suffix = name.rpartition(":")
    return base if colon and suffix.isdigit() else name


def natural_key(name: str) -> list:
    """Sort key putting output_2 before output_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def feed_items(feed) -> list:
    """A feed as (name or None, array) pairs: a mapping keeps its names, a list or tuple is positional, and a
    bare array is the single input."""
    if hasattr(feed, "keys"):
        return [(name, feed[name]) for name in feed]
    if isinstance(feed, (list, tuple)):
        return [(None, array) for array in feed]
    return [(None, feed)]


def match_inputs(names: list, feed) -> list:
    """The feed's (name, array) pairs in the artifact's input order: matched by name where the names agree,
    the rest by position. Raises FeedMismatch when the counts differ."""
    items = feed_items(feed)
    if len(items) != len(names):
        given = ", ".join(str(name) for name, _ in items if name is not None) or f"{len(items)} unnamed"
        wanted = ", ".join(str(name) for name in names if name is not None) or f"{len(names)} unnamed"
        raise FeedMismatch(f"the feed has {len(items)} input(s) ({given}) but the model takes {len(names)} ({wanted})")
    given = [name for name, _ in items]
    slots = [given.index(name) if name is not None and name in given else None for name in names]
    rest = iter(i for i in range(len(items)) if i not in slots)
    return [items[slot if slot is not None else next(rest)] for slot in slots]


def to_tensor(x, tensor: TensorInfo, label: str):
    """`x` as a batch for `tensor`: float inputs cast (quantized for an integer tensor with a scale), integer and
    boolean inputs cast to the tensor's type with their values kept. FeedMismatch (naming `label`) for a shape
    that differs, floats for an unquantized integer tensor, or values the tensor's type cannot hold."""
    import numpy as np

    x = np.asarray(x)
    dtype = np.dtype(tensor.dtype)
    expected = tensor.shape[1:]
    if x.ndim != len(tensor.shape) or any(e is not None and e != a for e, a in zip(expected, x.shape[1:], strict=False)):
        shown = [-1 if d is None else d for d in expected]
        raise FeedMismatch(f"input '{label}' has samples of shape {list(x.shape[1:])} but the model takes {shown}")
    if x.dtype.kind not in "fiub":
        raise FeedMismatch(f"input '{label}' has dtype {x.dtype}; the model takes {dtype.name}")
    if dtype.kind == "f":
        return np.ascontiguousarray(x, dtype=dtype)
    if x.dtype.kind == "f":
        if not tensor.quantized:
            raise FeedMismatch(f"input '{label}' holds floats but the model takes {dtype.name} values (token ids, "
                               "masks, indices); pass integers")
        info = np.iinfo(dtype)
        return np.clip(np.round(x / tensor.scale + tensor.zero_point), info.min, info.max).astype(dtype)
    if dtype.kind == "b":
        if x.dtype.kind != "b" and x.size and not np.isin(x, (0, 1)).all():
            raise FeedMismatch(f"input '{label}' holds values other than 0 and 1 but the model takes bool")
        return np.ascontiguousarray(x, dtype=bool)
    info = np.iinfo(dtype)
    if x.size and x.dtype.kind != "b" and (x.min() < info.min or x.max() > info.max):
        raise FeedMismatch(f"input '{label}' holds values in [{x.min()}, {x.max()}], outside the range of "
                           f"{dtype.name} [{info.min}, {info.max}] that the model takes")
    return np.ascontiguousarray(x, dtype=dtype)


def from_tensor(y, tensor: TensorInfo):
    """An output as float32 (dequantized where the tensor is quantized); integer and boolean outputs keep their values."""
    import numpy as np

    if tensor.quantized:
        return ((y.astype(np.float32) - tensor.zero_point) * tensor.scale).astype(np.float32)
    return y.astype(np.float32) if y.dtype.kind == "f" else y.copy()


def prepare_feed(inputs: list, feed) -> list:
    """The feed's arrays in `inputs`' order, each cast (or quantized) for its tensor; FeedMismatch otherwise."""
    pairs = match_inputs([tensor.name for tensor in inputs], feed)
    return [to_tensor(array, tensor, name or tensor.name or f"#{i}")
            for i, ((name, array), tensor) in enumerate(zip(pairs, inputs, strict=True))]


def tflite_tensor(detail: dict, name: str | None) -> TensorInfo:
    scale, zero_point = detail["quantization"]
    return TensorInfo(name or tensor_name(detail["name"]), tuple(int(d) for d in detail["shape"]),
                      detail["dtype"].__name__ if isinstance(detail["dtype"], type) else str(detail["dtype"]),
                      float(scale), int(zero_point), int(detail["index"]))


def tflite_signature(interpreter) -> dict:
    """The `serving_default` (else the only) signature's inputs and outputs as name -> tensor index, or {}."""
    try:
        signatures = interpreter._get_full_signature_list()
    except (AttributeError, RuntimeError, ValueError):
        return {}
    if len(signatures) != 1 and "serving_default" not in signatures:
        return {}
    return signatures.get("serving_default") or next(iter(signatures.values()))


class TFLiteProgram:
    """A `.tflite` model in LiteRT's interpreter: `xnnpack` (the default delegate) or `cpu` (reference kernels).

    Inputs come in the model's order, named by its signature; outputs in the order of their signature names
    (output_0, output_1, ...; TensorFlow's converter stores them in another order). `delegate_used` is read
    from the interpreter's execution plan after loading, never from the request.
    """

    def __init__(self, path: Path, threads: int | None, delegate: str) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError:
            try:
                from tflite_runtime.interpreter import Interpreter, OpResolverType  # type: ignore[no-redef]
            except ImportError:
                raise MissingRuntime("a .tflite needs LiteRT: pip install ai-edge-litert") from None
        if delegate not in ("xnnpack", "cpu"):
            raise ValueError(f"the LiteRT interpreter runs delegate 'xnnpack' or 'cpu', not '{delegate}'")
        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if delegate == "cpu" else OpResolverType.AUTO
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
        self.interpreter.allocate_tensors()
        signature = tflite_signature(self.interpreter)
        input_names = {index: name for name, index in signature.get("inputs", {}).items()}
        self.inputs = [tflite_tensor(d, input_names.get(d["index"])) for d in self.interpreter.get_input_details()]
        outputs = signature.get("outputs", {})
        output_details = {d["index"]: d for d in self.interpreter.get_output_details()}
        if sorted(outputs.values()) == sorted(output_details):
            self.outputs = [tflite_tensor(output_details[outputs[name]], name) for name in sorted(outputs, key=natural_key)]
        else:
            self.outputs = [tflite_tensor(d, None) for d in output_details.values()]
        self.batch = int(self.inputs[0].shape[0]) if self.inputs else 1
        self.ops = self.interpreter._get_ops_details()
        self.delegate_used = "xnnpack" if any(op["op_name"] == "DELEGATE" for op in self.ops) else "cpu"

    def prepare(self, feed):
        """A feed at the model's batch size (dict name -> batch, list in input order, or one array) for `invoke`:
        (tensor index, array) pairs, so a timed call does nothing but set them and run."""
        return [(t.index, array) for t, array in zip(self.inputs, prepare_feed(self.inputs, feed), strict=True)]

    def invoke(self, prepared) -> None:
        for index, array in prepared:
            self.interpreter.set_tensor(index, array)
        self.interpreter.invoke()

    def result(self) -> list:
        """Every output of the last `invoke`, in the model's output order."""
        return [from_tensor(self.interpreter.get_tensor(t.index), t) for t in self.outputs]

    def close(self) -> None:
        self.interpreter = None


class TFLiteGpuProgram:
    """A `.tflite` model compiled by LiteRT for the GPU alone (`CompiledModel`); refuses any CPU fallback.

    A timed call ends when every output is back in host memory: the accelerator's run only queues the work.
    """

    delegate_used = "gpu"

    def __init__(self, path: Path, threads: int | None, delegate: str = "gpu") -> None:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.interpreter import Interpreter

        self.model = CompiledModel.from_file(str(path), hardware_accel=HardwareAccelerator.GPU)
        if not self.model.is_fully_accelerated():
            raise RuntimeError(f"the GPU accelerator would not run all of {path.name}: some ops are not supported on it")
        signature = self.model.get_signature_by_index(0)
        self.input_buffers = self.model.create_input_buffers(0)
        self.output_buffers = self.model.create_output_buffers(0)
        # the accelerator's buffers carry no quantization: read each tensor's scale and zero point from the model
        runner = Interpreter(model_path=str(path)).get_signature_runner(signature.get("key") or None)
        quantization = {**{n: d["quantization"] for n, d in runner.get_input_details().items()},
                        **{n: d["quantization"] for n, d in runner.get_output_details().items()}}

        def tensor(name: str, buffer, position: int) -> TensorInfo:
            details = buffer.get_tensor_details()
            scale, zero_point = quantization.get(name, (0.0, 0))
            return TensorInfo(name, tuple(int(d) for d in details["shape"]), str(details["dtype"]), float(scale),
                              int(zero_point), index=position)

        self.inputs = [tensor(n, b, i) for i, (n, b) in enumerate(zip(signature["inputs"], self.input_buffers, strict=True))]
        outputs = [tensor(n, b, i) for i, (n, b) in enumerate(zip(signature["outputs"], self.output_buffers, strict=True))]
        self.outputs = sorted(outputs, key=lambda t: natural_key(t.name))
        self.batch = int(self.inputs[0].shape[0]) if self.inputs else 1
        self.last: list = []

    def prepare(self, feed):
        """(input buffer, array) pairs for `invoke`."""
        return list(zip(self.input_buffers, prepare_feed(self.inputs, feed), strict=True))

    def invoke(self, prepared) -> None:
        import numpy as np

        for buffer, array in prepared:
            buffer.write(array)
        self.model.run_by_index(0, self.input_buffers, self.output_buffers)
        self.last = [np.asarray(self.output_buffers[t.index].read(math.prod(t.shape), t.dtype)).reshape(t.shape)
                     for t in self.outputs]

    def result(self) -> list:
        return [from_tensor(array, t) for array, t in zip(self.last, self.outputs, strict=True)]

    def close(self) -> None:
        self.model.close()


def _u32(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos:pos + 4], "little")


def _fb_field(data: bytes, table: int, index: int) -> int | None:
    """Absolute position of field `index` of the flatbuffer table at `table`, or None if absent."""
    vtable = table - int.from_bytes(data[table:table + 4], "little", signed=True)
    entry = 4 + 2 * index
    if entry >= int.from_bytes(data[vtable:vtable + 2], "little"):
        return None
    offset = int.from_bytes(data[vtable + entry:vtable + entry + 2], "little")
    return table + offset if offset else None


def _fb_tables(data: bytes, table: int, index: int) -> list[int]:
    pos = _fb_field(data, table, index)
    if pos is None:
        return []
    start = pos + _u32(data, pos)
    count = _u32(data, start)
    if start + 4 + 4 * count > len(data):
        raise ValueError("not a .pte program (a table vector runs past the end of the file)")
    return [start + 4 + 4 * i + _u32(data, start + 4 + 4 * i) for i in range(count)]


def _fb_string(data: bytes, table: int, index: int) -> str:
    pos = _fb_field(data, table, index)
    if pos is None:
        return ""
    start = pos + _u32(data, pos)
    return bytes(data[start + 4:start + 4 + _u32(data, start)]).decode()


def pte_plan(data: bytes) -> tuple[list[str], list[str]]:
    """The backends a `.pte` program delegates to and the operators it runs on its own kernels.

    Read from the program's flatbuffer (schema: Program.execution_plan[0].delegates[].id and .operators[].name).
    """
    if len(data) < 8 or data[4:6] != b"ET":
        raise ValueError("not a .pte program (no ExecuTorch file identifier)")
    plans = _fb_tables(data, _u32(data, 0), 1)  # Program.execution_plan
    if not plans:
        raise ValueError("not a .pte program (no execution plan)")
    plan = plans[0]
    backends = [_fb_string(data, delegate, 0) for delegate in _fb_tables(data, plan, 7)]
    operators = [_fb_string(data, operator, 0) for operator in _fb_tables(data, plan, 6)]
    return backends, operators


# ExecuTorch ScalarType codes -> numpy names (the tensor metadata reports the code)
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
                11: "bool", 15: "bfloat16"}


def pte_tensor(meta, position: int) -> TensorInfo:
    """A `.pte` method's input or output (a program keeps no tensor names: matched by position)."""
    code = int(meta.dtype())
    return TensorInfo(None, tuple(int(d) for d in meta.sizes()), SCALAR_TYPES.get(code, str(code)), index=position)


class PteProgram:
    """A `.pte` program in ExecuTorch's runtime; the delegate used is the one its plan holds (XNNPACK or none).

    `threads` sizes ExecuTorch's shared CPU threadpool, which XNNPACK runs on (`threads_applied` says if it took).
    """

    def __init__(self, path: Path, threads: int | None, delegate: str = "xnnpack") -> None:
        try:
            from executorch.runtime import Runtime
        except ImportError:
            raise MissingRuntime("a .pte needs ExecuTorch's runtime: pip install executorch (and torch)") from None

        self.backends, self.operators = pte_plan(path.read_bytes())
        if any(op.startswith("quantized_decomposed::") for op in self.operators):  # e.g. 8-bit embedding lookups
            try:
                import executorch.kernels.quantized  # noqa: F401  (registers the quantized kernels)
            except ImportError:
                raise MissingRuntime("this .pte uses quantized_decomposed kernels, which this ExecuTorch build "
                                     "lacks: install the executorch wheel (it ships executorch.kernels.quantized)") from None
        self.delegate_used = "xnnpack" if "XnnpackBackend" in self.backends else "portable"
        self.threads_applied = False
        if threads:
            try:
                from executorch.extension.pybindings import portable_lib

                portable_lib._unsafe_reset_threadpool(threads)
                self.threads_applied = portable_lib._threadpool_get_thread_count() == threads
            except (ImportError, AttributeError):
                pass
        self.method = Runtime.get().load_program(path).load_method("forward")
        metadata = self.method.metadata
        self.inputs = [pte_tensor(metadata.input_tensor_meta(i), i) for i in range(metadata.num_inputs())]
        self.outputs = [pte_tensor(metadata.output_tensor_meta(i), i) for i in range(metadata.num_outputs())]
        self.batch = int(self.inputs[0].shape[0]) if self.inputs else 1
        self.last = None

    def prepare(self, feed):
        """A feed at the model's batch size (a list in input order, or one array) as the method's tensors."""
        import torch

        return tuple(torch.from_numpy(array) for array in prepare_feed(self.inputs, feed))

    def invoke(self, prepared) -> None:
        self.last = self.method.execute(prepared)

    def result(self) -> list:
        """Every output of the last `invoke` (copied: the runtime may reuse its output buffers)."""
        return [from_tensor(y.numpy(), t) for y, t in zip(self.last, self.outputs, strict=True)]

    def close(self) -> None:
        self.method = None


class OnnxProgram:
    """An `.onnx` model in ONNX Runtime on one execution provider, `cpu` or `xnnpack` (the CPU provider takes what
    XNNPACK does not), all graph optimizations on, `threads` intra-op threads; `delegate_used` is the provider
    the session reports first."""

    PROVIDERS = {"cpu": "CPUExecutionProvider", "xnnpack": "XnnpackExecutionProvider"}
    TYPES = {"float": "float32", "float16": "float16", "double": "float64", "int64": "int64", "int32": "int32",
             "int8": "int8", "uint8": "uint8", "bool": "bool"}

    def __init__(self, path: Path, threads: int | None, delegate: str = "cpu") -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingRuntime("an .onnx needs ONNX Runtime: pip install onnxruntime") from None
        provider, available = self.PROVIDERS[delegate], ort.get_available_providers()
        if provider not in available:
            raise RuntimeError(f"this onnxruntime wheel has no {provider} (it has: {', '.join(available)})")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default (one per physical core)
        providers = [provider] if delegate == "cpu" else [(provider, {"intra_op_num_threads": threads or 1}),
                                                          "CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        names = {name: key for key, name in self.PROVIDERS.items()}
        self.delegate_used = names.get(self.session.get_providers()[0], self.session.get_providers()[0])
        self.backend_info = {"execution_providers": self.session.get_providers(), "intra_op_num_threads": threads or 0,
                             "graph_optimization_level": str(options.graph_optimization_level).rsplit(".", 1)[-1],
                             "onnxruntime": ort.__version__}

        def tensor(arg, position: int) -> TensorInfo:
            dtype = self.TYPES.get(arg.type.removeprefix("tensor(").rstrip(")"), arg.type)
            return TensorInfo(arg.name, tuple(d if isinstance(d, int) else None for d in arg.shape), dtype, index=position)

        self.inputs = [tensor(arg, i) for i, arg in enumerate(self.session.get_inputs())]
        self.outputs = [tensor(arg, i) for i, arg in enumerate(self.session.get_outputs())]
        self.batch = (self.inputs[0].shape[0] or 1) if self.inputs else 1  # an open batch: one sample a run
        self.last = None

    def prepare(self, feed):
        """A feed at the model's batch size as the session's {input name: array}."""
        return {t.name: array for t, array in zip(self.inputs, prepare_feed(self.inputs, feed), strict=True)}

    def invoke(self, prepared) -> None:
        self.last = self.session.run(None, prepared)

    def result(self) -> list:
        return [from_tensor(y, t) for y, t in zip(self.last, self.outputs, strict=True)]

    def close(self) -> None:
        self.session = None


PROGRAMS = {".tflite": {"xnnpack": TFLiteProgram, "cpu": TFLiteProgram, "gpu": TFLiteGpuProgram},
            ".pte": {"xnnpack": PteProgram, "portable": PteProgram},
            ".onnx": {"cpu": OnnxProgram, "xnnpack": OnnxProgram}}


def load_program(path: Path, threads: int | None, delegate: str):
    """Open `path` in its runtime on `delegate`; ValueError for an unknown file type or delegate."""
    delegates = PROGRAMS.get(path.suffix)
    if delegates is None:
        raise ValueError(f"{path.name}: unsupported artifact type; this script runs {', '.join(sorted(PROGRAMS))} files "
                         "(a TF.js model runs in a browser: `pipeline bench --runtime tfjs-browser`)")
    if delegate not in delegates:
        raise ValueError(f"{path.name}: delegate '{delegate}' is not one of {', '.join(delegates)}")
    return delegates[delegate](path, threads, delegate)


def feed_rows(feed, start: int, stop: int, size: int | None = None):
    """Samples `start:stop` of every input of a feed (mapping, list or array), padded to `size` samples by
    repeating the last one (for a model with a fixed batch)."""
    import numpy as np

    def rows(array):
        part = np.asarray(array)[start:stop]
        if size is not None and 0 < len(part) < size:
            part = np.concatenate([part, np.repeat(part[-1:], size - len(part), axis=0)])
        return part

    if hasattr(feed, "keys"):
        return {name: rows(feed[name]) for name in feed}
    return [rows(array) for array in feed] if isinstance(feed, (list, tuple)) else rows(feed)


def feed_samples(feed) -> int:
    """How many samples a feed holds; FeedMismatch when its inputs disagree."""
    counts = {name or f"#{i}": len(array) for i, (name, array) in enumerate(feed_items(feed))}
    if len(set(counts.values())) > 1:
        raise FeedMismatch(f"the inputs hold different numbers of samples ({counts}); give each the same")
    return next(iter(counts.values()), 0)


def run_batch(program, feed) -> list:
    """Every output for a feed of any number of samples, run at the program's own batch size."""
    import numpy as np

    count, batch = feed_samples(feed), program.batch
    outputs: list = [[] for _ in program.outputs]
    for start in range(0, count, batch):
        program.invoke(program.prepare(feed_rows(feed, start, start + batch, batch)))
        valid = min(batch, count - start)
        for parts, output in zip(outputs, program.result(), strict=True):
            parts.append(output[:valid])
    return [np.concatenate(parts) for parts in outputs]


def measure(program, feed, labels, protocol: Protocol, load_ms: float) -> dict:
    """Time and score a loaded program on real single-sample feeds; returns a flat result dict.

    Accuracy is measured when labels are given and the model has a single output (argmax against the labels).
    """
    import numpy as np

    count = feed_samples(feed)
    prepared = [program.prepare(feed_rows(feed, i, i + 1, program.batch)) for i in range(count)]
    timing = time_runs(lambda i: program.invoke(prepared[i]), count, protocol)
    accuracy = None
    if labels is not None and len(program.outputs) == 1:
        predictions = []
        for sample in prepared:
            program.invoke(sample)
            predictions.append(int(np.argmax(program.result()[0][0])))
        accuracy = float(np.mean(np.asarray(predictions) == labels))
    return {"load_ms": load_ms, **timing, "accuracy": accuracy, "samples": count,
            "peak_rss_bytes": peak_rss_bytes(), "protocol": asdict(protocol), "protocol_version": PROTOCOL_VERSION}


def measure_file(model_file: Path, feed, labels, threads: int | None, delegate: str, protocol: Protocol) -> dict:
    """Load `model_file` and measure it; the result names the delegate the runtime reports using."""
    started = time.perf_counter()
    program = load_program(model_file, threads, delegate)
    load_ms = (time.perf_counter() - started) * 1000
    try:
        return {**measure(program, feed, labels, protocol, load_ms), "delegate_used": program.delegate_used}
    finally:
        program.close()


def manifest_inputs(manifest: dict) -> list:
    """The source model's inputs as the manifest lists them (`input_signature`), or [] where it lists none readable."""
    import numpy as np

    try:
        return [TensorInfo(spec["name"], tuple(spec["shape"]), np.dtype(spec["dtype"]).name)
                for spec in manifest.get("input_signature") or []]
    except (KeyError, TypeError, ValueError):
        return []


def read_feed(data_path: Path, order: list) -> tuple:
    """(feed, labels) from an `eval.npz`: every array but `y` is an input (ordered like the names in `order`
    where it names them all), `y` the labels."""
    import numpy as np

    with np.load(data_path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    labels = arrays.pop("y", None)
    if not arrays:
        raise ValueError(f"{data_path} holds no input arrays; copy the artifact directory again or re-export it")
    if order and set(order) == set(arrays):
        arrays = {name: arrays[name] for name in order}
    return arrays, labels


def _host() -> dict:
    return {"machine": platform.machine(), "system": platform.system(), "release": platform.release(),
            "python": platform.python_version(), "cpus": os.cpu_count()}


class MissingRuntime(ImportError):
    """The runtime package an artifact needs is not installed (the message says what to pip install)."""


def first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:300]


def run(args: argparse.Namespace) -> dict:
    """Measure the artifact as `args` say; raises ValueError/RuntimeError/ImportError/OSError on a mistake."""
    manifest_path = args.artifact_dir / "manifest.json"
    data_path = args.artifact_dir / "eval.npz"
    if not manifest_path.is_file() or not data_path.is_file():
        raise ValueError(f"{args.artifact_dir} needs manifest.json and eval.npz; copy the whole artifact directory "
                         "that `pipeline export` wrote")
    try:
        manifest = json.loads(manifest_path.read_text())
        model_file = args.artifact_dir / manifest["model_file"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{manifest_path} is not a manifest written by `pipeline export`; copy the artifact "
                         "directory again") from None
    if manifest.get("target") == "tfjs":
        raise ValueError(f"{args.artifact_dir} is a TF.js model: it runs in a browser, so serve it to this device "
                         "with `pipeline serve-bench ARTIFACT_DIR --host 0.0.0.0` on the workstation")
    if not model_file.is_file():
        raise ValueError(f"{model_file} is missing; copy the whole artifact directory")
    source_inputs = manifest_inputs(manifest)
    order = [spec.get("name") for spec in manifest.get("input_signature") or [] if isinstance(spec, dict)]
    feed, labels = read_feed(data_path, order)
    protocol = Protocol(args.warmup, args.min_runs, args.min_seconds)
    try:
        if source_inputs:  # checked against the source's inputs before the model loads
            prepare_feed(source_inputs, feed)
        result = measure_file(model_file, feed, labels, args.threads, args.delegate, protocol)
    except MissingRuntime:
        raise
    except FeedMismatch as exc:
        raise ValueError(f"{data_path.name} does not fit {model_file.name}: {first_line(exc)}; copy the whole artifact "
                         "directory again (or re-export it)") from None
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{model_file.name} could not be loaded or run ({first_line(exc)}); the file is truncated, "
                         "corrupt or not for this runtime: copy it again, or re-export it") from None
    used = result.pop("delegate_used")
    return {"kind": "measured", "device": args.device_name, "host": _host(), "threads": args.threads,
            "delegate": args.delegate, "delegate_used": used,
            "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
            "artifact": {"target": manifest["target"], "source": manifest["source"], "stages": manifest["stages"],
                         "size_bytes": manifest["size_bytes"]},
            "result": result, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark a .tflite/.pte/.onnx artifact on this device.")
    parser.add_argument("artifact_dir", type=Path)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--delegate", default="xnnpack", help="tflite: xnnpack, cpu or gpu; pte: xnnpack or portable; onnx: cpu or xnnpack")
    parser.add_argument("--device-name", required=True, help="what this device is, e.g. rpi4 or pixel-7")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--min-runs", type=int, default=100)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        import numpy  # noqa: F401
    except ImportError:
        print("error: this script needs numpy: pip install numpy", file=sys.stderr)
        return 2
    try:
        record = run(args)
        args.out.write_text(json.dumps(record, indent=2))
    except (ValueError, ImportError, OSError) as exc:  # a user's mistake: one line, never a traceback
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return 2
    result = record["result"]
    print(f"{args.device_name}: p50 {result['latency_ms_p50']:.3f} ms over {result['runs']} runs -> {args.out}")
    if result.get("unsteady"):
        print(f"warning: unsteady: block medians {', '.join(f'{m:.3f}' for m in result['block_medians_ms'])} ms "
              f"differ by {result['block_spread']:.0%} (> {result['protocol']['steady_tolerance']:.0%}); close other programs "
              "and run again", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
