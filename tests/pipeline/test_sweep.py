"""Recipes, the sweep's cache and resume after a killed run."""

import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from device_runtime.profiles import PROFILES
from pipeline.core.errors import ConfigError
from pipeline.results import fetch_exports, fetch_measurements, open_store
from pipeline.sweep.executors import LocalExecutor
from pipeline.sweep.plan import build_plan
from pipeline.sweep.recipe import DEFAULT_RECIPE, load_recipe, parse_recipe
from pipeline.sweep.runner import Progress, run_sweep

TINY = {
    "version": 1, "name": "tiny",
    "models": [{"zoo": "digits-cnn", "frameworks": ["torch"]}],
    "variants": [{"name": "fp32", "quantize": "none"}, {"name": "int8", "quantize": "int8"}],
    "targets": ["tflite"],
    "runtimes": [{"target": "tflite", "runtime": "litert", "delegate": "xnnpack", "threads": 1}],
    "devices": ["host"],
    "measure": {"warmup_runs": 2, "min_runs": 20, "min_duration_s": 0.2},
}


def test_default_recipe_is_valid_and_covers_the_grid():
    recipe = load_recipe(DEFAULT_RECIPE)
    plan = build_plan(recipe)
    assert set(recipe.targets) == {"tflite", "executorch", "tfjs", "onnx"}
    assert {m.framework for m in recipe.models} == {"keras", "torch"}
    assert len([d for d in recipe.devices if d != "host"]) >= 2
    assert {c.target for c in plan.exports} == {"tflite", "executorch", "tfjs", "onnx"}
    assert {c.model.name for c in plan.exports} == {"digits-cnn", "mobilenet-v2-shapes", "minilm-l6"}
    minilm = [c for c in plan.exports if c.model.name == "minilm-l6"]
    assert {(c.variant.quantize, c.target) for c in minilm} == {
        (mode, target) for mode in ("none", "dynamic-int8") for target in ("tflite", "executorch")}
    assert {b.device for b in plan.benches if b.export.model.name == "minilm-l6"} == {"host", "pixel-3a-1t"}
    assert not [c for c in plan.exports if c.variant.name == "dynamic-int8" and c.model.name != "minilm-l6"]
    assert {c.variant.quantize for c in plan.exports} >= {"none", "fp16", "int8", "qat-int8"}
    assert not plan.unmeasurable  # the host-only runtimes say so in the recipe, so nothing is set aside
    emulated = {b.export.variant.name for b in plan.benches if b.device != "host"}
    assert emulated == {"fp32", "int8", "dynamic-int8"}  # one variant per calibrated precision
    assert {b.export.target for b in plan.benches if b.device == "pixel-3a-1t"} == {"tflite", "executorch", "onnx"}
    gpu_cells = {(b.runtime.runtime, b.runtime.delegate, b.device, b.export.target) for b in plan.benches
                 if b.runtime.delegate in ("gpu", "webgl")}
    assert gpu_cells == {("litert", "gpu", "host", "tflite"), ("tfjs-browser", "webgl", "host", "tfjs")}
    assert {b.export.variant.name for b in plan.benches if b.runtime.delegate == "gpu"} == {"fp32", "fp16"}
    assert all(b.runtime.delegate in PROFILES.get(b.device).delegates for b in plan.benches)


def test_cells_a_route_cannot_express_are_set_aside_not_planned_to_fail():
    recipe = parse_recipe({**TINY, "models": [{"zoo": "digits-cnn"}], "targets": ["executorch"],
                           "variants": [{"name": "qat", "quantize": "qat-int8"}],
                           "runtimes": [{"target": "executorch", "runtime": "executorch", "delegate": "xnnpack"}]})
    plan = build_plan(recipe)
    assert [c.model.framework for c in plan.exports] == ["torch"]
    assert [(c.model.framework, c.target) for c in plan.refused] == [("keras", "executorch")]
    assert {b.export.model.framework for b in plan.benches} == {"torch"}


