"""The app's plain modules without Streamlit: launch command, input preprocessing, jobs, leaderboard data."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demo_app import launch
from demo_app.config import Workspace, workspace_from_args
from demo_app.images import ImageInputError, InputSpec, decode, from_canvas, prepare
from demo_app.jobs import Job


def test_launch_runs_streamlit_on_the_workspace_and_returns_its_exit_code(tmp_path, monkeypatch):
    command = launch.app_command(tmp_path, 8600)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("demo_app/app.py")
    assert command[command.index("--server.port") + 1] == "8600" and "--server.headless" in command
    assert command[-3:] == ["--", "--workspace", str(tmp_path.resolve())]
    seen = {}

    def fake(workspace, port, address):
        seen["address"] = address
        return [sys.executable, "-c", "raise SystemExit(3)"]

    monkeypatch.setattr(launch, "app_command", fake)
    assert launch.launch(tmp_path, 8600) == 3
    assert seen["address"] == "127.0.0.1"  # loopback unless `pipeline app --host` says otherwise


def test_workspace_comes_from_the_arguments_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_APP_WORKSPACE", str(tmp_path / "env"))
    assert workspace_from_args(["--workspace", str(tmp_path / "arg")]).root == tmp_path / "arg"
    assert workspace_from_args(["--other", "x"]).store == tmp_path / "env" / "results.sqlite"


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("layout,shape", [("NCHW", (1, 1, 8, 8)), ("NHWC", (1, 8, 8, 1))])
def test_a_photo_of_a_stroke_becomes_a_centred_bright_on_dark_input(layout, shape):
    spec = InputSpec.from_manifest({"input_signature": [{"shape": [None, *shape[1:]], "layout": layout}]})
    paper = np.full((120, 100), 250)
    paper[20:100, 45:55] = 10  # a dark vertical stroke: a "1"
    x = prepare(decode(_png(paper), spec), spec)
    assert x.shape == shape and x.dtype == np.float32 and x.max() == pytest.approx(1.0) and x.min() >= 0
    image = x.reshape(8, 8)
    assert image[:, 3:5].mean() > 0.8 and image[:, :2].max() == 0 and image[:, 6:].max() == 0


def test_a_transparent_drawing_uses_its_strokes():
    spec = InputSpec(8, 8, 1, "NCHW")
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[8:56, 28:36] = 255
    assert from_canvas(rgba, spec).reshape(8, 8)[:, 3:5].mean() > 0.8


@pytest.mark.parametrize("content,message", [(b"", "empty"), (b"GIF89a-broken", "not an image"),
                                             (_png(np.zeros((3000, 1000))), "aspect")],
                         ids=["empty", "not-an-image", "wrong-aspect"])
def test_bad_images_are_explained(content, message):
    with pytest.raises(ImageInputError, match=message):
        decode(content, InputSpec(8, 8, 1, "NCHW"))


def test_a_job_runs_its_steps_in_the_background_and_reports_progress(tmp_path):
    steps = [[sys.executable, "-c", "print('[ 1/4] export a: ok'); print('[ 2/4] bench a: ok')"],
             [sys.executable, "-c", "raise SystemExit(5)"], [sys.executable, "-c", "print('never')"]]
    job = Job("demo", steps, tmp_path / "job.log").start(tmp_path)
    deadline = time.monotonic() + 30
    while job.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not job.running and job.returncode == 5 and not job.ok
    assert job.progress() == 0.5 and "never" not in job.tail() and job.tail().endswith("[exit 5]")


def test_reading_a_missing_workspace_creates_nothing(tmp_path):
    from demo_app.data import discover_artifacts, load_leaderboard

    workspace = Workspace(tmp_path / "none")
    assert load_leaderboard(workspace).empty and discover_artifacts(workspace) == []
    assert not Path(tmp_path / "none").exists()


def _board(rows: list[tuple[str, str, float | None]]) -> pd.DataFrame:
    """Leaderboard rows (model, metric label, value) as pipeline.leaderboard gives them, with the app's columns."""
    return pd.DataFrame([{"model": model, "device": "host", "metric": metric, "metric_value": value, "p50_ms": 1.0 + i,
                          "size_bytes": 1000 * (i + 1), "target": "tflite", "pareto": True, "artifact": f"{model}/{i}",
                          "runtime_delegate": "litert/xnnpack"} for i, (model, metric, value) in enumerate(rows)])


def test_the_pareto_chart_gives_each_task_metric_its_own_panel_and_axis():
    from demo_app.charts import pareto_chart

    spec = pareto_chart(_board([("digits", "accuracy", 0.97), ("digits", "accuracy", 0.95), ("minilm", "cosine", 0.999),
                                ("minilm", "cosine", None), ("head", "SQNR dB", 38.0)])).to_dict()
    panels = spec["hconcat"]
    assert [p["title"] for p in panels] == ["accuracy", "cosine", "SQNR dB"]
    for panel in panels:
        label = panel["title"]
        assert all(layer["encoding"]["y"]["title"] == f"{label} (validation)" for layer in panel["layer"])
        rows = spec["datasets"][panel.get("data", panel["layer"][1].get("data", {})).get("name")]
        assert {row["metric"] for row in rows} == {label} and all(row["metric_value"] is not None for row in rows)
    formats = {p["title"]: p["layer"][1]["encoding"]["y"]["axis"]["format"] for p in panels}
    assert formats == {"accuracy": ".1%", "cosine": ".4f", "SQNR dB": ".3g"}
    single = pareto_chart(_board([("digits", "accuracy", 0.97), ("digits", "accuracy", 0.95)])).to_dict()
    assert "hconcat" not in single and single["layer"][1]["encoding"]["y"]["title"] == "accuracy (validation)"
