"""TF.js runtime: graph models run in Node.js (`@tensorflow/tfjs`) on the cpu or wasm backend.

Each `run` starts `node tfjs_node/run_graph_model.js` on a temporary feed: one raw file per input (float32,
int32 or bool; TF.js has no int64, so integer inputs are cast to int32 and values that do not fit refused)
and a `feed.json` naming each input's name, dtype and shape. The runner answers with one JSON line (backend
in use, outputs, ops, timings) and writes each output beside it. Outputs come in the order of the model's
signature names (output_0, output_1, ...), as for TFLite.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime.base import Availability
from device_runtime.device_scripts.edge_bench import FeedMismatch, TensorInfo, feed_items, natural_key, prepare_feed
from device_runtime.inputs import InputSignature
from pipeline.core.errors import ArtifactError, DataError, RuntimeUnavailableError, UnknownNameError
from pipeline.core.records import DelegationReport
from pipeline.core.registry import unknown_name_message
from pipeline.core.tensors import single_output

DELEGATES = ("cpu", "wasm")
RUNNER_DIR = Path(__file__).with_name("tfjs_node")
RUNNER = RUNNER_DIR / "run_graph_model.js"
MODEL_JSON = "model.json"
TIMEOUT_S = 300.0
NODE_MISSING = "Node.js not found on PATH: install Node.js 20 (apt-get install nodejs) and run `make setup`."
# What each backend needs under node_modules (wasm also loads its .wasm binaries from there).
PACKAGES = {"cpu": ("@tensorflow/tfjs",), "wasm": ("@tensorflow/tfjs", "@tensorflow/tfjs-backend-wasm")}


def read_model_json(model_json: Path) -> dict[str, Any]:
    if not model_json.is_file():
        raise ArtifactError(
            f"TF.js model {model_json} does not exist; export one with `pipeline export MODEL --target tfjs` "
            f"and pass its {MODEL_JSON}."
        )
    try:
        model = json.loads(model_json.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{model_json} is not valid JSON ({exc}); the file is truncated or corrupt, re-export it.") from None
    if not isinstance(model, dict) or "modelTopology" not in model or "weightsManifest" not in model:
        raise ArtifactError(
            f"{model_json} is not a TF.js graph model (no modelTopology/weightsManifest); "
            "re-export it with `pipeline export MODEL --target tfjs`."
        )
    return model


# TensorFlow dtypes in a model.json signature -> the dtype TF.js runs them in (it has no int64 or float16)
TFJS_DTYPES = {"DT_FLOAT": "float32", "DT_HALF": "float32", "DT_DOUBLE": "float32", "DT_BOOL": "bool"}
# raw encoding of each TF.js dtype in the runner's files
RAW = {"float32": "<f4", "int32": "<i4", "bool": "u1"}


@dataclass(frozen=True)
class GraphSignature:
    """A graph model's inputs (None when its model.json has no signature) and output names, in the order they run."""

    inputs: tuple[InputSignature, ...] | None
    outputs: tuple[str, ...] | None


def graph_signature(model: dict[str, Any]) -> GraphSignature:
    """The model.json signature: inputs in the model's order, in the dtypes TF.js runs (integers as int32), and
    outputs sorted by name (output_0, output_1, ...; the converter stores them in another order)."""
    signature = model.get("signature") or {}
    inputs = []
    for name, entry in (signature.get("inputs") or {}).items():
        dims = entry.get("tensorShape", {}).get("dim", [])
        shape = tuple(None if int(d.get("size", -1)) < 0 else int(d["size"]) for d in dims)
        dtype = TFJS_DTYPES.get(entry.get("dtype", "DT_FLOAT"), "int32")
        inputs.append(InputSignature(name, shape, dtype))
    outputs = sorted(signature.get("outputs") or {}, key=natural_key)
    return GraphSignature(tuple(inputs) or None, tuple(outputs) or None)


def graph_feed(signature: GraphSignature, feed: Any, model_json: Path) -> list[tuple[str | None, np.ndarray]]:
    """The feed as (model input name, array in the dtype TF.js takes) pairs in the model's input order: matched
    by name where the names agree, else by position; DataError naming the input that does not fit."""
    if signature.inputs is None:  # no signature: positional, each array in the nearest TF.js dtype
        items = feed_items(feed)
        tensors = [TensorInfo(None, (None,) * np.ndim(x), tfjs_dtype(np.asarray(x))) for _, x in items]
    else:
        tensors = [TensorInfo(s.name, s.shape, s.dtype) for s in signature.inputs]
    try:
        arrays = prepare_feed(tensors, feed)
    except FeedMismatch as exc:
        expected = "; ".join(f"{t.name}: {[-1 if d is None else d for d in t.shape]} {t.dtype}" for t in tensors)
        raise DataError(f"{exc}; the TF.js model {model_json} takes {expected} (TF.js runs integer inputs as "
                        "int32).") from None
    return [(t.name, array) for t, array in zip(tensors, arrays, strict=True)]


