"""`pipeline serve-bench`: any browser (a phone's, with its real GPU) measures TF.js artifacts and posts the results.

The server serves a benchmark page and the named artifacts only, read-only, under a random per-run
token (any other path is 403). The page runs the harness's protocol on each backend the browser has
(wasm, webgl, webgpu), one fresh frame per (artifact, backend), and posts each result; the server
checks it against the result schema and stores it as a `measured` row of the device the user named.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np

from device_runtime.chromium import ISOLATION_HEADERS, IsolatedHandler
from device_runtime.device_scripts.edge_bench import PROTOCOL_VERSION, Protocol, latency_stats
from device_runtime.tfjs_browser import PAGE_DIR, gpu_kind, page_files
from device_runtime.tfjs_node import RAW, feed_entries, graph_feed, graph_signature, read_model_json
from pipeline.core.errors import ArtifactError, ConfigError, DataError
from pipeline.core.files import sha256_file
from pipeline.core.manifest import MANIFEST_FILE, read_manifest
from pipeline.core.records import Measurement

BACKENDS = ("wasm", "webgl", "webgpu")
MAX_BODY_BYTES = 2 * 1024 * 1024  # up to MAX_RUNS latencies and one prediction per sample
MAX_RUNS = 100_000
DEVICE_NAME_CHARS = 64
HEADERS = {**ISOLATION_HEADERS, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
TYPES = {".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".html": "text/html",
         ".bin": "application/octet-stream"}


@dataclass(frozen=True)
class ServedInput:
    """One input of the real samples, as the page fetches it: name, TF.js dtype, shape and raw little-endian bytes."""

    name: str | None
    dtype: str
    shape: tuple[int, ...]
    data: bytes


@dataclass(frozen=True)
class ServedArtifact:
    """One TF.js artifact the page may load: its files, real inputs (one per model input) and labels."""

    path: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    inputs: tuple[ServedInput, ...]
    outputs: tuple[str, ...] | None
    labels: np.ndarray | None

    @property
    def samples(self) -> int:
        return self.inputs[0].shape[0]

    @classmethod
    def open(cls, path: Path) -> ServedArtifact:
        from device_runtime.device_scripts.edge_bench import read_feed

        manifest = read_manifest(path)
        if manifest.get("target") != "tfjs":
            raise ConfigError(f"{path} is a {manifest.get('target')} artifact; serve-bench serves TF.js artifacts "
                              "(a .tflite or .pte runs on a board with device_runtime/device_scripts/edge_bench.py).")
        entry = manifest.get("eval_data")
        if not entry or not (path / entry["file"]).is_file():
            raise DataError(f"{path} has no eval.npz, so a browser has no real input to time it on; re-export it "
                            "with evaluation data.")
        model_json = path / manifest["model_file"]
        signature = graph_signature(read_model_json(model_json))
        order = [spec.get("name") for spec in manifest.get("input_signature") or [] if isinstance(spec, dict)]
        try:
            feed, labels = read_feed(path / entry["file"], order)
        except ValueError as exc:
            raise DataError(f"{exc}.") from None
        pairs = graph_feed(signature, feed, model_json)
        inputs = tuple(ServedInput(e["name"], e["dtype"], tuple(e["shape"]), x.astype(RAW[e["dtype"]]).tobytes())
                       for e, (_, x) in zip(feed_entries(pairs), pairs, strict=True))
        return cls(path, manifest, sha256_file(path / MANIFEST_FILE), inputs, signature.outputs, labels)

    def file(self, name: str) -> Path | None:
        """A file of the artifact by name, only if its manifest lists it."""
        listed = {entry["name"] for entry in self.manifest.get("files", [])}
        return self.path / name if name in listed else None


def _finite(value: Any, low: float = 0.0) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= low


def check_result(body: dict[str, Any], artifacts: list[ServedArtifact]) -> list[str]:
    """Every way a posted result breaks the schema (empty when it is valid)."""
    problems = []
    index = body.get("artifact")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(artifacts):
        return [f"artifact must be an index in [0, {len(artifacts)})"]
    if body.get("backend") not in BACKENDS:
        problems.append(f"backend must be one of {', '.join(BACKENDS)}")
    device = body.get("device")
    if not isinstance(device, str) or not device.strip() or len(device) > DEVICE_NAME_CHARS:
        problems.append(f"device must be a name of 1 to {DEVICE_NAME_CHARS} characters")
    latencies = body.get("latencies_ms")
    if not isinstance(latencies, list) or not 1 <= len(latencies) <= MAX_RUNS or not all(_finite(v) for v in latencies):
        problems.append(f"latencies_ms must be a list of 1 to {MAX_RUNS} non-negative numbers")
    predictions = body.get("predictions")
    samples = artifacts[index].samples
    if predictions is not None and (not isinstance(predictions, list) or len(predictions) != samples
                                    or not all(isinstance(p, int) and not isinstance(p, bool) for p in predictions)):
        problems.append(f"predictions must be {samples} integers (one per evaluation sample)")
    for key in ("load_ms", "first_inference_ms", "bench_wall_ms"):
        if not _finite(body.get(key)):
            problems.append(f"{key} must be a non-negative number")
    info = body.get("info")
    if not isinstance(info, dict) or not all(isinstance(k, str) for k in info):
        problems.append("info must be an object")
    return problems


def measurement_from(body: dict[str, Any], artifact: ServedArtifact, protocol: Protocol) -> Measurement:
    """The `measured` row for a checked result posted by a browser."""
    info = body["info"]
    accuracy = None
    if artifact.labels is not None and body.get("predictions") is not None:
        accuracy = float(np.mean(np.asarray(body["predictions"]) == artifact.labels))
    latencies = [float(v) for v in body["latencies_ms"]]
    result = {"load_ms": body["load_ms"], "first_inference_ms": body["first_inference_ms"], "runs": len(latencies),
              "inferences": len(latencies), "duration_s": body["bench_wall_ms"] / 1000, **latency_stats(latencies),
              "accuracy": accuracy, "samples": artifact.samples, "protocol": asdict(protocol),
              "protocol_version": PROTOCOL_VERSION, "tfjs_version": str(info.get("tfjs_version", ""))}
    backend_info = info.get("backend_info") if isinstance(info.get("backend_info"), dict) else {}
    context = {"source": "serve-bench", "user_agent": str(info.get("user_agent", ""))[:400],
               "hardware_concurrency": info.get("hardware_concurrency"),
               "cross_origin_isolated": info.get("cross_origin_isolated"), "backend_info": backend_info,
               "gpu": gpu_kind(backend_info) if body["backend"] != "wasm" else None,
               "manifest": {k: artifact.manifest.get(k) for k in ("source", "stages", "route", "size_bytes",
                                                                   "size_bytes_gzip")}}
    return Measurement(kind="measured", status="ok", artifact_dir=str(artifact.path),
                       manifest_sha256=artifact.manifest_sha256, target="tfjs", runtime="tfjs-browser",
                       delegate_requested=body["backend"], delegate_used=str(info.get("backend") or body["backend"]),
                       threads=info.get("threads") if isinstance(info.get("threads"), int) else None,
                       device_profile=body["device"].strip(), result=result, context=context)


def plan(artifacts: list[ServedArtifact], protocol: Protocol, backends: tuple[str, ...]) -> dict[str, Any]:
    """What the page runs: each artifact's model URL, inputs (name, dtype, shape, URL) and outputs, the backends
    and the protocol."""
    return {"artifacts": [{"name": f"{a.manifest['source'].get('path', a.path.name)} ({a.path.name})",
                           "model": f"model/{i}/{a.manifest['model_file']}", "samples": a.samples,
                           "inputs": [{"name": x.name, "dtype": x.dtype, "shape": list(x.shape),
                                       "url": f"input/{i}/{j}.bin"} for j, x in enumerate(a.inputs)],
                           "outputs": list(a.outputs) if a.outputs else None} for i, a in enumerate(artifacts)],
            "backends": list(backends), "protocol": asdict(protocol)}


class BenchServer:
    """The HTTP server: GET for the page, plan, artifacts and inputs; POST for results; all under /TOKEN/."""

    def __init__(self, artifacts: list[ServedArtifact], store: Callable[[Measurement], int], protocol: Protocol,
                 backends: tuple[str, ...] = BACKENDS, host: str = "127.0.0.1", port: int = 0) -> None:
        self.artifacts, self.store, self.protocol = artifacts, store, protocol
        self.token = secrets.token_urlsafe(16)
        self.stored: list[int] = []
        files = {f"tfjs/{url.rsplit('/', 1)[1]}": path for url, path in page_files().items() if url.startswith("/tfjs/")}
        files |= {"": PAGE_DIR / "serve.html", "serve.js": PAGE_DIR / "serve.js", "run.html": PAGE_DIR / "run.html",
                  "run.js": PAGE_DIR / "run.js", "runner.js": PAGE_DIR / "runner.js",
                  "protocol.js": PAGE_DIR / "protocol.js"}
        self.files = files
        self.plan = json.dumps(plan(artifacts, protocol, backends)).encode()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{self.token}/"

    def start(self) -> str:
        threading.Thread(target=self._server.serve_forever, name="serve-bench", daemon=True).start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def resolve(self, path: str) -> tuple[bytes, str] | None:
        """The body and content type served at `path` (below the token), or None."""
        if path == "plan.json":
            return self.plan, TYPES[".json"]
        if path.startswith("input/") and path.endswith(".bin"):
            index, _, position = path[len("input/"):-len(".bin")].partition("/")
            if index.isdigit() and int(index) < len(self.artifacts) and position.isdigit():
                inputs = self.artifacts[int(index)].inputs
                return (inputs[int(position)].data, TYPES[".bin"]) if int(position) < len(inputs) else None
            return None
        if path.startswith("model/"):
            index, _, name = path[len("model/"):].partition("/")
            target = self.artifacts[int(index)].file(name) if index.isdigit() and int(index) < len(self.artifacts) else None
        else:
            target = self.files.get(path)
        if target is None or not target.is_file():
            return None
        return target.read_bytes(), TYPES.get(target.suffix, "application/octet-stream")

    def receive(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        """Check and store one posted result; (HTTP status, reply)."""
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return 400, {"error": "the body is not JSON"}
        if not isinstance(body, dict):
            return 400, {"error": "the body must be a JSON object"}
        problems = check_result(body, self.artifacts)
        if problems:
            return 422, {"error": "; ".join(problems)}
        row = self.store(measurement_from(body, self.artifacts[body["artifact"]], self.protocol))
        self.stored.append(row)
        return 200, {"stored": row}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(IsolatedHandler):
            headers_sent = HEADERS

            def _below_token(self) -> str | None:
                path = unquote(self.path.split("?", 1)[0])
                prefix = f"/{server.token}/"
                if not (path.startswith(prefix) or path == prefix[:-1]):
                    self._reply(403, b"forbidden: this URL lacks the run's token", "text/plain")
                    return None
                return path[len(prefix):]

            def _reply(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self._below_token()
                if path is None:
                    return
                found = server.resolve(path)
                if found is None:
                    self._reply(404, b"not served", "text/plain")
                else:
                    self._reply(200, *found)

            def do_POST(self) -> None:  # noqa: N802
                path = self._below_token()
                if path is None:
                    return
                if path != "result":
                    self._reply(404, b"not served", "text/plain")
                    return
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    length = -1
                if not 0 < length <= MAX_BODY_BYTES:
                    self.close_connection = True
                    self._reply(413, json.dumps({"error": f"the body must be 1 to {MAX_BODY_BYTES} bytes"}).encode(),
                                TYPES[".json"])
                    return
                status, reply = server.receive(self.rfile.read(length))
                self._reply(status, json.dumps(reply).encode(), TYPES[".json"])

        return Handler


def open_artifacts(paths: list[Path]) -> list[ServedArtifact]:
    """The named artifact directories, each checked before anything is served."""
    if not paths:
        raise ConfigError("Name at least one TF.js artifact directory to serve.")
    for path in paths:
        if not path.is_dir():
            raise ArtifactError(f"{path} is not an artifact directory; pass directories written by "
                                "`pipeline export MODEL --target tfjs`.")
    return [ServedArtifact.open(path) for path in paths]


def qr_text(url: str) -> str:
    """The URL as a QR code drawn with block characters (for a phone's camera)."""
    import io

    import segno

    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def serve(paths: list[Path], store_path: Path, *, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 1800.0,
          protocol: Protocol | None = None, out: Callable[[str], None] = print) -> list[int]:
    """Serve until `timeout_s` passes or Ctrl-C; returns the ids of the rows stored."""
    from pipeline.results import insert_measurement, open_store

    artifacts = open_artifacts(paths)
    protocol = protocol or Protocol()

    def store(measurement: Measurement) -> int:
        with open_store(store_path) as connection:
            row = insert_measurement(connection, measurement.to_json())
        out(f"stored {measurement.device_profile} {measurement.delegate_used} {measurement.artifact_dir}: "
            f"p50 {measurement.result['latency_ms_p50']:.3f} ms (row {row})")
        return int(row or 0)

    server = BenchServer(artifacts, store, protocol, host=host, port=port)
    url = server.start()
    shown = url if host not in ("0.0.0.0", "::") else url.replace(f"//{host}:", f"//{_lan_address()}:")
    out(f"serving {len(artifacts)} TF.js artifact(s) for {timeout_s:.0f} s; open on the device:\n  {shown}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        out(qr_text(shown))
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        out("stopped")
    finally:
        server.stop()
    return server.stored


def _lan_address() -> str:
    """This machine's address on its default route (what a phone on the same network reaches)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET address: no packet is sent for a UDP connect
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"
