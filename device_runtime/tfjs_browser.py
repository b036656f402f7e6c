"""TF.js runtime in real headless Chromium: graph models on the cpu, wasm, webgl or webgpu backend.

A session opens one Chromium page (see `device_runtime.chromium`) served from 127.0.0.1 with the
tfjs dist files of `tfjs_node/node_modules` and the model directory; `tfjs_browser/runner.js` loads
the model once and runs batches passed in as one base64 array per input (float32, int32 or bool, with its
name and shape; TF.js has no int64, so integer inputs are cast to int32 and values that do not fit refused).
Every output comes back, in the order of the model's signature names. Latencies are taken inside the page
with `performance.now()` (cross-origin isolated, so not coarsened). Without a GPU, webgl and
webgpu run on SwiftShader (a software GPU); `backend_info` says which device ran it.
"""

from __future__ import annotations

import base64
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
from device_runtime.inputs import InputSignature
from device_runtime.memory import browser_pss_bytes
from device_runtime.tfjs_node import (
    MODEL_JSON,
    RUNNER_DIR,
    GraphSignature,
    decode_output,
    feed_entries,
    graph_feed,
    graph_op_report,
    graph_ops,
    graph_signature,
    label_accuracy,
    read_model_json,
    tfjs_input_signatures,
    timing_fields,
    warmup_feed,
)
from pipeline.core.errors import ArtifactError, DataError, RuntimeUnavailableError, UnknownNameError
from pipeline.core.records import DelegationReport
from pipeline.core.registry import unknown_name_message
from pipeline.core.tensors import single_output

DELEGATES = ("cpu", "wasm", "webgl", "webgpu")
PAGE_DIR = Path(__file__).with_name("tfjs_browser")
TIMEOUT_S = 300.0
# URL path -> file under tfjs_node/node_modules/@tensorflow (the page loads nothing else).
DIST = {
    "/tfjs/tf.min.js": "tfjs/dist/tf.min.js",
    "/tfjs/tf-backend-wasm.min.js": "tfjs-backend-wasm/dist/tf-backend-wasm.min.js",
    "/tfjs/tfjs-backend-wasm.wasm": "tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm",
    "/tfjs/tfjs-backend-wasm-simd.wasm": "tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm",
    "/tfjs/tfjs-backend-wasm-threaded-simd.wasm": "tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm",
    "/tfjs/tf-backend-webgpu.min.js": "tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js",
}
NEEDS = {"cpu": ("tf.min.js",), "webgl": ("tf.min.js",), "wasm": ("tf.min.js", "wasm"), "webgpu": ("tf.min.js", "webgpu")}
EXTRA_FLAGS = {"webgpu": ("--enable-unsafe-webgpu",)}
CPU_THROTTLE = "devtools Emulation.setCPUThrottlingRate"
# What the DevTools CPU throttle reaches on each backend. DevTools slows the renderer's main thread only (a thread
# that keeps suspending it); measured here with a MobileNetV2-class model at rate 4 (Chromium 156, 2-core host,
# software GPU): cpu 4.4x, wasm 1 thread 3.5-5.4x, wasm 2 threads 4.1x, webgl 2.1x; webgpu not measured.
# tests/device_runtime/test_harness.py::test_chromium_is_throttled_through_devtools checks wasm.
THROTTLE_REACH = {
    "cpu": {"slows": "every kernel: the cpu backend runs on the page's main thread (measured 4.4x at rate 4)",
            "does_not_slow": "nothing the benchmark times"},
    "wasm": {"slows": "every kernel: single-threaded wasm runs on the page's main thread (measured 3.5-5.4x at rate 4)",
             "does_not_slow": "nothing the benchmark times"},
    "wasm-threads": {"slows": "the main thread, which takes a share of every parallel op, so each op waits for it "
                              "(measured 4.1x at rate 4 with 2 threads)",
                     "does_not_slow": "the wasm worker threads themselves: work they take over runs at host speed"},
    "webgl": {"slows": "the main thread's part: op dispatch, texture uploads and readback (measured 2.1x at rate 4)",
              "does_not_slow": "shader execution in the GPU process: the GPU's speed is not emulated"},
    "webgpu": {"slows": "the main thread's part: op dispatch and readback (not measured here)",
               "does_not_slow": "shader execution in the GPU process: the GPU's speed is not emulated"},
}


def page_files() -> dict[str, Path]:
    """The runner page's files by URL: the page, runner.js, protocol.js and TF.js's dist files (shared with serve-bench)."""
    modules = RUNNER_DIR / "node_modules" / "@tensorflow"
    files = {url: modules / relative for url, relative in DIST.items()}
    page = {"/": PAGE_DIR / "index.html", "/index.html": PAGE_DIR / "index.html", "/runner.js": PAGE_DIR / "runner.js",
            "/protocol.js": PAGE_DIR / "protocol.js"}
    return {**page, **files}