def tfjs_dtype(x: np.ndarray) -> str:
    return {"b": "bool", "i": "int32", "u": "int32"}.get(x.dtype.kind, "float32")


def feed_entries(pairs: list[tuple[str | None, np.ndarray]]) -> list[dict[str, Any]]:
    """Each input's name, dtype and shape, as the runners take them."""
    return [{"name": name, "dtype": tfjs_dtype(x), "shape": list(x.shape)} for name, x in pairs]


def decode_output(raw: bytes, entry: dict[str, Any]) -> np.ndarray:
    """One output the runner wrote (raw bytes of its dtype) as an array: float32, int32 or bool."""
    values = np.frombuffer(raw, dtype=RAW.get(entry["dtype"], "<f4")).reshape(entry["shape"])
    return values.astype({"int32": np.int32, "bool": bool}.get(entry["dtype"], np.float32))


def tfjs_input_signatures(signature: GraphSignature, model_dir: Path) -> tuple[InputSignature, ...]:
    """A graph model's input signatures; DataError when its model.json has none."""
    if signature.inputs is None:
        raise DataError(f"{model_dir / MODEL_JSON} has no input signature, so its inputs are unknown; "
                        "pass --input FILE.npz with real samples (one array per input name).")
    return signature.inputs


def label_accuracy(outputs: list[np.ndarray], labels: np.ndarray | None) -> float | None:
    """Top-1 agreement with the labels for a single-output model; None without labels or with several outputs."""
    if labels is None or len(outputs) != 1:
        return None
    return float(np.mean(outputs[0].argmax(-1) == labels))


def warmup_feed(signature: GraphSignature) -> dict[str, np.ndarray] | None:
    """One zero sample per input, or None when a dimension is open (nothing to warm up with)."""
    if signature.inputs is None or any(d is None for s in signature.inputs for d in s.shape[1:]):
        return None
    return {s.name: np.zeros((s.shape[0] or 1, *s.shape[1:]), s.dtype) for s in signature.inputs}


def timing_fields(report: dict[str, Any], protocol: Any) -> dict[str, Any]:
    """A JS runner's timed samples (protocol.js) as the result fields `edge_bench.time_runs` gives."""
    from device_runtime.device_scripts.edge_bench import PROTOCOL_VERSION, latency_stats, steadiness

    latencies = report["latencies_ms"]
    return {"runs": len(latencies), "inferences": report["inferences"], "duration_s": report["bench_wall_ms"] / 1000,
            **latency_stats(latencies), **steadiness(latencies, protocol.steady_blocks, protocol.steady_tolerance),
            "protocol": asdict(protocol), "protocol_version": PROTOCOL_VERSION}


def graph_ops(model: dict[str, Any]) -> list[str]:
    topology = model["modelTopology"]
    nodes = list(topology.get("node", []))
    for function in topology.get("library", {}).get("function", []):
        nodes += function.get("nodeDef", [])
    return sorted({node["op"] for node in nodes})


def graph_op_report(model_json: Path) -> DelegationReport:
    """The compute ops of a graph model; all of them run on whichever backend runs the model."""
    ops = tuple(op for op in graph_ops(read_model_json(model_json)) if op not in ("Const", "Placeholder", "Identity"))
    return DelegationReport("tfjs", ops_total=len(ops), ops_delegated=len(ops), graph_ops=ops)


