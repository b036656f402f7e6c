"""The on-device script, run here against the local runtimes, and its import into the results store."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device_runtime.device_scripts import edge_bench
from pipeline.cli import main
from pipeline.results import fetch_measurements, open_store

SCRIPT = Path(edge_bench.__file__)


def test_percentiles_and_stats():
    stats = edge_bench.latency_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert stats["latency_ms_p50"] == 3.0 and stats["latency_ms_max"] == 100.0
    assert edge_bench.percentile([1.0, 2.0], 50) == 1.5
    with pytest.raises(ValueError):
        edge_bench.Protocol(min_runs=0)


def test_samples_group_back_to_back_inferences_when_asked():
    seen = []
    single = edge_bench.time_runs(seen.append, 3, edge_bench.Protocol(warmup_runs=0, min_runs=4, min_duration_s=0))
    assert single["runs"] == single["inferences"] == 4 and seen == [0, 0, 1, 2, 0]  # first, then 4 timed
    grouped = edge_bench.time_runs(lambda i: None, 3, edge_bench.Protocol(
        warmup_runs=0, min_runs=4, min_duration_s=0, min_sample_ms=5.0))
    assert grouped["runs"] == 4 and grouped["inferences"] > 4 and grouped["duration_s"] >= 0.02
    assert grouped["latency_ms_p50"] < 5.0  # per inference, not per sample
    with pytest.raises(ValueError, match="min_sample_ms"):
        edge_bench.Protocol(min_sample_ms=-1)


@pytest.mark.parametrize("name", ["tflite-int8", "executorch-fp32"])
def test_script_runs_standalone_and_imports_as_measured(artifacts, tmp_path, name):
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(artifacts[name]), "--device-name", "test-board", "--threads", "1",
         "--min-runs", "20", "--min-seconds", "0.2", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["kind"] == "measured" and record["result"]["runs"] >= 20
    assert record["delegate_used"] == "xnnpack"
    assert record["result"]["accuracy"] >= 0.95
    store = tmp_path / "results.sqlite"
    assert main(["import-results", str(out), "--store", str(store)]) == 0
    with open_store(store) as connection:
        rows = fetch_measurements(connection)
    assert rows[0]["kind"] == "measured" and rows[0]["device_profile"] == "test-board"
    assert rows[0]["latency_ms_p50"] == record["result"]["latency_ms_p50"]


def test_import_rejects_a_foreign_file_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    store = tmp_path / "results.sqlite"
    assert main(["import-results", str(bad), "--store", str(store)]) == 2
    assert "is not an edge_bench.py result" in capsys.readouterr().err
    assert not store.exists()


def test_cli_bench_writes_the_store_and_refuses_bad_input(artifacts, tmp_path, capsys):
    store = tmp_path / "results.sqlite"
    code = main(["bench", str(artifacts["tflite-fp32"]), "--min-runs", "20", "--min-seconds", "0.2",
                 "--store", str(store), "--workspace", str(tmp_path), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["status"] == "ok"
    assert main(["bench", str(artifacts["tflite-fp32"]), "--delegate", "npu", "--store", str(store)]) == 2
    assert "Unknown litert delegate 'npu'" in capsys.readouterr().err
    assert main(["bench", str(artifacts["tflite-fp32"]), "--device", "iphone", "--store", str(store)]) == 2
    with open_store(store) as connection:
        assert len(fetch_measurements(connection)) == 1


def test_gpu_delegate_is_recorded_as_unavailable_with_a_reason(artifacts, tmp_path, capsys):
    store = tmp_path / "results.sqlite"
    code = main(["bench", str(artifacts["tflite-fp32"]), "--delegate", "gpu", "--store", str(store),
                 "--workspace", str(tmp_path)])
    out = capsys.readouterr().out
    with open_store(store) as connection:
        row = fetch_measurements(connection)[0]
    if code == 0:  # a machine with a GPU ran it: only the accelerator holding the whole graph is labelled gpu
        assert row["status"] == "ok" and row["delegate_used"] == "gpu"
        return
    assert code == 1 and "GPU delegate unavailable" in out
    assert row["status"] == "unavailable" and row["latency_ms_p50"] is None and row["delegate_used"] is None


@pytest.fixture(scope="module")
def board_python(tmp_path_factory) -> Path:
    """A Python with nothing but numpy and ai-edge-litert, as a user's board has it (no pipeline, no torch)."""
    import site
    import venv

    root = tmp_path_factory.mktemp("board") / "venv"
    venv.create(root, with_pip=False, system_site_packages=False)
    packages = Path(site.getsitepackages()[0])
    target = next((root / "lib").glob("python3*/site-packages"))
    for name in ("numpy", "numpy.libs", "ai_edge_litert"):
        if (packages / name).exists():
            (target / name).symlink_to(packages / name)
    return root / "bin" / "python"


def _on_board(python: Path, artifact: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    script = tmp_path / "edge_bench.py"  # copied alone, as a user would
    script.write_bytes(SCRIPT.read_bytes())
    return subprocess.run([str(python), str(script), str(artifact), "--device-name", "board", "--min-runs", "10",
                           "--min-seconds", "0.1", "--out", str(tmp_path / "out.json"), *extra],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_script_runs_on_a_board_with_only_numpy_and_litert(board_python, artifacts, tmp_path):
    done = _on_board(board_python, artifacts["tflite-int8"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "out.json").read_text())["delegate_used"] == "xnnpack"


def test_every_user_mistake_is_one_line_and_exit_2(board_python, artifacts, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(artifacts["tflite-fp32"], broken)
    (broken / "model.tflite").write_bytes((broken / "model.tflite").read_bytes()[:2000])
    mismatched = tmp_path / "mismatched"  # an eval.npz with two inputs for a single-input model
    shutil.copytree(artifacts["tflite-fp32"], mismatched)
    np.savez(mismatched / "eval.npz", a=np.zeros((2, 1, 8, 8), np.float32), b=np.zeros((2, 4), np.float32))
    cases = [
        (artifacts["executorch-fp32"], (), "pip install executorch"),
        (artifacts["tfjs-fp32"], (), "pipeline serve-bench"),
        (broken, (), "truncated, corrupt"),
        (mismatched, (), "eval.npz does not fit model.tflite: the feed has 2 input(s) (a, b) but the model takes 1"),
        (artifacts["tflite-fp32"], ("--delegate", "npu"), "delegate 'npu'"),
        (tmp_path / "nowhere", (), "needs manifest.json and eval.npz"),
        (artifacts["tflite-fp32"], ("--min-runs", "0"), "invalid protocol"),
    ]
    for artifact, extra, expected in cases:
        done = _on_board(board_python, artifact, tmp_path, *extra)
        assert done.returncode == 2, (artifact, done.stderr[-1500:])
        assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr[-1500:]
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
