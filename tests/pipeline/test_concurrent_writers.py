"""One workspace, many writers: sweeps, exports and benchmarks started together never break each other."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from pipeline.results import fetch_exports, fetch_measurements, open_store

RECIPE = {
    "version": 1, "name": "shared",
    "models": [{"zoo": "digits-cnn", "frameworks": ["torch"]}],
    "variants": [{"name": "fp32", "quantize": "none"}, {"name": "int8", "quantize": "int8"},
                 {"name": "dyn", "quantize": "dynamic-int8"}],
    "targets": ["tflite", "executorch"],
    "runtimes": [{"target": "tflite", "runtime": "litert", "delegate": "xnnpack", "threads": 1},
                 {"target": "executorch", "runtime": "executorch", "delegate": "xnnpack", "threads": 1}],
    "devices": ["host"],
    "measure": {"warmup_runs": 2, "min_runs": 10, "min_duration_s": 0.1},
}


def _workspace(tmp_path: Path, torch_model_path: Path) -> tuple[Path, Path]:
    workspace = tmp_path / "ws"
    (workspace / "models").mkdir(parents=True)
    for suffix in ("", ".card.json"):  # the session's trained model, not a second training
        (workspace / "models" / f"digits-cnn-torch.pt2{suffix}").write_bytes(
            torch_model_path.with_name(torch_model_path.name + suffix).read_bytes())
    recipe = tmp_path / "shared.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    return workspace, recipe


def _sweep(recipe: Path, workspace: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "sweep", str(recipe), "--workspace", str(workspace)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _leftovers(workspace: Path) -> list[Path]:
    return [p for p in workspace.rglob("*") if p.name.endswith((".partial", ".lock"))]


def test_two_sweeps_of_one_recipe_share_the_workspace(tmp_path, torch_model_path):
    workspace, recipe = _workspace(tmp_path, torch_model_path)
    first = _sweep(recipe, workspace)
    time.sleep(1.0)
    second = _sweep(recipe, workspace)
    outputs = [first.communicate(timeout=900)[0], second.communicate(timeout=900)[0]]
    assert first.returncode == 0, outputs[0][-3000:]
    assert second.returncode == 0, outputs[1][-3000:]
    assert "FAILED" not in "".join(outputs)
    assert any("another sweep (pid" in out for out in outputs)  # the later one said so at start
    done = [int(out.split("exports {'cached': ")[1].split("'done': ")[1].split(",")[0]) for out in outputs]
    assert sum(done) == 6, outputs  # each cell exported once, by one of the two; the other reused it
    with open_store(workspace / "results.sqlite") as store:
        exports = fetch_exports(store)
        measurements = fetch_measurements(store)
    assert len(exports) == 6 and {row["status"] for row in exports} == {"ok"}
    per_cell = Counter(row["cell_key"] for row in measurements)
    assert len(per_cell) == 6 and set(per_cell.values()) == {1}, per_cell  # each cell measured once
    assert {row["status"] for row in measurements} == {"ok"}
    assert _leftovers(workspace) == []

    # a sweep killed mid-export, then a third run: everything is done once, nothing stale is left
    (workspace / "results.sqlite").unlink()
    for folder in (workspace / "artifacts").iterdir():
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    killed = _sweep(recipe, workspace)
    deadline = time.time() + 300
    while time.time() < deadline and not list((workspace / "artifacts").rglob("*.partial")):
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    third = _sweep(recipe, workspace)
    out = third.communicate(timeout=900)[0]
    assert third.returncode == 0, out[-3000:]
    with open_store(workspace / "results.sqlite") as store:
        assert {row["status"] for row in fetch_exports(store)} == {"ok"}
        assert set(Counter(row["cell_key"] for row in fetch_measurements(store)).values()) == {1}
    time.sleep(0.5)  # the killed sweep's export workers die with it (PR_SET_PDEATHSIG)
    assert _leftovers(workspace) == []


def test_two_exports_to_one_directory_both_succeed(tmp_path, torch_model_path):
    out = tmp_path / "artifact"
    command = [sys.executable, "-m", "pipeline", "export", str(torch_model_path), "--target", "tflite", "--out", str(out)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    for run in runs:
        output = run.communicate(timeout=600)[0]
        assert run.returncode == 0, output[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["validation"]["passed"] and (out / "model.tflite").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]


def test_four_bench_writers_into_one_store_lose_no_row(tmp_path, artifacts):
    store = tmp_path / "results.sqlite"
    command = [sys.executable, "-m", "pipeline", "bench", str(artifacts["tflite-fp32"]), "--store", str(store),
               "--workspace", str(tmp_path), "--min-runs", "10", "--min-seconds", "0.1", "--threads", "1"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    for run in runs:
        output = run.communicate(timeout=600)[0]
        assert run.returncode == 0, output[-2000:]
    with sqlite3.connect(store) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = raw.execute("SELECT status, context_json FROM measurements").fetchall()
    assert len(rows) == 4 and {status for status, _ in rows} == {"ok"}
    waits = [json.loads(context)["bench_slot_wait_s"] for _, context in rows]
    assert sum(wait > 0.05 for wait in waits) >= 1  # they took turns on the machine's benchmark slot
