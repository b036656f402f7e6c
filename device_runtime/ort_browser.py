"""ONNX Runtime Web in real headless Chromium: `.onnx` models on the wasm or webgpu execution provider.

A session opens one Chromium page (see `device_runtime.chromium`) served from 127.0.0.1 with ONNX Runtime Web's
dist files (`ort_browser/node_modules`, pinned by its package-lock.json), the page's `runner.js`, TF.js's
timing protocol (`tfjs_browser/protocol.js`, shared so both browsers time alike) and the model directory. The
page runs batches passed in as one base64 array per input with its name, dtype and shape (int64 token ids stay
int64: a BigInt64Array in the page). Latencies are taken inside the page with `performance.now()` (cross-origin
isolated, so not coarsened, and wasm can use threads). Without a GPU, webgpu runs on SwiftShader (a software
GPU); `backend_info` names the adapter. ONNX Runtime Web runs a node its WebGPU provider lacks on its CPU
kernels without saying which, so webgpu's op report lists the graph's ops, not their placement.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from device_runtime.base import Availability
from device_runtime.chromium import (
    CHROMIUM_MISSING,
    PLAYWRIGHT_MISSING,
    ChromiumPage,
    LocalServer,
    find_chromium,
    playwright_installed,
)
from device_runtime.device_scripts.edge_bench import (
    FeedMismatch,
    TensorInfo,
    feed_rows,
    feed_samples,
    from_tensor,
    prepare_feed,
)
from device_runtime.inputs import InputSignature, signature_of
from device_runtime.memory import browser_pss_bytes
from device_runtime.tfjs_browser import PAGE_DIR as TFJS_PAGE_DIR
from device_runtime.tfjs_browser import gpu_kind
from device_runtime.tfjs_node import label_accuracy, timing_fields
from pipeline.core.errors import ArtifactError, DataError, RuntimeUnavailableError, UnknownNameError
from pipeline.core.records import DelegationReport
from pipeline.core.registry import unknown_name_message
from pipeline.core.tensors import single_output

DELEGATES = ("wasm", "webgpu")
PAGE_DIR = Path(__file__).with_name("ort_browser")
DIST_DIR = PAGE_DIR / "node_modules" / "onnxruntime-web" / "dist"
TIMEOUT_S = 300.0
# What each execution provider loads from the dist folder: a script and the wasm build it imports.
DIST = {"wasm": ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"),
        "webgpu": ("ort.webgpu.min.js", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")}
EXTRA_FLAGS = {"webgpu": ("--enable-unsafe-webgpu",)}
# Element types the page can hold (float16 has no typed array there; the project's fp16 exports keep float32 I/O)
PAGE_DTYPES = ("float32", "int64", "int32", "uint8", "int8", "bool")
CPU_THROTTLE = "devtools Emulation.setCPUThrottlingRate"
THROTTLE_REACH = {
    "wasm": {"slows": "every kernel: single-threaded wasm runs on the page's main thread",
             "does_not_slow": "nothing the benchmark times"},
    "wasm-threads": {"slows": "the main thread, which takes a share of every parallel op",
                     "does_not_slow": "the wasm worker threads themselves: work they take over runs at host speed"},
    "webgpu": {"slows": "the main thread's part: op dispatch, CPU fallback kernels and readback",
               "does_not_slow": "shader execution in the GPU process: the GPU's speed is not emulated"},
}
ONNX_TYPES = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 2: "uint8", 3: "int8", 9: "bool", 11: "float64"}


def page_files(delegate: str) -> dict[str, Path]:
    """The page's files by URL: the page, runner.js, the shared protocol.js and the delegate's dist files."""
    return {"/": PAGE_DIR / "index.html", "/index.html": PAGE_DIR / "index.html", "/runner.js": PAGE_DIR / "runner.js",
            "/protocol.js": TFJS_PAGE_DIR / "protocol.js", **{f"/ort/{name}": DIST_DIR / name for name in DIST[delegate]}}


def onnx_io(model_file: Path) -> tuple[list[TensorInfo], list[TensorInfo], list[str]]:
    """The model's inputs (initializers excluded), outputs and sorted op types, read with the onnx package."""
    import onnx

    try:
        graph = onnx.load(str(model_file), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and friends for a damaged file
        raise ArtifactError(f"{model_file} is not a readable ONNX model ({str(exc)[:200]}); re-export it.") from None
    weights = {init.name for init in graph.initializer}

    def info(value: Any, position: int) -> TensorInfo:
        tensor = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        return TensorInfo(value.name, shape, ONNX_TYPES.get(tensor.elem_type, str(tensor.elem_type)), index=position)

    inputs = [info(v, i) for i, v in enumerate(v for v in graph.input if v.name not in weights)]
    return inputs, [info(v, i) for i, v in enumerate(graph.output)], sorted({node.op_type for node in graph.node})


def throttle_page(browser: ChromiumPage, backend: str, rate: float, threads: int | None) -> dict[str, Any]:
    """Slow the page's CPU `rate` times; what the row records about it (RuntimeUnavailableError if refused)."""
    browser.throttle_cpu(rate)
    reach = THROTTLE_REACH["wasm-threads" if backend == "wasm" and threads and threads > 1 else backend]
    return {"applied": True, "mechanism": CPU_THROTTLE, "rate": rate, **reach}


@dataclass
class OrtBrowserSession:
    """One `.onnx` model in one Chromium page on one execution provider; `close()` ends the browser."""

    model_file: Path
    backend: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    ops: list[str]
    browser: ChromiumPage
    threads: int | None = None
    timeout_s: float = TIMEOUT_S
    load_ms: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    last_report: dict[str, Any] = field(default_factory=dict)
    cpu_throttle: dict[str, Any] | None = None

    @property
    def delegate(self) -> str:
        return self.backend

    @property
    def delegate_used(self) -> str:
        """The execution provider the page's session was created with (it refuses one it cannot start)."""
        return self.backend

    @property
    def batch(self) -> int:
        return (self.inputs[0].shape[0] or 1) if self.inputs else 1  # an open batch: one sample a run

    def input_signatures(self) -> tuple[InputSignature, ...]:
        return tuple(signature_of(tensor) for tensor in self.inputs)

    def _call(self, function: str, argument: dict[str, Any]) -> dict[str, Any]:
        reply = self.browser.call(f"args => window.ortRunner.{function}(args)", argument)
        if "error" not in reply:
            return reply
        where = f"ONNX Runtime Web in Chromium ({self.backend}) failed on {self.model_file}"
        message, stage = reply["error"], reply["stage"]
        if stage == "backend":
            others = ", ".join(d for d in DELEGATES if d != self.backend)
            raise RuntimeUnavailableError(f"{where}: {message}. Use another execution provider ({others}).")
        if stage == "timeout":
            raise RuntimeUnavailableError(f"{where}: {message} ({self.timeout_s:g} s); pass fewer samples or a larger "
                                          "OrtBrowserRuntime(timeout_s=...).")
        if stage == "input":
            raise DataError(f"{where}: {message}; pass one array per model input, in the model's layout.")
        raise ArtifactError(f"{where} at stage '{stage}': {message}. Re-export the model if its file is damaged.")

    def _page_inputs(self, feed: Any) -> tuple[list[dict[str, Any]], int]:
        """The feed cast for the model's inputs, padded to whole batches, as the page's entries; and its count."""
        unsupported = [f"{t.name} ({t.dtype})" for t in self.inputs if t.dtype not in PAGE_DTYPES]
        if unsupported:
            raise DataError(f"{self.model_file} has inputs the page cannot hold: {', '.join(unsupported)}; it takes "
                            f"{', '.join(PAGE_DTYPES)}. Re-export with float32 inputs (fp16 keeps them float32).")
        try:
            count = feed_samples(feed)
            padded = feed_rows(feed, 0, count, math.ceil(count / self.batch) * self.batch)
            arrays = prepare_feed(self.inputs, padded)
        except FeedMismatch as exc:
            described = "; ".join(f"{t.name}: {list(t.shape)} {t.dtype}" for t in self.inputs)
            raise DataError(f"{exc}; the model's inputs are {described}.") from None
        entries = [{"name": t.name, "dtype": t.dtype, "shape": list(x.shape),
                    "data": base64.b64encode(np.ascontiguousarray(x, x.dtype.newbyteorder("<")).tobytes()).decode("ascii")}
                   for t, x in zip(self.inputs, arrays, strict=True)]
        return entries, count

    def _infer(self, feed: Any, bench: dict[str, Any] | None) -> list[np.ndarray]:
        entries, count = self._page_inputs(feed)
        report = self._call("infer", {"inputs": entries, "batch": self.batch, "bench": bench,
                                      "timeout_ms": self.timeout_s * 1000})
        outputs = []
        for entry, tensor in zip(report.pop("outputs"), self.outputs, strict=True):
            values = np.frombuffer(base64.b64decode(entry["data"]), np.dtype(entry["dtype"]).newbyteorder("<"))
            outputs.append(from_tensor(values.reshape(entry["shape"]), tensor)[:count])
        self.last_report = report
        return outputs

    def run_outputs(self, feed: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Every output for a feed (run at the model's batch size in the page), in the model's output order."""
        return self._infer(feed, None)

    def run(self, x: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """The output of a single-output model; DataError naming the outputs of a model with several."""
        return single_output(self.run_outputs(x), [t.name for t in self.outputs])

    def benchmark(self, feed: Mapping[str, np.ndarray] | np.ndarray, labels: np.ndarray | None,
                  protocol: Any) -> dict[str, Any]:
        """Time single-batch runs in the page with the harness protocol (protocol.js); returns measure()-style
        fields, with `cpu_throttle` when the page's CPU is throttled."""
        outputs = self._infer(feed, asdict(protocol))
        backend_info = self.info["backend_info"]
        info = {**backend_info, "cross_origin_isolated": self.info["cross_origin_isolated"],
                "timer_resolution_ms": self.info["timer_resolution_ms"], "threads_requested": self.threads,
                "device_kind": gpu_kind(backend_info) if self.backend == "webgpu" else None}
        throttle = {"cpu_throttle": self.cpu_throttle} if self.cpu_throttle else {}
        return {"load_ms": self.load_ms, "first_inference_ms": self.last_report["first_inference_ms"],
                **timing_fields(self.last_report, protocol), "accuracy": label_accuracy(outputs, labels),
                "samples": len(outputs[0]), "peak_rss_bytes": None, "browser_pss_bytes": browser_pss_bytes(),
                "js_heap_bytes": self.last_report.get("used_js_heap_bytes"),
                "ort_web_version": self.info["ort_web_version"], "browser_version": self.browser.version,
                "threads": backend_info.get("threads"), "backend_info": info, **throttle}

    def op_names(self) -> list[str]:
        return list(self.ops)

    def close(self) -> None:
        self.browser.close()
        self.last_report = {}


class OrtBrowserRuntime:
    """Runs `.onnx` models with ONNX Runtime Web in headless Chromium (Playwright driving the system browser)."""

    name = "ort-browser"
    cpu_throttle = CPU_THROTTLE  # the device's CPU speed is emulated in the page, not by stopping the process
    delegates = DELEGATES
    target = "onnx"
    default_delegate = "wasm"
    packages: tuple[str, ...] = ("playwright", "onnx")

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def is_available(self, delegate: str) -> Availability:
        """Static checks (browser, Playwright, dist files); a provider that cannot start (no WebGPU adapter) is
        reported by `load` as RuntimeUnavailableError."""
        if delegate not in DELEGATES:
            return Availability(False, unknown_name_message("ONNX Runtime Web execution provider", delegate,
                                                            list(DELEGATES)))
        if find_chromium() is None:
            return Availability(False, CHROMIUM_MISSING)
        if not playwright_installed():
            return Availability(False, PLAYWRIGHT_MISSING)
        missing = [path.name for path in page_files(delegate).values() if not path.is_file()]
        if missing:
            return Availability(False, f"ONNX Runtime Web files not installed ({', '.join(missing)} missing): run "
                                       "`make setup` (npm ci in device_runtime/ort_browser).")
        return Availability(True)

    def delegation_report(self, model_path: Path) -> DelegationReport:
        """The graph's op types; on wasm every one runs in ONNX Runtime Web's CPU kernels."""
        ops = tuple(onnx_io(Path(model_path))[2])
        return DelegationReport(self.default_delegate, ops_total=len(ops), ops_delegated=len(ops), graph_ops=ops)

    def load(self, model_path: Path, delegate: str = "wasm", threads: int | None = None,
             cpu_throttling_rate: float | None = None) -> OrtBrowserSession:
        """Open Chromium, start ONNX Runtime Web on `delegate` with `threads` wasm threads (None: its default), create
        the session on `model_path` and run one zero sample per input (webgpu compiles its shaders there, so it is
        the session's first inference). `cpu_throttling_rate` > 1 slows the page's CPU that many times (DevTools
        emulation, from before the provider starts); the session's `cpu_throttle` then says how."""
        availability = self.is_available(delegate)
        if not availability.ok:
            raise (UnknownNameError if delegate not in DELEGATES else RuntimeUnavailableError)(availability.reason)
        model_file = Path(model_path)
        if not model_file.is_file():
            raise ArtifactError(f"ONNX model {model_file} does not exist; export one with `pipeline export MODEL "
                                "--target onnx`.")
        inputs, outputs, ops = onnx_io(model_file)
        browser = ChromiumPage(LocalServer(page_files(delegate), model_file.parent), "/index.html",
                               EXTRA_FLAGS.get(delegate, ()), timeout_s=min(self.timeout_s, 60.0))
        session = OrtBrowserSession(model_file, delegate, inputs, outputs, ops, browser.open(), threads, self.timeout_s)
        try:
            if cpu_throttling_rate and cpu_throttling_rate > 1:
                session.cpu_throttle = throttle_page(browser, delegate, cpu_throttling_rate, threads)
            session.info = session._call("init", {"backend": delegate, "threads": threads})
            loaded = session._call("load", {"url": f"/model/{quote(model_file.name)}"})
            session.load_ms, session.info["backend_info"] = loaded["load_ms"], loaded["backend_info"]
            if all(d is not None for t in inputs for d in t.shape[1:]):
                session.run_outputs({t.name: np.zeros((session.batch, *t.shape[1:]), t.dtype) for t in inputs})
        except BaseException:
            session.close()
            raise
        return session