def test_a_runtime_can_be_limited_to_some_variants_and_devices():
    runtimes = [{"target": "tflite", "runtime": "litert", "delegate": "xnnpack"},
                {"target": "tflite", "runtime": "litert", "delegate": "cpu", "variants": ["int8"], "devices": ["rpi4"]}]
    plan = build_plan(parse_recipe({**TINY, "runtimes": runtimes, "devices": ["host", "rpi4"]}))
    cells = {(b.export.variant.name, b.runtime.delegate, b.device) for b in plan.benches}
    assert cells == {("fp32", "xnnpack", "host"), ("fp32", "xnnpack", "rpi4"), ("int8", "xnnpack", "host"),
                     ("int8", "xnnpack", "rpi4"), ("int8", "cpu", "rpi4")}
    with pytest.raises(ConfigError) as excinfo:
        parse_recipe({**TINY, "runtimes": [{**runtimes[1], "variants": ["int4"], "devices": ["pixel-3a"]}]})
    assert "runtimes[0].variants: unknown variant 'int4'" in str(excinfo.value)
    assert "runtimes[0].devices: unknown device (of the recipe's devices) 'pixel-3a'" in str(excinfo.value)


def test_every_mistake_is_reported_at_once_with_its_key_path():
    bad = {**TINY, "targets": ["tflite", "tflit"], "devices": ["rpi5"],
           "variants": [{"name": "x", "quantize": "uint8"}, {"name": "y", "prune": "1.5"}],
           "runtimes": [{"target": "tflite", "runtime": "litert", "delegate": "xnnpak"}]}
    with pytest.raises(ConfigError) as excinfo:
        parse_recipe(bad, "bad.yaml")
    message = str(excinfo.value)
    for expected in ("targets[1]: unknown target 'tflit'", "Did you mean 'tflite'?", "devices[0]: unknown device profile 'rpi5'",
                     "variants[0].quantize: 'uint8' cannot be expressed for target tflite", "variants[1].prune",
                     "runtimes[0].delegate: unknown litert delegate 'xnnpak'"):
        assert expected in message
    assert message.startswith("bad.yaml has 5 problem(s)")


def test_missing_model_file_fails_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=r"models\[0\].path: model file .* does not exist"):
        parse_recipe({**TINY, "models": [{"path": str(tmp_path / "absent.keras")}]})


def test_sweep_caches_and_reruns_only_what_changed(tmp_path, torch_model_path):
    workspace, store = tmp_path / "ws", tmp_path / "results.sqlite"
    (workspace / "models").mkdir(parents=True)
    for suffix in ("", ".card.json"):  # reuse the session's trained model instead of training again
        (workspace / "models" / f"digits-cnn-torch.pt2{suffix}").write_bytes(
            torch_model_path.with_name(torch_model_path.name + suffix).read_bytes())
    recipe = parse_recipe(TINY)
    cold_started = time.perf_counter()
    first = run_sweep(recipe, workspace, store, LocalExecutor(), out=lambda _: None)
    cold = time.perf_counter() - cold_started
    assert first.exports == {"cached": 0, "done": 2, "failed": 0} and first.benches["done"] == 2
    warm_started = time.perf_counter()
    second = run_sweep(recipe, workspace, store, LocalExecutor(), out=lambda _: None)
    warm = time.perf_counter() - warm_started
    assert second.exports["cached"] == 2 and second.benches["cached"] == 2
    assert warm < cold / 3
    changed = parse_recipe({**TINY, "variants": [*TINY["variants"], {"name": "fp16", "quantize": "fp16"}]})
    third = run_sweep(changed, workspace, store, LocalExecutor(), out=lambda _: None)
    assert third.exports == {"cached": 2, "done": 1, "failed": 0}
    with open_store(store) as connection:
        assert len(fetch_exports(connection)) == 3 and len(fetch_measurements(connection, status="ok")) == 3


