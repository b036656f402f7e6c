"""The app's emulation marks without Streamlit: the calibration badge beside emulated figures, the warning over
uncalibrated rows, the int8 note, and chart markers that keep measured and emulated rows apart."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from demo_app.emulation import (
    CALIBRATED_LABEL,
    MEASURED_LABEL,
    UNCALIBRATED_LABEL,
    int8_notes,
    measurement_badge,
    uncalibrated_warning,
    with_emulation,
)
from pipeline.core.records import Measurement
from pipeline.results import insert_measurement, open_store, record_export

AVX2_ONLY = {"machine": "x86_64", "vector": ["AVX2"], "int8_dot_product": [], "has_int8_dot_product": False}
CALIBRATED = {"profile": "pixel-3a", "precision": "fp32", "calibrated_from": "fp32", "prediction_error": 0.032,
              "status": "calibrated", "reason": "", "active_fraction": 0.3}
UNCALIBRATED = {"profile": "rpi4", "precision": "int8", "calibrated_from": "int8", "prediction_error": -0.41,
                "status": "uncalibrated", "reason": "the throttle cannot hold 20 ms on this host", "active_fraction": 0.1}
# (variant, device, kind, p50 ms, context)
ROWS = [("fp32", "host", "measured", 1.0, {"int8_features": AVX2_ONLY}),
        ("int8", "host", "measured", 1.9, {"int8_features": AVX2_ONLY}),
        ("fp32", "pixel-3a", "emulated", 9.0, {"calibration": CALIBRATED}),
        ("int8", "rpi4", "emulated", 11.0, {"calibration": UNCALIBRATED})]


@pytest.fixture
def board(tmp_path) -> pd.DataFrame:
    """The leaderboard of a store holding one model's fp32 and int8 artifacts, measured and emulated."""
    from demo_app.config import Workspace
    from demo_app.data import load_leaderboard

    with open_store(tmp_path / "results.sqlite") as store:
        for variant in ("fp32", "int8"):
            folder = tmp_path / "artifacts" / "digits-cnn-torch" / f"tflite-{variant}"
            folder.mkdir(parents=True)
            stages = [] if variant == "fp32" else [{"name": "quantize", "config": {"mode": "int8"}}]
            (folder / "manifest.json").write_text(json.dumps({
                "target": "tflite", "source": {"framework": "torch", "path": "models/digits-cnn.pt2"}, "stages": stages,
                "size_bytes": 1000, "size_bytes_gzip": 500, "validation": {"passed": True, "artifact_accuracy": 0.97}}))
            record_export(store, {"key": variant, "model": "digits-cnn", "framework": "torch", "variant": variant,
                                  "target": "tflite", "status": "ok", "artifact_dir": str(folder)})
        for variant, device, kind, p50, context in ROWS:
            insert_measurement(store, Measurement(
                kind=kind, status="ok", artifact_dir=str(tmp_path / "artifacts" / "digits-cnn-torch" / f"tflite-{variant}"),
                manifest_sha256="0" * 64, target="tflite", runtime="litert", delegate_requested="xnnpack",
                delegate_used="xnnpack", threads=1, device_profile=device,
                result={"latency_ms_p50": p50, "latency_ms_p90": p50 * 1.1, "runs": 50}, context=context).to_json())
    return load_leaderboard(Workspace(Path(tmp_path)))


def by_device(frame: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    return {(row["device"], row["variant"]): row for _, row in frame.iterrows()}


def test_emulated_rows_get_their_badge_and_marker(board):
    rows = by_device(with_emulation(board))
    assert rows[("host", "fp32")]["calibration_badge"] == "measured"
    assert rows[("host", "fp32")]["emulation"] == MEASURED_LABEL
    assert rows[("pixel-3a", "fp32")]["calibration_badge"] == "calibrated (+3.2%)"
    assert rows[("pixel-3a", "fp32")]["emulation"] == CALIBRATED_LABEL
    assert rows[("rpi4", "int8")]["calibration_badge"] == "\u26a0 UNCALIBRATED (-41%)"
    assert rows[("rpi4", "int8")]["emulation"] == UNCALIBRATED_LABEL


def test_the_warning_names_uncalibrated_rows_and_their_reason(board):
    frame = with_emulation(board)
    warning = uncalibrated_warning(frame)
    assert warning.startswith("1 emulated row(s) are UNCALIBRATED")
    assert "rpi4 int8: the throttle cannot hold 20 ms on this host" in warning
    assert uncalibrated_warning(frame[frame["device"] != "rpi4"]) is None
    assert uncalibrated_warning(with_emulation(pd.DataFrame())) is None


def test_int8_notes_say_why_int8_is_slower_here(board):
    notes = int8_notes(board)
    assert len(notes) == 1  # the host's int8 row and the emulated rpi4 int8 row say the same, once
    assert notes[0].startswith("digits-cnn-torch/tflite-int8 (litert/xnnpack): int8 slower than fp32 on this host: "
                               "x86_64 AVX2 without an int8 dot product (VNNI/AMX)")
    assert by_device(board)[("rpi4", "int8")]["int8_note"] == by_device(board)[("host", "int8")]["int8_note"]
    assert int8_notes(board[board["variant"] == "fp32"]) == []


def test_a_stored_measurement_gets_the_same_badge():
    assert measurement_badge("measured", "{}") == "measured"
    assert measurement_badge("emulated", json.dumps({"calibration": CALIBRATED})) == "calibrated (+3.2%)"
    assert measurement_badge("emulated", json.dumps({"calibration": UNCALIBRATED})) == "\u26a0 UNCALIBRATED (-41%)"
    assert measurement_badge("emulated", None).startswith("\u26a0 UNCALIBRATED")  # never calibrated


def test_charts_shape_measured_and_emulated_rows_apart_with_a_legend(board):
    from demo_app.charts import latency_chart, pareto_chart

    frame = board.assign(latency_ms_min=None, latency_ms_max=None, latency_ms_p99=None, runs=50)
    for chart in (pareto_chart(frame), latency_chart(frame)):
        spec = json.dumps(chart.to_dict())
        assert '"field": "emulation"' in spec and '"title": "measured / emulated"' in spec
        assert all(label in spec for label in (MEASURED_LABEL, CALIBRATED_LABEL, UNCALIBRATED_LABEL))
