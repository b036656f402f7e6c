"""The isolated benchmark worker: `python -m device_runtime.worker` reads one JSON request on stdin.

It loads the model in its runtime, times it with the protocol of `device_runtime.device_scripts.edge_bench`
on the artifact's evaluation samples (or a user's .npz, or synthetic inputs; one array per model input), and
prints one JSON result line on stdout. Its stderr (the frameworks' chatter included) goes where the harness
points it: a log file. A crash, hang or memory kill here never reaches the parent's results store.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _model_and_inputs(request: dict[str, Any]) -> tuple[Path, str, list[str]]:
    """The model file, what to run it on ('synthetic' or an .npz path; an artifact's own eval.npz by default) and
    the source model's input names in order (from the manifest; empty for a bare model file)."""
    from device_runtime.inputs import SYNTHETIC
    from pipeline.core.errors import DataError
    from pipeline.core.manifest import read_manifest

    if request.get("model_file"):
        return Path(request["model_file"]), request.get("inputs") or SYNTHETIC, []
    artifact_dir = Path(request["artifact_dir"])
    manifest = read_manifest(artifact_dir)
    entry = manifest.get("eval_data")
    if not entry:
        raise DataError(f"{artifact_dir} has no eval.npz (exported without evaluation data); re-export with --eval-data.")
    names = [spec.get("name") for spec in manifest.get("input_signature") or [] if isinstance(spec, dict)]
    return artifact_dir / manifest["model_file"], str(artifact_dir / entry["file"]), names


def _samples(session: Any, inputs: str, model_file: Path, order: list[str]) -> tuple[Any, Any, dict[str, Any]]:
    """(feed, labels or None, what the result records about them). The feed of an .npz is ordered like the
    source model's inputs where `order` names them all (an artifact without input names matches by position)."""
    from device_runtime.inputs import SYNTHETIC, check_inputs, describe_synthetic, load_inputs, synthetic_inputs
    from pipeline.core.errors import DataError

    if inputs == SYNTHETIC:
        signatures = session.input_signatures()
        return (synthetic_inputs(signatures, model_file), None,
                {"inputs": SYNTHETIC, "input_signature": describe_synthetic(signatures)})
    feed, labels = load_inputs(Path(inputs))
    if order and set(order) == set(feed):
        feed = {name: feed[name] for name in order}
    try:
        signatures = session.input_signatures()
    except DataError:  # a TF.js model without a signature: the runner checks the shapes itself
        signatures = None
    if signatures is not None:
        check_inputs(feed, signatures, Path(inputs).name, model_file)
    return feed, labels, {"inputs": Path(inputs).name}


READY_FD_ENV = "EDGE_BENCH_READY_FD"
# Python packages a runner imports when it loads the model, imported before the emulation starts
PRELOAD = {"executorch": ("torch",)}


def signal_ready() -> None:
    """Tell the parent the runtime's Python modules are imported: the device emulation starts here.

    Importing TensorFlow-sized packages is a property of this host's Python, not of the device; the
    model load, the first inference and every timed run that follow are emulated.
    """
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is not None:
        os.write(int(fd), b"1")
        os.close(int(fd))


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """Measure one artifact as the request describes; raises PipelineError for impossible requests."""
    from device_runtime import RUNTIMES
    from device_runtime.device_scripts.edge_bench import Protocol
    from pipeline.core.errors import ArtifactError, RuntimeUnavailableError

    model_file, inputs, order = _model_and_inputs(request)
    runtime = RUNTIMES.get(request["runtime"])
    availability = runtime.is_available(request["delegate"])
    if not availability.ok:
        raise RuntimeUnavailableError(availability.reason)
    for module in PRELOAD.get(request["runtime"], ()):
        importlib.import_module(module)
    signal_ready()
    # a runtime that emulates the device's CPU speed itself (a browser page) gets the rate; the others are throttled
    rate = {"cpu_throttling_rate": request["cpu_throttling_rate"]} if request.get("cpu_throttling_rate") else {}
    session = runtime.load(model_file, request["delegate"], request.get("threads"), **rate)
    try:
        feed, labels, described = _samples(session, inputs, model_file, order)
        result = session.benchmark(feed, labels, Protocol(**request["protocol"]))
        used = session.delegate_used
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(
            f"{request['runtime']} could not run {model_file}: {exc}. The file is truncated, corrupt "
            "or not what its manifest says; re-export it."
        ) from None
    finally:
        session.close()
    return {**result, **described, "delegate_used": used}


def main() -> int:
    from pipeline.core.console import quiet_frameworks, quiet_python

    quiet_frameworks()  # before any runtime imports its framework (the harness sets them too)
    quiet_python()
    from pipeline.core.errors import PipelineError, RuntimeUnavailableError

    request = json.loads(sys.stdin.read())
    started = time.perf_counter()
    try:
        reply = {"status": "ok", **handle(request)}
    except RuntimeUnavailableError as exc:
        reply = {"status": "unavailable", "error": str(exc)}
    except PipelineError as exc:
        reply = {"status": "failed", "error": str(exc)}
    reply["worker_seconds"] = time.perf_counter() - started
    sys.stdout.write("\n" + json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # skip interpreter teardown: unloading torch/TensorFlow under a device throttle costs seconds of wall time
    os._exit(code)
