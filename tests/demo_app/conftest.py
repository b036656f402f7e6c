"""A tiny workspace for the app: four real digits artifacts (torch tflite fp32/int8 and executorch, keras tfjs)
laid out as `pipeline demo` does, their source models, and real harness measurements in results.sqlite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

LAYOUT = {"tflite-fp32": "digits-cnn-torch/tflite-none", "tflite-int8": "digits-cnn-torch/tflite-int8",
          "executorch-fp32": "digits-cnn-torch/executorch-none", "tfjs-fp32": "digits-cnn-keras/tfjs-none"}


@pytest.fixture(scope="session")
def app_workspace(artifacts, model_paths, tmp_path_factory) -> Path:
    """Built once; tests that write to it (the Run page) work on a copy."""
    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import resolve_request, run_benchmark
    from pipeline.results import insert_measurement, open_store

    root = tmp_path_factory.mktemp("app") / "workspace"
    for name, relative in LAYOUT.items():
        shutil.copytree(artifacts[name], root / "artifacts" / relative)
    (root / "models").mkdir()
    for path in model_paths.values():  # the manifests point at the originals; these feed the Run page's form
        for file in (path, path.with_name(path.name + ".card.json")):
            shutil.copy(file, root / "models" / file.name)
    quick = Protocol(warmup_runs=3, min_runs=30, min_duration_s=0.3)
    with open_store(root / "results.sqlite") as store:
        for relative in LAYOUT.values():
            measurement = run_benchmark(resolve_request(root / "artifacts" / relative, None, None, "host", 1, quick))
            assert measurement.status == "ok", measurement.error
            insert_measurement(store, measurement.to_json())
    return root


@pytest.fixture
def writable_workspace(app_workspace, tmp_path) -> Path:
    """A private copy of the app workspace (its store still names the shared artifacts, which are read-only here)."""
    return Path(shutil.copytree(app_workspace, tmp_path / "workspace"))