def gpu_kind(backend_info: dict[str, Any]) -> str | None:
    """'software GPU (SwiftShader)', 'software GPU (llvmpipe)' or 'GPU' from the renderer/adapter strings."""
    keys = ("renderer", "architecture", "vendor", "description")
    text = " ".join(str(backend_info.get(key) or "") for key in keys).lower()
    if not text.strip():
        return None
    for name, label in (("swiftshader", "SwiftShader"), ("llvmpipe", "llvmpipe"), ("lavapipe", "lavapipe")):
        if name in text:
            return f"software GPU ({label})"
    return "GPU"


@dataclass
class TFJSBrowserSession:
    """One graph model loaded in one Chromium page on one backend; `close()` ends the browser."""

    model_dir: Path
    backend: str
    signature: GraphSignature
    ops: list[str]
    browser: ChromiumPage
    threads: int | None = None
    timeout_s: float = TIMEOUT_S
    delegate: str = ""
    load_ms: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    last_report: dict[str, Any] = field(default_factory=dict)
    cpu_throttle: dict[str, Any] | None = None

    @property
    def delegate_used(self) -> str:
        """The backend TF.js reports it ran on in the page."""
        return self.delegate

    def input_signatures(self) -> tuple[InputSignature, ...]:
        """The inputs of the model.json signature, in the dtypes TF.js runs (integers as int32)."""
        return tfjs_input_signatures(self.signature, self.model_dir)

    def _call(self, function: str, argument: dict[str, Any]) -> dict[str, Any]:
        reply = self.browser.call(f"args => window.edgeRunner.{function}(args)", argument)
        if "error" not in reply:
            return reply
        where = f"TF.js in Chromium ({self.backend} backend) failed on {self.model_dir / MODEL_JSON}"
        message, stage = reply["error"], reply["stage"]
        if stage == "backend":
            console = " | ".join(line for line in self.browser.console[-3:] if "error" in line or "warn" in line)
            raise RuntimeUnavailableError(f"{where}: {message}{' (' + console[:400] + ')' if console else ''}. "
                                          f"Use another backend ({', '.join(d for d in DELEGATES if d != self.backend)}).")
        if stage == "timeout":
            raise RuntimeUnavailableError(f"{where}: {message} ({self.timeout_s:g} s); pass fewer samples or a larger "
                                          "TFJSBrowserRuntime(timeout_s=...).")
        if stage == "input":
            raise DataError(f"{where}: {message}; pass one array per model input, in the model's layout.")
        raise ArtifactError(f"{where} at stage '{stage}': {message}. Re-export the model if its files are damaged.")

    def _infer(self, feed: Any, bench: dict[str, Any] | None) -> list[np.ndarray]:
        pairs = graph_feed(self.signature, feed, self.model_dir / MODEL_JSON)
        inputs = [{**entry, "data": base64.b64encode(np.ascontiguousarray(x).astype(x.dtype.newbyteorder("<")).tobytes())
                   .decode("ascii")} for entry, (_, x) in zip(feed_entries(pairs), pairs, strict=True)]
        report = self._call("infer", {"inputs": inputs, "outputs": self.signature.outputs, "bench": bench,
                                      "timeout_ms": self.timeout_s * 1000})
        outputs = [decode_output(base64.b64decode(entry["data"]), entry) for entry in report.pop("outputs")]
        self.last_report = report
        self.delegate = report["backend"]
        return outputs

    def run_outputs(self, feed: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Every output for a feed (batch-1 models run sample by sample in the page), in signature order."""
        return self._infer(feed, None)

    def run(self, x: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """The output of a single-output model; DataError naming the outputs of a model with several."""
        return single_output(self.run_outputs(x), self.signature.outputs or ())

    def benchmark(self, feed: Mapping[str, np.ndarray] | np.ndarray, labels: np.ndarray | None,
                  protocol: Any) -> dict[str, Any]:
        """Time single-batch runs in the page with the harness protocol (min_sample_ms and the steadiness check
        included); returns measure()-style fields, with `cpu_throttle` when the page's CPU is throttled."""
        outputs = self._infer(feed, asdict(protocol))
        kind = gpu_kind(self.info["backend_info"]) if self.backend in ("webgl", "webgpu") else None
        info = {**self.info["backend_info"], "cross_origin_isolated": self.info["cross_origin_isolated"],
                "timer_resolution_ms": self.info["timer_resolution_ms"], "device_kind": kind}
        # peak_rss_bytes stays None: Chromium is ~10 processes sharing pages; browser_pss_bytes is the PSS of its
        # renderer and GPU processes (device_runtime.memory).
        throttle = {"cpu_throttle": self.cpu_throttle} if self.cpu_throttle else {}
        return {"load_ms": self.load_ms, "first_inference_ms": self.last_report["first_inference_ms"],
                **timing_fields(self.last_report, protocol), "accuracy": label_accuracy(outputs, labels),
                "samples": len(outputs[0]), "peak_rss_bytes": None, "browser_pss_bytes": browser_pss_bytes(),
                "js_heap_bytes": self.last_report.get("used_js_heap_bytes"), "tfjs_version": self.info["tfjs_version"],
                "browser_version": self.browser.version, "threads": info.get("threads"), "backend_info": info,
                **throttle}

    def op_names(self) -> list[str]:
        """Unique op names of the graph (from model.json), sorted."""
        return list(self.ops)

    def close(self) -> None:
        self.browser.close()
        self.last_report = {}


def throttle_page(browser: ChromiumPage, backend: str, rate: float, threads: int | None) -> dict[str, Any]:
    """Slow the page's CPU `rate` times; what the row records about it (RuntimeUnavailableError if refused)."""
    browser.throttle_cpu(rate)
    reach = THROTTLE_REACH["wasm-threads" if backend == "wasm" and threads and threads > 1 else backend]
    return {"applied": True, "mechanism": CPU_THROTTLE, "rate": rate, **reach}


class TFJSBrowserRuntime:
    """Runs TF.js graph models in headless Chromium (Playwright driving the system browser, no download)."""

    name = "tfjs-browser"
    cpu_throttle = CPU_THROTTLE  # the device's CPU speed is emulated in the page, not by stopping the process
    delegates = DELEGATES
    target = "tfjs"
    default_delegate = "wasm"
    packages: tuple[str, ...] = ("playwright",)

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def is_available(self, delegate: str) -> Availability:
        """Static checks (browser, Playwright, dist files); a backend that cannot start (no WebGPU adapter)
        is reported by `load` as RuntimeUnavailableError."""
        if delegate not in DELEGATES:
            return Availability(False, unknown_name_message("TF.js backend", delegate, list(DELEGATES)))
        if find_chromium() is None:
            return Availability(False, CHROMIUM_MISSING)
        if not playwright_installed():
            return Availability(False, PLAYWRIGHT_MISSING)
        needed = {url: path for url, path in page_files().items()
                  if not url.startswith("/tfjs/") or any(need in url for need in NEEDS[delegate])}
        missing = [url.rsplit("/", 1)[1] for url, path in needed.items() if not path.is_file()]
        if missing:
            return Availability(
                False, f"TF.js browser files not installed ({', '.join(missing)} missing): run `make setup` "
                "(npm ci in device_runtime/tfjs_node)."
            )
        return Availability(True)

    def delegation_report(self, model_path: Path) -> DelegationReport:
        """The graph's ops (the same graph as in Node.js)."""
        return graph_op_report(Path(model_path))

    def load(self, model_path: Path, delegate: str = "wasm", threads: int | None = None,
             cpu_throttling_rate: float | None = None) -> TFJSBrowserSession:
        """Open Chromium on `model_path` (a `model.json`, or its directory), start the backend, load the model and
        run one zero sample per input (webgl compiles its shaders there, so it is the session's first inference).

        `cpu_throttling_rate` > 1 slows the page's CPU that many times (DevTools emulation, from before the backend
        starts); the session's `cpu_throttle` then says how, and what the rate does and does not reach."""
        availability = self.is_available(delegate)
        if not availability.ok:
            raise (UnknownNameError if delegate not in DELEGATES else RuntimeUnavailableError)(availability.reason)
        model_json = Path(model_path)
        model_json = model_json / MODEL_JSON if model_json.is_dir() else model_json
        model = read_model_json(model_json)
        signature = graph_signature(model)
        server = LocalServer(page_files(), model_json.parent)
        flags = EXTRA_FLAGS.get(delegate, ())
        browser = ChromiumPage(server, "/index.html", flags, timeout_s=min(self.timeout_s, 60.0))
        session = TFJSBrowserSession(model_json.parent, delegate, signature, graph_ops(model), browser.open(), threads,
                                     self.timeout_s)
        try:
            if cpu_throttling_rate and cpu_throttling_rate > 1:
                session.cpu_throttle = throttle_page(browser, delegate, cpu_throttling_rate, threads)
            # tfjs-backend-wasm caps its pool at hardwareConcurrency / 2, setThreadsCount included: emulate the cores.
            emulated = delegate == "wasm" and bool(threads) and browser.emulate_cores(2 * threads)
            session.info = session._call("init", {"backend": delegate, "threads": threads})
            if delegate == "wasm":
                session.info["backend_info"].update(threads_requested=threads,
                                                    hardware_concurrency_emulated=2 * threads if emulated else None)
            session.delegate = session.info["backend"]
            session.load_ms = session._call("load", {"url": f"/model/{quote(model_json.name)}"})["load_ms"]
            warmup = warmup_feed(signature)
            if warmup is not None:
                session.run_outputs(warmup)
        except BaseException:
            session.close()
            raise
        return session