@dataclass
class TFJSNodeSession:
    """One graph model on one backend; every `run` is a Node.js process (load + inference)."""

    model_dir: Path
    backend: str
    signature: GraphSignature
    ops: list[str]
    threads: int | None = None
    timeout_s: float = TIMEOUT_S
    delegate: str = ""
    last_report: dict[str, Any] = field(default_factory=dict)

    @property
    def delegate_used(self) -> str:
        """The backend TF.js reports it ran on (set by each run)."""
        return self.delegate

    def input_signatures(self) -> tuple[InputSignature, ...]:
        """The inputs of the model.json signature, in the dtypes TF.js runs (integers as int32)."""
        return tfjs_input_signatures(self.signature, self.model_dir)

    def _command(self, feed_file: Path) -> list[str]:
        command = ["node", str(RUNNER), "--model", str(self.model_dir), "--backend", self.backend,
                   "--feed", str(feed_file), "--out-dir", str(feed_file.parent)]
        return [*command, "--threads", str(self.threads)] if self.threads else command

    def _fail(self, message: str, stage: str) -> Exception:
        where = f"TF.js ({self.backend} backend) failed on {self.model_dir / MODEL_JSON}"
        if stage == "backend":
            return RuntimeUnavailableError(f"{where}: {message}. Reinstall the runner with `make setup`.")
        if stage == "input":
            return DataError(f"{where}: {message}; pass one array per model input.")
        return ArtifactError(f"{where} at stage '{stage}': {message}. Re-export the model if its files are damaged.")

    def run_outputs(self, feed: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Every output for a feed (one Node process; batch-1 models run sample by sample), in signature order."""
        return self._invoke(feed, [])

    def run(self, x: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """The output of a single-output model; DataError naming the outputs of a model with several."""
        return single_output(self.run_outputs(x), self.signature.outputs or ())

    def benchmark(self, feed: Mapping[str, np.ndarray] | np.ndarray, labels: np.ndarray | None,
                  protocol: Any) -> dict[str, Any]:
        """Time single-batch runs inside one Node process with the harness protocol (min_sample_ms and the
        steadiness check included); returns measure()-style fields."""
        outputs = self._invoke(feed, ["--protocol", json.dumps(asdict(protocol))])
        report = self.last_report
        return {"load_ms": report["timings_ms"]["load"], "first_inference_ms": report["timings_ms"]["first_inference"],
                **timing_fields(report, protocol), "accuracy": label_accuracy(outputs, labels),
                "samples": len(outputs[0]), "peak_rss_bytes": report["peak_rss_bytes"],
                "tfjs_version": report["tfjs_version"], "node_version": report["node_version"]}

    def _invoke(self, feed: Any, extra: list[str]) -> list[np.ndarray]:
        pairs = graph_feed(self.signature, feed, self.model_dir / MODEL_JSON)
        with tempfile.TemporaryDirectory(prefix="tfjs-run-") as scratch:
            entries = feed_entries(pairs)
            for i, (entry, (_, x)) in enumerate(zip(entries, pairs, strict=True)):
                entry["file"] = f"input_{i}.bin"
                np.ascontiguousarray(x, dtype=RAW[entry["dtype"]]).tofile(Path(scratch) / entry["file"])
            feed_file = Path(scratch) / "feed.json"
            feed_file.write_text(json.dumps({"inputs": entries, "outputs": self.signature.outputs}))
            try:
                done = subprocess.run([*self._command(feed_file), *extra], capture_output=True, text=True,
                                      timeout=self.timeout_s, check=False)
            except subprocess.TimeoutExpired:
                raise RuntimeUnavailableError(
                    f"The TF.js runner ({self.backend} backend) did not finish {len(pairs[0][1])} samples of "
                    f"{self.model_dir / MODEL_JSON} within {self.timeout_s:g} s; pass fewer samples per run "
                    "or a larger TFJSNodeRuntime(timeout_s=...)."
                ) from None
            except FileNotFoundError:
                raise RuntimeUnavailableError(NODE_MISSING) from None
            report = self._report(done)
            outputs = [decode_output((Path(scratch) / entry["file"]).read_bytes(), entry) for entry in report["outputs"]]
        self.last_report = report
        self.delegate = report["backend"]
        return outputs

    def _report(self, done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        try:
            report = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            raise self._fail(f"the Node.js runner crashed ({tail[:500]})", "run") from None
        if "error" in report or done.returncode != 0:
            raise self._fail(report.get("error", f"exit status {done.returncode}"), report.get("stage", "run"))
        return report

    def op_names(self) -> list[str]:
        """Unique op names of the graph (from model.json), sorted."""
        return list(self.ops)

    def close(self) -> None:
        self.last_report = {}


class TFJSNodeRuntime:
    """Runs TF.js graph models (`model.json` + shards) in Node.js through `tfjs_node/run_graph_model.js`."""

    name = "tfjs-node"
    delegates = DELEGATES
    target = "tfjs"
    default_delegate = "wasm"
    packages: tuple[str, ...] = ()

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def is_available(self, delegate: str) -> Availability:
        if delegate not in DELEGATES:
            return Availability(False, unknown_name_message("TF.js backend", delegate, list(DELEGATES)))
        if shutil.which("node") is None:
            return Availability(False, NODE_MISSING)
        missing = [package for package in PACKAGES[delegate] if not (RUNNER_DIR / "node_modules" / package).is_dir()]
        if missing or not RUNNER.is_file():
            return Availability(
                False, f"TF.js runner not installed ({', '.join(missing) or RUNNER.name} missing): run `make setup` "
                "(npm ci in device_runtime/tfjs_node)."
            )
        return Availability(True)

    def delegation_report(self, model_path: Path) -> DelegationReport:
        """The graph's ops (TF.js has no partial delegation: a backend runs all of them or fails)."""
        return graph_op_report(Path(model_path))

    def load(self, model_path: Path, delegate: str = "wasm", threads: int | None = None) -> TFJSNodeSession:
        """Open `model_path` (a `model.json`, or its directory) and run one warm-up sample to check it loads."""
        availability = self.is_available(delegate)
        if not availability.ok:
            if delegate not in DELEGATES:
                raise UnknownNameError(availability.reason)
            raise RuntimeUnavailableError(availability.reason)
        model_json = Path(model_path)
        model_json = model_json / MODEL_JSON if model_json.is_dir() else model_json
        model = read_model_json(model_json)
        signature = graph_signature(model)
        session = TFJSNodeSession(model_json.parent, delegate, signature, graph_ops(model), threads, self.timeout_s)
        warmup = warmup_feed(signature)
        if warmup is not None:
            session.run_outputs(warmup)
        return session
