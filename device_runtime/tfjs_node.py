"""TF.js runtime: graph models run in Node.js (`@tensorflow/tfjs`) on the cpu or wasm backend.

Each `run` starts `node tfjs_node/run_graph_model.js` on a temporary raw float32 file; the runner
answers with one JSON line (backend in use, ops, timings) and writes the outputs beside it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime.base import Availability
from device_runtime.inputs import InputSignature
from pipeline.core.errors import ArtifactError, DataError, RuntimeUnavailableError, UnknownNameError
from pipeline.core.records import DelegationReport
from pipeline.core.registry import unknown_name_message

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


def _input_shape(model: dict[str, Any]) -> tuple[int | None, ...] | None:
    """The first signature input's shape (None for unknown dims), or None if the model has no signature."""
    inputs = (model.get("signature") or {}).get("inputs") or {}
    if not inputs:
        return None
    dims = next(iter(inputs.values())).get("tensorShape", {}).get("dim", [])
    return tuple(None if int(d.get("size", -1)) < 0 else int(d["size"]) for d in dims)


def tfjs_input_signature(shape: tuple[int | None, ...] | None, model_dir: Path) -> InputSignature:
    """A graph model's input signature; DataError when its model.json has none."""
    if shape is None:
        raise DataError(f"{model_dir / MODEL_JSON} has no input signature, so its input shape is unknown; "
                        "pass --input FILE.npz with real samples.")
    return InputSignature(shape, "float32")


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
    input_shape: tuple[int | None, ...] | None
    ops: list[str]
    threads: int | None = None
    timeout_s: float = TIMEOUT_S
    delegate: str = ""
    last_report: dict[str, Any] = field(default_factory=dict)

    @property
    def delegate_used(self) -> str:
        """The backend TF.js reports it ran on (set by each run)."""
        return self.delegate

    def input_signature(self) -> InputSignature:
        """The first input of the model.json signature (TF.js graph models take float32 here)."""
        return tfjs_input_signature(self.input_shape, self.model_dir)

    def _check(self, x: np.ndarray) -> None:
        shape = self.input_shape
        if shape is None:
            return
        if x.ndim != len(shape) or any(e is not None and e != a for e, a in zip(shape[1:], x.shape[1:], strict=False)):
            raise DataError(
                f"input has samples of shape {list(x.shape[1:])} but the TF.js model {self.model_dir / MODEL_JSON} "
                f"expects {[d if d is not None else -1 for d in shape]}; convert the data to the model's layout."
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise DataError(f"input has dtype {x.dtype}; the TF.js model expects float32 inputs.")

    def _command(self, input_file: Path, output_file: Path, shape: tuple[int, ...]) -> list[str]:
        command = [
            "node", str(RUNNER), "--model", str(self.model_dir), "--backend", self.backend,
            "--input", str(input_file), "--shape", ",".join(map(str, shape)), "--output", str(output_file),
        ]
        return [*command, "--threads", str(self.threads)] if self.threads else command

    def _fail(self, message: str, stage: str) -> Exception:
        where = f"TF.js ({self.backend} backend) failed on {self.model_dir / MODEL_JSON}"
        if stage == "backend":
            return RuntimeUnavailableError(f"{where}: {message}. Reinstall the runner with `make setup`.")
        return ArtifactError(f"{where} at stage '{stage}': {message}. Re-export the model if its files are damaged.")

    def run(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a float batch (one Node process; batch-1 models run sample by sample)."""
        return self._invoke(x, [])

    def benchmark(self, x: np.ndarray, labels: np.ndarray | None, protocol: Any) -> dict[str, Any]:
        """Time single-batch runs inside one Node process with the harness protocol; returns measure()-style fields."""
        from device_runtime.device_scripts.edge_bench import latency_stats

        flags = ["--bench-warmup", str(protocol.warmup_runs), "--bench-min-runs", str(protocol.min_runs),
                 "--bench-min-ms", str(protocol.min_duration_s * 1000), "--bench-max-runs", str(protocol.max_runs)]
        outputs = self._invoke(x, flags)
        report = self.last_report
        latencies = report["latencies_ms"]
        accuracy = float(np.mean(outputs.argmax(-1) == labels)) if labels is not None else None
        return {"load_ms": report["timings_ms"]["load"], "first_inference_ms": report["timings_ms"]["first_inference"],
                "runs": len(latencies), "duration_s": sum(latencies) / 1000, **latency_stats(latencies),
                "accuracy": accuracy, "samples": len(x), "peak_rss_bytes": report["peak_rss_bytes"],
                "tfjs_version": report["tfjs_version"], "node_version": report["node_version"]}

    def _invoke(self, x: np.ndarray, extra: list[str]) -> np.ndarray:
        x = np.ascontiguousarray(x)
        self._check(x)
        with tempfile.TemporaryDirectory(prefix="tfjs-run-") as scratch:
            input_file, output_file = Path(scratch) / "input.f32", Path(scratch) / "output.f32"
            x.astype("<f4").tofile(input_file)
            try:
                done = subprocess.run([*self._command(input_file, output_file, x.shape), *extra], capture_output=True,
                                      text=True, timeout=self.timeout_s, check=False)
            except subprocess.TimeoutExpired:
                raise RuntimeUnavailableError(
                    f"The TF.js runner ({self.backend} backend) did not finish {len(x)} samples of "
                    f"{self.model_dir / MODEL_JSON} within {self.timeout_s:g} s; pass fewer samples per run "
                    "or a larger TFJSNodeRuntime(timeout_s=...)."
                ) from None
            except FileNotFoundError:
                raise RuntimeUnavailableError(NODE_MISSING) from None
            report = self._report(done)
            outputs = np.fromfile(output_file, dtype="<f4")
        self.last_report = report
        self.delegate = report["backend"]
        return outputs.reshape(report["output_shape"]).astype(np.float32)

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
        shape = _input_shape(model)
        session = TFJSNodeSession(model_json.parent, delegate, shape, graph_ops(model), threads, self.timeout_s)
        if shape is not None and all(d is not None for d in shape[1:]):
            session.run(np.zeros((shape[0] or 1, *shape[1:]), np.float32))
        return session
