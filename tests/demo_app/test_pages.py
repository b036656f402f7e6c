"""Every page of the comparison app under Streamlit's AppTest, on a real (tiny) workspace and on an empty one."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from demo_app.config import WORKSPACE_ENV

APP = Path(__file__).resolve().parents[2] / "demo_app" / "app.py"
TIMEOUT = 240


def open_page(workspace: Path, monkeypatch: pytest.MonkeyPatch, page: str | None = None, **query: str) -> AppTest:
    monkeypatch.setenv(WORKSPACE_ENV, str(workspace))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_compare_lists_measurements_filters_and_charts(app_workspace, monkeypatch):
    at = open_page(app_workspace, monkeypatch)
    assert at.title[0].value == "Compare artifacts"
    assert metric(at, "Measurements") == "4" and metric(at, "Artifacts") == "4"
    board = at.dataframe[0].value
    assert set(board["target"]) == {"tflite", "executorch", "tfjs"}
    assert all(link.startswith("detail?artifact=") for link in board["detail"])
    assert charts(at) == 3  # Pareto, sizes, latency distributions
    assert {m.label for m in at.sidebar.multiselect} == {"Model", "Source framework", "Target", "Variant / stages",
                                                          "Runtime", "Delegate", "Device profile", "Measured / emulated"}
    next(m for m in at.sidebar.multiselect if m.label == "Target").set_value(["tflite"]).run()
    assert metric(at, "Measurements") == "2" and set(at.dataframe[0].value["target"]) == {"tflite"}
    next(m for m in at.sidebar.multiselect if m.label == "Target").set_value([]).run()
    assert "No measurement matches" in at.warning[0].value and not at.exception


@pytest.mark.parametrize("page", [None, "detail", "try_it", "run"])
def test_empty_workspace_shows_the_first_run_state(tmp_path, monkeypatch, page):
    at = open_page(tmp_path / "workspace", monkeypatch, page)
    if page == "run":
        assert "No source models" in at.info[0].value
    else:
        assert "No " in at.info[0].value and any("pipeline sweep" in c.value for c in at.code)
    assert not at.error and not (tmp_path / "workspace" / "results.sqlite").exists()  # reading creates nothing


def test_detail_shows_manifest_validation_delegation_and_per_class_accuracy(app_workspace, monkeypatch):
    at = open_page(app_workspace, monkeypatch, "detail", artifact="digits-cnn-torch/tflite-int8")
    assert at.selectbox[0].value == "digits-cnn-torch/tflite-int8"
    assert metric(at, "Target") == "tflite" and metric(at, "Variant") == "int8" and metric(at, "Validation") == "passed"
    assert float(metric(at, "Top-1 agreement with source").rstrip("%")) >= 97.0  # eval.npz through LiteRT vs torch
    per_class = next(d.value for d in at.dataframe if "artifact" in d.value.columns)
    assert len(per_class) == 10 and per_class["artifact"].min() > 0.7
    assert charts(at) == 2  # confusion matrices of source and artifact
    assert at.json and at.get("download_button")
    delegation = next(d.value for d in at.dataframe if "where" in getattr(d.value, "columns", []))
    assert set(delegation["where"]) <= {"delegate", "fallback kernels"}
    measured = next(d.value for d in at.dataframe if "latency_ms_p50" in getattr(d.value, "columns", []))
    assert len(measured) == 1 and measured["status"][0] == "ok"


def test_detail_highlights_ops_that_fell_off_the_delegate(writable_workspace, monkeypatch):
    import json

    manifest_path = writable_workspace / "artifacts" / "digits-cnn-torch/tflite-int8/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["delegation"].update(ops_delegated=9, ops_not_delegated=["SOFTMAX"], warning="int8 model has ops outside xnnpack")
    manifest_path.write_text(json.dumps(manifest))
    at = open_page(writable_workspace, monkeypatch, "detail", artifact="digits-cnn-torch/tflite-int8")
    assert any("outside xnnpack" in w.value for w in at.warning)
    delegation = next(d.value for d in at.dataframe if "where" in getattr(d.value, "columns", []))
    assert dict(zip(delegation["op"], delegation["where"], strict=True))["SOFTMAX"] == "fallback kernels"
    assert (delegation["where"] == "delegate").sum() >= 3  # every other op of the LiteRT plan


def test_detail_refuses_a_path_that_is_not_an_artifact(app_workspace, monkeypatch):
    at = open_page(app_workspace, monkeypatch, "detail", artifact="/etc")
    assert "is not an artifact of this workspace" in at.error[0].value


def test_try_it_runs_a_sample_through_sources_and_artifacts(app_workspace, monkeypatch):
    at = open_page(app_workspace, monkeypatch, "try_it")
    at.number_input[0].set_value(3).run()
    table = at.table[0].value
    artifacts = [name for name in table.index if not name.startswith("source:")]
    assert len(artifacts) >= 3 and sum(name.startswith("source:") for name in table.index) == 2
    assert set(table["runtime"]) >= {"litert", "executorch", "tfjs-node", "torch", "keras"}
    assert (table["note"] == "correct").sum() >= len(table) - 1
    assert charts(at) == 1 and not at.error


def test_try_it_classifies_an_uploaded_digit(app_workspace, monkeypatch):
    with np.load(app_workspace / "artifacts" / "digits-cnn-torch/tflite-none/eval.npz") as data:
        digit, label = data[next(k for k in data.files if k != "y")][0, 0], int(data["y"][0])
    photo = np.kron((1.0 - digit) * 255, np.ones((12, 12)))  # dark ink on white paper, 96x96
    at = open_page(app_workspace, monkeypatch, "try_it")
    at.radio[0].set_value("Upload an image").run()
    at.file_uploader[0].upload("digit.png", png(photo), "image/png").run()
    assert not at.error, [e.value for e in at.error]
    table = at.table[0].value
    assert len(table) >= 5 and (table["prediction"] == str(label)).sum() >= len(table) - 1


@pytest.mark.parametrize("name,content,message", [
    ("notes.png", b"these are not pixels", "not an image"),
    ("wide.png", png(np.full((40, 200), 255)), "aspect"),
    ("tiny.png", png(np.zeros((4, 4))), "smaller than the model input"),
    ("blank.png", png(np.full((64, 64), 255)), "blank"),
], ids=["not-an-image", "wrong-aspect", "too-small", "blank"])
def test_try_it_explains_a_bad_upload(app_workspace, monkeypatch, name, content, message):
    at = open_page(app_workspace, monkeypatch, "try_it")
    at.radio[0].set_value("Upload an image").run()
    at.file_uploader[0].upload(name, content, "image/png").run()
    assert not at.exception and len(at.error) == 1 and message in at.error[0].value
    assert not at.table  # no predictions from a bad input


def _wait_for_jobs(at: AppTest, seconds: float = 180) -> AppTest:
    from demo_app.ui import job_board

    deadline = time.monotonic() + seconds
    while job_board().running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not job_board().running(), "the job did not finish in time"
    return at.run()


def test_run_page_benchmarks_in_the_background_and_compare_shows_it(writable_workspace, monkeypatch):
    at = open_page(writable_workspace, monkeypatch, "run")
    form = next(m for m in at.multiselect if m.label == "Artifacts")
    form.set_value(["digits-cnn-torch/tflite-none"])
    next(n for n in at.number_input if n.label == "Min runs").set_value(20)
    next(n for n in at.number_input if n.label == "Min seconds").set_value(0.2)
    started = time.monotonic()
    next(b for b in at.button if b.label == "Benchmark").click().run()
    assert time.monotonic() - started < 10  # the page answers at once; the job runs in the background
    assert any("bench 1 artifact(s) on host" in e.label for e in at.expander)
    _wait_for_jobs(at)
    assert any("Finished" in s.value for s in at.success), [e.value for e in at.error]
    compare = open_page(writable_workspace, monkeypatch)
    assert metric(compare, "Measurements") == "5"  # the copy's artifact is a new row


def test_run_page_shows_a_failed_job(writable_workspace, monkeypatch):
    at = open_page(writable_workspace, monkeypatch, "run")
    at.text_input[0].set_value("no-such-delegate")
    next(b for b in at.button if b.label == "Benchmark").click().run()
    _wait_for_jobs(at, 60)
    assert any("failed (exit 2)" in e.value for e in at.error) and any("no-such-delegate" in c.value for c in at.code)


def _add_embedding_artifact(workspace: Path) -> Path:
    """A measured text-encoder artifact (manifest only: Compare and Detail read manifests, not model files)."""
    import json

    from pipeline.core.records import Measurement
    from pipeline.results import insert_measurement, open_store

    folder = workspace / "artifacts" / "minilm-l6-torch" / "executorch-int8"
    folder.mkdir(parents=True)
    validation = {"task": "embedding", "samples": 200, "passed": True, "failures": [],
                  "tolerances": {"min_cosine_mean": 0.99, "max_abs_error": None},
                  "headline": {"metric": "cosine_mean", "label": "cosine", "value": 0.9871},
                  "outputs": [{"name": "embedding", "kind": "embedding",
                               "metrics": {"cosine_mean": 0.9871, "cosine_min": 0.95, "sqnr_db": 17.2}}],
                  "top1_agreement": None, "artifact_accuracy": None, "source_accuracy": None,
                  "runtime": "executorch", "delegate": "xnnpack", "dataset": "sentences"}
    manifest = {"target": "executorch", "source": {"framework": "torch", "path": "models/minilm-l6-torch.pt2",
                                                   "task": "embedding"},
                "stages": [{"name": "quantize", "config": {"mode": "int8"}}], "size_bytes": 23_000_000,
                "size_bytes_gzip": 21_000_000, "validation": validation, "delegation": {},
                "input_signature": [{"name": n, "shape": [1, 128], "dtype": "int64", "layout": "NC"}
                                    for n in ("input_ids", "attention_mask")]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with open_store(workspace / "results.sqlite") as store:
        insert_measurement(store, Measurement(
            kind="measured", status="ok", artifact_dir=str(folder), manifest_sha256="0" * 64, target="executorch",
            runtime="executorch", delegate_requested="xnnpack", delegate_used="xnnpack", threads=1, device_profile="host",
            result={"latency_ms_p50": 30.0, "latency_ms_p90": 33.0, "latency_ms_mean": 31.0, "runs": 40}).to_json())
    return folder


def test_compare_shows_each_artifacts_task_metric_and_detail_its_outputs(writable_workspace, monkeypatch):
    _add_embedding_artifact(writable_workspace)
    at = open_page(writable_workspace, monkeypatch)
    board = at.dataframe[0].value.set_index("model")
    assert board.loc["minilm-l6-torch", "metric_value"] == "cosine 0.9871"  # two metrics listed: each says its own
    assert all(value.startswith("accuracy ") for value in board.drop("minilm-l6-torch")["metric_value"])
    assert charts(at) == 3 and not at.exception
    next(m for m in at.sidebar.multiselect if m.label == "Model").set_value(["minilm-l6-torch"]).run()
    assert at.dataframe[0].value["metric_value"].tolist() == [0.9871]  # one metric: a number, named by its label

    at = open_page(writable_workspace, monkeypatch, "detail", artifact="minilm-l6-torch/executorch-int8")
    assert metric(at, "Cosine") == "0.9871" and metric(at, "Validation") == "passed"
    outputs = next(d.value for d in at.dataframe if "output" in getattr(d.value, "columns", []))
    assert outputs.to_dict("records") == [{"output": "embedding", "kind": "embedding", "cosine_mean": 0.9871,
                                           "cosine_min": 0.95, "sqnr_db": 17.2}]
    bounds = next(d.value for d in at.dataframe if "tolerance" in getattr(d.value, "columns", []))
    assert dict(zip(bounds["tolerance"], bounds["bound"], strict=True)) == {"min_cosine_mean": "0.99", "max_abs_error": "-"}
    assert any("Per-class accuracy is for classifiers" in i.value for i in at.info) and not at.error
