#!/usr/bin/env python3
"""Benchmark a .tflite or .pte artifact on this device with the pipeline's measurement protocol.

Copy this one file (plus the artifact directory) to a Raspberry Pi or any Linux board that has
`ai-edge-litert` (or `tflite-runtime`) or ExecuTorch's Python runtime, then run:

    python3 edge_bench.py ARTIFACT_DIR --threads 4 --device-name rpi4 --out result.json

and load the result on the workstation with `pipeline import-results result.json`. Inputs are the
artifact's own evaluation samples (`eval.npz`, written by `pipeline export`), never zeros. Only the standard library
and numpy are required besides the runtime; the pipeline imports the protocol from this file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

PROTOCOL_VERSION = 2


@dataclass(frozen=True)
class Protocol:
    """MLPerf-style timing: warm-up excluded, then at least `min_runs` timed samples and `min_duration_s`.

    A sample is one inference, or with `min_sample_ms` > 0 as many back-to-back inferences as fill
    that time, reported per inference (a duty-cycle throttle only slows what spans its periods).
    """

    warmup_runs: int = 10
    min_runs: int = 100
    min_duration_s: float = 2.0
    max_runs: int = 100_000
    min_sample_ms: float = 0.0

    def __post_init__(self) -> None:
        if (self.warmup_runs < 0 or self.min_runs < 1 or self.min_duration_s < 0 or self.max_runs < self.min_runs
                or self.min_sample_ms < 0):
            raise ValueError(f"invalid protocol {self}: need warmup >= 0, 1 <= min_runs <= max_runs, duration >= 0, "
                             "min_sample_ms >= 0")


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


def time_runs(run: Callable[[int], object], samples: int, protocol: Protocol) -> dict[str, float]:
    """Call `run(i)` (i cycles over `samples` real inputs): warm-up, then timed runs."""
    first_started = time.perf_counter()
    run(0)
    first_ms = (time.perf_counter() - first_started) * 1000
    for i in range(protocol.warmup_runs):
        run((i + 1) % samples)
    latencies: list[float] = []
    calls = 0
    started = time.perf_counter()
    clock = time.perf_counter
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
        if len(latencies) >= protocol.min_runs and clock() - started >= protocol.min_duration_s:
            break
    return {"first_inference_ms": first_ms, "runs": len(latencies), "inferences": calls,
            "duration_s": clock() - started, **latency_stats(latencies)}


def quantize_input(x, detail):
    """Float -> a tensor's integer type with its scale/zero point (a cast for float tensors)."""
    import numpy as np

    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return np.ascontiguousarray(x, dtype=dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize_output(y, detail):
    """A tensor's integer values -> float32 with its scale/zero point (a cast for float tensors)."""
    import numpy as np

    if np.issubdtype(detail["dtype"], np.floating):
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


class TFLiteProgram:
    """A `.tflite` model in LiteRT's interpreter: `xnnpack` (the default delegate) or `cpu` (reference kernels).

    `delegate_used` is read from the interpreter's execution plan after loading, never from the request.
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
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = int(self.input["shape"][0])
        self.ops = self.interpreter._get_ops_details()
        self.delegate_used = "xnnpack" if any(op["op_name"] == "DELEGATE" for op in self.ops) else "cpu"

    def prepare(self, x):
        """A batch at the model's batch size, in the input tensor's type."""
        return quantize_input(x, self.input)

    def invoke(self, prepared) -> None:
        self.interpreter.set_tensor(self.input["index"], prepared)
        self.interpreter.invoke()

    def result(self):
        return dequantize_output(self.interpreter.get_tensor(self.output["index"]), self.output)

    def close(self) -> None:
        self.interpreter = None


class TFLiteGpuProgram:
    """A `.tflite` model compiled by LiteRT for the GPU alone (`CompiledModel`); refuses any CPU fallback."""

    delegate_used = "gpu"

    def __init__(self, path: Path, threads: int | None, delegate: str = "gpu") -> None:
        import numpy as np
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator

        self.model = CompiledModel.from_file(str(path), hardware_accel=HardwareAccelerator.GPU)
        if not self.model.is_fully_accelerated():
            raise RuntimeError(f"the GPU accelerator would not run all of {path.name}: some ops are not supported on it")
        self.inputs = self.model.create_input_buffers(0)
        self.outputs = self.model.create_output_buffers(0)
        self.shape = tuple(self.outputs[0].get_tensor_details()["shape"])
        self.size = int(np.prod(self.shape))
        self.batch = 1

    def prepare(self, x):
        import numpy as np

        return np.ascontiguousarray(x, dtype=np.float32)

    def invoke(self, prepared) -> None:
        self.inputs[0].write(prepared)
        self.model.run_by_index(0, self.inputs, self.outputs)

    def result(self):
        import numpy as np

        return np.asarray(self.outputs[0].read(self.size, np.float32)).reshape(self.shape)

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
        self.batch = int(self.method.metadata.input_tensor_meta(0).sizes()[0])
        self.last = None

    def prepare(self, x):
        import numpy as np
        import torch

        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def invoke(self, prepared) -> None:
        self.last = self.method.execute((prepared,))

    def result(self):
        return self.last[0].numpy().copy()  # the runtime may reuse its output buffer

    def close(self) -> None:
        self.method = None


PROGRAMS = {".tflite": {"xnnpack": TFLiteProgram, "cpu": TFLiteProgram, "gpu": TFLiteGpuProgram},
            ".pte": {"xnnpack": PteProgram, "portable": PteProgram}}


def load_program(path: Path, threads: int | None, delegate: str):
    """Open `path` in its runtime on `delegate`; ValueError for an unknown file type or delegate."""
    delegates = PROGRAMS.get(path.suffix)
    if delegates is None:
        raise ValueError(f"{path.name}: unsupported artifact type; this script runs {', '.join(sorted(PROGRAMS))} files "
                         "(a TF.js model runs in a browser: `pipeline bench --runtime tfjs-browser`)")
    if delegate not in delegates:
        raise ValueError(f"{path.name}: delegate '{delegate}' is not one of {', '.join(delegates)}")
    return delegates[delegate](path, threads, delegate)


def run_batch(program, x):
    """Outputs for a float batch of any size, run at the program's own batch size."""
    import numpy as np

    outputs = []
    for start in range(0, len(x), program.batch):
        program.invoke(program.prepare(x[start:start + program.batch]))
        outputs.append(program.result())
    return np.concatenate(outputs)


def measure(program, inputs, labels, protocol: Protocol, load_ms: float) -> dict:
    """Time and score a loaded program on real inputs; returns a flat result dict."""
    import numpy as np

    prepared = [program.prepare(sample[None]) for sample in inputs]
    timing = time_runs(lambda i: program.invoke(prepared[i]), len(inputs), protocol)
    accuracy = None
    if labels is not None:
        predictions = []
        for sample in prepared:
            program.invoke(sample)
            predictions.append(int(np.argmax(program.result())))
        accuracy = float(np.mean(np.asarray(predictions) == labels))
    return {"load_ms": load_ms, **timing, "accuracy": accuracy, "samples": len(inputs),
            "peak_rss_bytes": peak_rss_bytes(), "protocol": asdict(protocol), "protocol_version": PROTOCOL_VERSION}


def measure_file(model_file: Path, inputs, labels, threads: int | None, delegate: str, protocol: Protocol) -> dict:
    """Load `model_file` and measure it; the result names the delegate the runtime reports using."""
    started = time.perf_counter()
    program = load_program(model_file, threads, delegate)
    load_ms = (time.perf_counter() - started) * 1000
    try:
        return {**measure(program, inputs, labels, protocol, load_ms), "delegate_used": program.delegate_used}
    finally:
        program.close()


def _host() -> dict:
    return {"machine": platform.machine(), "system": platform.system(), "release": platform.release(),
            "python": platform.python_version(), "cpus": os.cpu_count()}


class MissingRuntime(ImportError):
    """The runtime package an artifact needs is not installed (the message says what to pip install)."""


def first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:300]


def run(args: argparse.Namespace) -> dict:
    """Measure the artifact as `args` say; raises ValueError/RuntimeError/ImportError/OSError on a mistake."""
    import numpy as np

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
    with np.load(data_path, allow_pickle=False) as data:
        inputs, labels = data["x"].astype(np.float32), (data["y"] if "y" in data.files else None)
    protocol = Protocol(args.warmup, args.min_runs, args.min_seconds)
    try:
        result = measure_file(model_file, inputs, labels, args.threads, args.delegate, protocol)
    except MissingRuntime:
        raise
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
    parser = argparse.ArgumentParser(description="Benchmark a .tflite/.pte artifact on this device.")
    parser.add_argument("artifact_dir", type=Path)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--delegate", default="xnnpack", help="tflite: xnnpack, cpu or gpu; pte: xnnpack or portable")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
