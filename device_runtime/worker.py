"""The isolated benchmark worker: `python -m device_runtime.worker` reads one JSON request on stdin.

It loads the artifact in its runtime, times it with the protocol of
`device_runtime.device_scripts.edge_bench`, and prints one JSON result line on stdout.
A crash, hang or memory kill here never reaches the parent's results store.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _eval_samples(artifact_dir: Path, manifest: dict[str, Any]) -> tuple[Any, Any]:
    import numpy as np

    from pipeline.core.errors import DataError

    entry = manifest.get("eval_data")
    if not entry:
        raise DataError(f"{artifact_dir} has no eval.npz (exported without evaluation data); re-export with --eval-data.")
    with np.load(artifact_dir / entry["file"], allow_pickle=False) as data:
        return data["x"].astype(np.float32), (data["y"] if "y" in data.files else None)


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
    from pipeline.core.manifest import read_manifest

    artifact_dir = Path(request["artifact_dir"])
    manifest = read_manifest(artifact_dir)
    runtime = RUNTIMES.get(request["runtime"])
    availability = runtime.is_available(request["delegate"])
    if not availability.ok:
        raise RuntimeUnavailableError(availability.reason)
    for module in PRELOAD.get(request["runtime"], ()):
        importlib.import_module(module)
    signal_ready()
    model_file = artifact_dir / manifest["model_file"]
    inputs, labels = _eval_samples(artifact_dir, manifest)
    session = runtime.load(model_file, request["delegate"], request.get("threads"))
    try:
        result = session.benchmark(inputs, labels, Protocol(**request["protocol"]))
        used = session.delegate_used
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(
            f"{request['runtime']} could not run {model_file}: {exc}. The file is truncated, corrupt "
            "or not what its manifest says; re-export it."
        ) from None
    finally:
        session.close()
    return {**result, "delegate_used": used}


def main() -> int:
    from pipeline.core.errors import PipelineError, RuntimeUnavailableError

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