def test_killed_sweep_resumes_without_redoing_or_corrupting(tmp_path, torch_model_path):
    workspace, store = tmp_path / "ws", tmp_path / "results.sqlite"
    (workspace / "models").mkdir(parents=True)
    for suffix in ("", ".card.json"):
        (workspace / "models" / f"digits-cnn-torch.pt2{suffix}").write_bytes(
            torch_model_path.with_name(torch_model_path.name + suffix).read_bytes())
    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(yaml.safe_dump(TINY))
    command = [sys.executable, "-m", "pipeline", "sweep", str(recipe_file), "--workspace", str(workspace), "--store", str(store)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        try:
            with sqlite3.connect(store) as raw:
                if raw.execute("SELECT COUNT(*) FROM exports").fetchone()[0] >= 1:
                    break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with open_store(store) as connection:
        done_before = len(fetch_exports(connection))
    assert done_before >= 1
    resumed = run_sweep(parse_recipe(TINY), workspace, store, LocalExecutor(), out=lambda _: None)
    assert resumed.exports["cached"] >= done_before and not resumed.failures
    partial = [p for p in (workspace / "artifacts").rglob("*.partial")]
    assert partial == []
    for manifest in (workspace / "artifacts").rglob("manifest.json"):
        assert (manifest.parent / "model.tflite").is_file()


def test_local_executor_runs_calls_in_worker_processes_and_benchmarks_here():
    import os

    executor = LocalExecutor(workers=2)
    try:
        pids = dict(executor.map(os.getpid, [(), (), ()]))
        exclusive = dict(executor.map(os.getpid, [(), ()], exclusive_cpu=True))
    finally:
        executor.close()
    assert sorted(pids) == [0, 1, 2] and os.getpid() not in pids.values()
    assert exclusive == {0: os.getpid(), 1: os.getpid()}  # one after another, each spawning its own worker


def test_local_executor_records_a_dead_worker_as_a_failed_cell():
    import os

    executor = LocalExecutor(workers=2)
    try:
        results = dict(executor.map(os._exit, [(3,), (3,)]))
    finally:
        executor.close()
    assert set(results) == {0, 1}
    assert all(r["status"] == "failed" and "worker died" in r["error"] for r in results.values())
    assert dict(LocalExecutor(workers=1).map(abs, [(-2,)])) == {0: 2}  # one worker: runs in this process


def test_eta_is_per_phase_and_counts_parallel_exports():
    lines = []
    progress = Progress({"export": 2, "bench": 2}, lines.append, parallel={"export": 2})
    progress.step("export", "a", "ok", 10.0)
    assert progress.eta() == 1 * 10.0 / 2 + 2 * 10.0  # benches borrow the export mean until one finishes
    progress.step("export", "b", "ok", 20.0)
    progress.step("bench", "c", "ok", 2.0)
    assert progress.eta() == 2.0
    progress.step("bench", "d", "ok", 2.0)
    assert lines[0].startswith("[  1/4] export a: ok") and lines[-1].endswith("eta ~   0s)")


def _onnxruntime_has_xnnpack() -> bool:
    import onnxruntime

    return "XnnpackExecutionProvider" in onnxruntime.get_available_providers()


@pytest.mark.skipif(_onnxruntime_has_xnnpack(), reason="this onnxruntime wheel has the XNNPACK provider")
def test_a_runtime_that_cannot_run_an_artifact_is_listed_as_unavailable_not_failed(tmp_path, torch_model_path, capsys):
    from pipeline.cli import main

    workspace = tmp_path / "ws"
    (workspace / "models").mkdir(parents=True)
    for suffix in ("", ".card.json"):
        (workspace / "models" / f"digits-cnn-torch.pt2{suffix}").write_bytes(
            torch_model_path.with_name(torch_model_path.name + suffix).read_bytes())
    recipe = {**TINY, "targets": ["onnx"], "variants": [{"name": "fp32", "quantize": "none"}],
              "runtimes": [{"target": "onnx", "runtime": "onnxruntime", "delegate": "xnnpack"}]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    code = main(["sweep", str(tmp_path / "recipe.yaml"), "--workspace", str(workspace), "-q"])
    out = capsys.readouterr().out
    assert code == 0, out  # the PyPI onnxruntime wheel has no XNNPACK provider: recorded, with the reason
    assert "'unavailable': 1" in out and "  unavailable bench digits-cnn/torch fp32 -> onnx" in out
    assert "FAILED" not in out


def test_a_recipe_with_limits_still_names_its_file_in_the_error():
    bad = {**TINY, "models": [{"zoo": "digits-cnn", "variants": ["fp32"]}],
           "runtimes": [{**TINY["runtimes"][0], "devices": ["host"]}], "targets": ["tflit"]}
    with pytest.raises(ConfigError, match=r"^bad.yaml has 1 problem"):
        parse_recipe(bad, "bad.yaml")
