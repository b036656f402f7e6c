"""Run artifacts in their real runtimes and source models in their own frameworks; compare them on eval.npz."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from demo_app.data import Artifact
from pipeline.core.tensors import Feed, TensorSpec

# One call of a tfjs-node session starts Node.js, so it is timed once; in-process runtimes take the median of a few.
REPEATS = {"tfjs-node": 1, "tfjs-browser": 1}
DEFAULT_REPEATS = 5


@dataclass
class Runner:
    """A loaded model behind a lock (a runtime session is not thread-safe; Streamlit serves sessions on threads).

    `predict_outputs` takes a feed (input name -> batch; an array for a single input) and returns every output.
    `layout` is the layout of its image input (NHWC or NCHW; the first input's for other models).
    """

    name: str
    runtime: str
    delegate: str
    layout: str
    predict_outputs: Callable[[Any], list[np.ndarray]]
    inputs: tuple[TensorSpec, ...] = ()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def outputs(self, feed: Feed | np.ndarray) -> list[np.ndarray]:
        """Every output for a batch, as float32 (integer outputs keep their values)."""
        with self.lock:
            return [np.asarray(out, dtype=np.float32) for out in self.predict_outputs(feed)]

    def run(self, x: Feed | np.ndarray) -> np.ndarray:
        """The first output for a batch (a classifier's class scores)."""
        return self.outputs(x)[0]


@dataclass(frozen=True)
class Prediction:
    """One model's answer for one input: top class, its probability, the whole vector, and the call's latency."""

    name: str
    runtime: str
    label: str
    confidence: float
    probabilities: list[float]
    latency_ms: float


def input_specs(manifest: Mapping[str, Any]) -> tuple[TensorSpec, ...]:
    """Every input of the artifact's model (name, shape, dtype, layout), from its manifest."""
    return tuple(TensorSpec.from_json(spec) for spec in manifest.get("input_signature") or [])


def output_names(manifest: Mapping[str, Any]) -> list[str]:
    """The names of the model's outputs, from the manifest's output signature (output_<i> where unnamed)."""
    return [spec.get("name") or f"output_{i}" for i, spec in enumerate(manifest.get("output_signature") or [])]


def image_layout(specs: tuple[TensorSpec, ...]) -> str:
    """The layout of the first 4-D input (an image), else of the first input (NHWC when none is known)."""
    image = next((spec for spec in specs if len(spec.shape) == 4), specs[0] if specs else None)
    return image.layout if image is not None else "NHWC"


def runtime_for(artifact: Artifact) -> tuple[str, str]:
    """The runtime and delegate `pipeline bench` uses by default for this artifact."""
    from device_runtime import RUNTIMES, default_runtime

    runtime = default_runtime(artifact.target)
    return runtime, RUNTIMES.get(runtime).default_delegate


def open_artifact(artifact: Artifact, runtime: str | None = None, delegate: str | None = None) -> Runner:
    """Load the artifact's model file in `RUNTIMES[runtime]` (default: as benchmarked); raises PipelineError."""
    from device_runtime import RUNTIMES

    default_runtime, default_delegate = runtime_for(artifact)
    runtime, delegate = runtime or default_runtime, delegate or default_delegate
    session = RUNTIMES.get(runtime).load(artifact.path / artifact.manifest["model_file"], delegate)
    specs = input_specs(artifact.manifest)
    return Runner(artifact.label, runtime, getattr(session, "delegate", delegate) or delegate, image_layout(specs),
                  session.run_outputs, specs)


def open_source(path: Path) -> Runner:
    """Load the source model with pipeline.intake.load_model; it predicts in its own framework."""
    from pipeline.intake import load_model

    bundle = load_model(str(path))
    return Runner(f"source: {path.name}", bundle.framework, "-", image_layout(bundle.inputs), bundle.predict_outputs,
                  bundle.inputs)


def to_layout(x: np.ndarray, source: str, target: str) -> np.ndarray:
    from pipeline.core.datasets import to_layout as convert

    return convert(x, source, target)


def feed_in_layout(feed: Feed, layout: str, runner: Runner) -> Feed:
    """The feed's images (4-D inputs) moved from `layout` to the runner's; other inputs as they are."""
    return {name: to_layout(x, layout, runner.layout) if x.ndim == 4 else x for name, x in feed.items()}


def timed(runner: Runner, feed: Feed | np.ndarray) -> tuple[list[np.ndarray], float]:
    """Every output for `feed` and the median wall time of the calls (ms)."""
    times, outputs = [], []
    for _ in range(REPEATS.get(runner.runtime, DEFAULT_REPEATS)):
        started = time.perf_counter()
        outputs = runner.outputs(feed)
        times.append((time.perf_counter() - started) * 1000)
    return outputs, statistics.median(times)


def predict(runner: Runner, x: np.ndarray, layout: str, labels: list[str]) -> Prediction:
    """Run one sample (given in `layout`) through `runner`; the latency is the median wall time of the calls."""
    outputs, latency = timed(runner, to_layout(x, layout, runner.layout))
    probabilities = outputs[0][0].astype(float)
    top = int(probabilities.argmax())
    label = labels[top] if top < len(labels) else str(top)
    return Prediction(runner.name, runner.runtime, label, float(probabilities[top]), probabilities.tolist(), latency)


def op_list(artifact: Artifact) -> list[str]:
    """The artifact's op types: a `.tflite`'s plan on reference kernels (every op), else the manifest's graph ops."""
    if artifact.target == "tflite":
        from device_runtime.litert import LiteRTRuntime

        session = LiteRTRuntime().load(artifact.path / artifact.manifest["model_file"], "cpu")
        try:
            return list(dict.fromkeys(session.op_names()))
        finally:
            session.close()
    return list((artifact.manifest.get("delegation") or {}).get("graph_ops") or [])


def eval_samples(artifact: Artifact) -> tuple[Feed, np.ndarray | None, str]:
    """The artifact's eval.npz: one array per input name (floats as float32), labels (or None), their layout."""
    entry = artifact.manifest.get("eval_data") or {}
    with np.load(artifact.path / entry.get("file", "eval.npz"), allow_pickle=False) as data:
        labels = data["y"] if "y" in data.files else None
        feed = {name: data[name] for name in data.files if name != "y"}
    feed = {name: x.astype(np.float32) if x.dtype.kind == "f" else x for name, x in feed.items()}
    return feed, labels, entry.get("layout", "NHWC")


def per_class(predicted: np.ndarray, truth: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(confusion matrix [true, predicted], accuracy per class; NaN for a class without samples)."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (truth.astype(int), predicted.astype(int)), 1)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(totals > 0, np.diag(matrix) / totals, np.nan)
    return matrix, accuracy


def compare_on_eval(artifact: Artifact, artifact_runner: Runner, source_runner: Runner) -> dict[str, Any]:
    """Both classifiers on the artifact's eval.npz: predictions, per-class accuracy, confusion matrices, agreement."""
    feed, y, layout = eval_samples(artifact)
    artifact_out = artifact_runner.run(feed_in_layout(feed, layout, artifact_runner))
    source_out = source_runner.run(feed_in_layout(feed, layout, source_runner))
    classes = int(artifact_out.shape[-1])
    result: dict[str, Any] = {"samples": len(artifact_out), "classes": classes, "artifact_pred": artifact_out.argmax(-1),
                              "source_pred": source_out.argmax(-1), "labels": y}
    result["agreement"] = float(np.mean(result["artifact_pred"] == result["source_pred"]))
    result["max_abs_error"] = float(np.max(np.abs(artifact_out - source_out)))
    if y is not None:
        for who in ("artifact", "source"):
            result[f"{who}_matrix"], result[f"{who}_per_class"] = per_class(result[f"{who}_pred"], y, classes)
            result[f"{who}_accuracy"] = float(np.mean(result[f"{who}_pred"] == y))
    return result
