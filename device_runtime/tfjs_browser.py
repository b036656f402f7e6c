"""TF.js runtime in real headless Chromium: graph models on the cpu, wasm, webgl or webgpu backend.

A session opens one Chromium page (see `device_runtime.chromium`) served from 127.0.0.1 with the
tfjs dist files of `tfjs_node/node_modules` and the model directory; `tfjs_browser/runner.js` loads
the model once and runs batches passed in as base64 float32. Latencies are taken inside the page
with `performance.now()` (cross-origin isolated, so not coarsened). Without a GPU, webgl and
webgpu run on SwiftShader (a software GPU); `backend_info` says which device ran it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
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
    browser_pss_bytes,
    find_chromium,
    playwright_installed,
)
from device_runtime.inputs import InputSignature
from device_runtime.tfjs_node import (
    MODEL_JSON,
    RUNNER_DIR,
    _input_shape,
    graph_op_report,
    graph_ops,
    read_model_json,
    tfjs_input_signature,
)
from pipeline.core.errors import ArtifactError, DataError, RuntimeUnavailableError, UnknownNameError
from pipeline.core.records import DelegationReport
from pipeline.core.registry import unknown_name_message

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


def page_files() -> dict[str, Path]:
    """The runner page's files by URL: the page, runner.js and TF.js's dist files (shared with serve-bench)."""
    modules = RUNNER_DIR / "node_modules" / "@tensorflow"
    files = {url: modules / relative for url, relative in DIST.items()}
    page = {"/": PAGE_DIR / "index.html", "/index.html": PAGE_DIR / "index.html", "/runner.js": PAGE_DIR / "runner.js"}
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
    input_shape: tuple[int | None, ...] | None
    ops: list[str]
    browser: ChromiumPage
    threads: int | None = None
    timeout_s: float = TIMEOUT_S
    delegate: str = ""
    load_ms: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    last_report: dict[str, Any] = field(default_factory=dict)

    @property
    def delegate_used(self) -> str:
        """The backend TF.js reports it ran on in the page."""
        return self.delegate

    def input_signature(self) -> InputSignature:
        """The first input of the model.json signature (TF.js graph models take float32 here)."""
        return tfjs_input_signature(self.input_shape, self.model_dir)

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
            raise DataError(f"{where}: {message}; pass float32 samples in the model's layout.")
        raise ArtifactError(f"{where} at stage '{stage}': {message}. Re-export the model if its files are damaged.")

    def _check(self, x: np.ndarray) -> None:
        shape = self.input_shape
        if not np.issubdtype(x.dtype, np.floating):
            raise DataError(f"input has dtype {x.dtype}; the TF.js model expects float32 inputs.")
        if shape is not None and (x.ndim != len(shape) or any(
                e is not None and e != a for e, a in zip(shape[1:], x.shape[1:], strict=False))):
            raise DataError(
                f"input has samples of shape {list(x.shape[1:])} but the TF.js model {self.model_dir / MODEL_JSON} "
                f"expects {[d if d is not None else -1 for d in shape]}; convert the data to the model's layout."
            )

    def _infer(self, x: np.ndarray, bench: dict[str, Any] | None) -> np.ndarray:
        self._check(x)
        data = base64.b64encode(np.ascontiguousarray(x, dtype="<f4").tobytes()).decode("ascii")
        report = self._call("infer", {"input": data, "shape": list(x.shape), "bench": bench,
                                      "timeout_ms": self.timeout_s * 1000})
        outputs = np.frombuffer(base64.b64decode(report.pop("output")), dtype="<f4")
        self.last_report = report
        self.delegate = report["backend"]
        return outputs.reshape(report["output_shape"]).astype(np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a float batch (batch-1 models run sample by sample in the page)."""
        return self._infer(x, None)

    def benchmark(self, x: np.ndarray, labels: np.ndarray | None, protocol: Any) -> dict[str, Any]:
        """Time single-batch runs in the page with the harness protocol; returns measure()-style fields."""
        from device_runtime.device_scripts.edge_bench import latency_stats

        bench = {"warmup": protocol.warmup_runs, "min_runs": protocol.min_runs,
                 "min_ms": protocol.min_duration_s * 1000, "max_runs": protocol.max_runs}
        outputs = self._infer(x, bench)
        latencies = self.last_report["latencies_ms"]
        accuracy = float(np.mean(outputs.argmax(-1) == labels)) if labels is not None else None
        kind = gpu_kind(self.info["backend_info"]) if self.backend in ("webgl", "webgpu") else None
        info = {**self.info["backend_info"], "cross_origin_isolated": self.info["cross_origin_isolated"],
                "timer_resolution_ms": self.info["timer_resolution_ms"], "device_kind": kind}
        # peak_rss_bytes stays None: Chromium is ~10 processes sharing pages; browser_pss_bytes is their footprint.
        return {"load_ms": self.load_ms, "first_inference_ms": self.last_report["first_inference_ms"],
                "runs": len(latencies), "duration_s": self.last_report["bench_wall_ms"] / 1000,
                **latency_stats(latencies), "accuracy": accuracy, "samples": len(x), "peak_rss_bytes": None,
                "browser_pss_bytes": browser_pss_bytes(), "js_heap_bytes": self.last_report.get("used_js_heap_bytes"),
                "tfjs_version": self.info["tfjs_version"], "browser_version": self.browser.version,
                "threads": info.get("threads"), "backend_info": info}

    def op_names(self) -> list[str]:
        """Unique op names of the graph (from model.json), sorted."""
        return list(self.ops)

    def close(self) -> None:
        self.browser.close()
        self.last_report = {}


class TFJSBrowserRuntime:
    """Runs TF.js graph models in headless Chromium (Playwright driving the system browser, no download)."""

    name = "tfjs-browser"
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

    def load(self, model_path: Path, delegate: str = "wasm", threads: int | None = None) -> TFJSBrowserSession:
        """Open Chromium on `model_path` (a `model.json`, or its directory), start the backend, load the model and
        run one zero sample (webgl compiles its shaders there, so it is the session's first inference)."""
        availability = self.is_available(delegate)
        if not availability.ok:
            raise (UnknownNameError if delegate not in DELEGATES else RuntimeUnavailableError)(availability.reason)
        model_json = Path(model_path)
        model_json = model_json / MODEL_JSON if model_json.is_dir() else model_json
        model = read_model_json(model_json)
        shape = _input_shape(model)
        server = LocalServer(page_files(), model_json.parent)
        flags = EXTRA_FLAGS.get(delegate, ())
        browser = ChromiumPage(server, "/index.html", flags, timeout_s=min(self.timeout_s, 60.0))
        session = TFJSBrowserSession(model_json.parent, delegate, shape, graph_ops(model), browser.open(), threads,
                                     self.timeout_s)
        try:
            # tfjs-backend-wasm caps its pool at hardwareConcurrency / 2, setThreadsCount included: emulate the cores.
            emulated = delegate == "wasm" and bool(threads) and browser.emulate_cores(2 * threads)
            session.info = session._call("init", {"backend": delegate, "threads": threads})
            if delegate == "wasm":
                session.info["backend_info"].update(threads_requested=threads,
                                                    hardware_concurrency_emulated=2 * threads if emulated else None)
            session.delegate = session.info["backend"]
            session.load_ms = session._call("load", {"url": f"/model/{quote(model_json.name)}"})["load_ms"]
            if shape is not None and all(d is not None for d in shape[1:]):
                session.run(np.zeros((shape[0] or 1, *shape[1:]), np.float32))
        except BaseException:
            session.close()
            raise
        return session
