"""The report marks every emulated figure with its row's calibration status, flags uncalibrated rows, tables the
emulation's accuracy, draws emulated and measured rows differently, and says why int8 can lose to fp32 here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.records import Measurement
from pipeline.report import load_entries, render_html, render_markdown, write_report
from pipeline.results import insert_measurement, open_store, record_export

AVX2_ONLY = {"machine": "x86_64", "vector": ["AVX2"], "int8_dot_product": [], "has_int8_dot_product": False}


def calibration(profile: str, precision: str, error: float, calibrated_from: str | None = None,
                reason: str = "") -> dict[str, Any]:
    return {"version": 2, "profile": profile, "precision": precision, "calibrated_from": calibrated_from or precision,
            "host": "test CPU x2", "anchor_model": "MobileNet v2 1.0 224", "published_ms": 28.0,
            "emulated_ms": round(28.0 * (1 + error), 3), "active_fraction": 0.3, "prediction_error": error,
            "mechanism": "duty-cycle SIGSTOP/SIGCONT", "status": "calibrated" if abs(error) <= 0.10 else "uncalibrated",
            "reason": reason}


PIXEL_FP32 = calibration("pixel-3a", "fp32", 0.032)
PIXEL_INT8 = calibration("pixel-3a", "int8", 0.032, "fp32", "no published int8 latency for the pixel-3a device class")
RPI4_INT8 = calibration("rpi4", "int8", -0.41, reason="the throttle cannot hold 20 ms on this host")

# (variant, device, kind, p50 ms, context)
ROWS = [
    ("fp32", "host", "measured", 1.0, {"int8_features": AVX2_ONLY}),
    ("int8", "host", "measured", 1.9, {"int8_features": AVX2_ONLY}),  # slower than fp32 here
    ("fp32", "pixel-3a", "emulated", 9.0, {"calibration": PIXEL_FP32}),
    ("int8", "pixel-3a", "emulated", 17.0, {"calibration": PIXEL_INT8}),
    ("fp32", "rpi4", "emulated", 12.0, {"calibration": None}),  # stored before calibration existed
    ("int8", "rpi4", "emulated", 11.0, {"calibration": RPI4_INT8}),
]


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A results store of one model's fp32 and int8 artifacts on the host and two emulated profiles, with the
    workspace's calibration.json and calibration-checks.json."""
    with open_store(tmp_path / "results.sqlite") as store:
        for variant in ("fp32", "int8"):
            folder = tmp_path / "artifacts" / "digits-cnn-torch" / f"tflite-{variant}"
            folder.mkdir(parents=True)
            stages = [] if variant == "fp32" else [{"name": "quantize", "config": {"mode": "int8"}}]
            (folder / "manifest.json").write_text(json.dumps({
                "target": "tflite", "source": {"framework": "torch", "path": "models/digits-cnn.pt2"}, "stages": stages,
                "size_bytes": 100_000 if variant == "fp32" else 30_000, "size_bytes_gzip": 50_000,
                "validation": {"passed": True, "artifact_accuracy": 0.97, "top1_agreement": 1.0}}))
            record_export(store, {"key": variant, "model": "digits-cnn", "framework": "torch", "variant": variant,
                                  "target": "tflite", "status": "ok", "artifact_dir": str(folder)})
        for variant, device, kind, p50, context in ROWS:
            folder = tmp_path / "artifacts" / "digits-cnn-torch" / f"tflite-{variant}"
            insert_measurement(store, Measurement(
                kind=kind, status="ok", artifact_dir=str(folder), manifest_sha256="0" * 64, target="tflite",
                runtime="litert", delegate_requested="xnnpack", delegate_used="xnnpack", threads=1,
                device_profile=device, result={"latency_ms_p50": p50, "latency_ms_p90": p50 * 1.1, "runs": 50},
                context={"inputs": "eval.npz", **context}).to_json())
    (tmp_path / "calibration.json").write_text(json.dumps({
        "pixel-3a": {"fp32": PIXEL_FP32}, "rpi4": {"int8": RPI4_INT8}}))
    (tmp_path / "calibration-checks.json").write_text(json.dumps({"pixel-3a": [
        {"profile": "pixel-3a", "precision": "fp32", "model": "MobileNet v1 1.0 224", "runtime": "litert/xnnpack",
         "published_ms": 46.0, "emulated_ms": 49.68, "prediction_error": 0.08, "error_message": None}]}))
    return tmp_path


def entries_by(workspace: Path) -> dict[tuple[str, str], Any]:
    return {(e.device, e.variant): e for e in load_entries(workspace / "results.sqlite")}


def test_each_row_carries_its_calibration_status_and_the_int8_note(workspace):
    entries = entries_by(workspace)
    assert entries[("host", "fp32")].calibration == "measured" and not entries[("host", "fp32")].flagged
    pixel = entries[("pixel-3a", "fp32")]
    assert (pixel.calibration, pixel.calibration_error, pixel.calibration_text) == ("calibrated", 0.032, "calibrated (+3.2%)")
    assert entries[("pixel-3a", "int8")].calibration_text == "calibrated from fp32 (+3.2%)"
    assert entries[("pixel-3a", "int8")].precision == "int8" and not entries[("pixel-3a", "int8")].flagged
    assert entries[("rpi4", "int8")].flagged and entries[("rpi4", "int8")].calibration_text == "uncalibrated (-41%)"
    assert entries[("rpi4", "fp32")].flagged and "no calibration stored" in entries[("rpi4", "fp32")].calibration_reason
    note = "int8 slower than fp32 on this host: x86_64 AVX2 without an int8 dot product (VNNI/AMX)"
    assert entries[("host", "int8")].int8_note.startswith(note) and "1.9 ms int8 vs 1 ms fp32" in entries[("host", "int8")].int8_note
    assert entries[("pixel-3a", "int8")].int8_note.startswith(note)
    assert "keeps the host's int8/fp32 ratio" in entries[("pixel-3a", "int8")].int8_note  # borrowed fp32 throttle
    assert "keeps the host's" not in entries[("rpi4", "int8")].int8_note  # its own int8 anchor
    assert not entries[("host", "fp32")].int8_note and not entries[("pixel-3a", "fp32")].int8_note


def test_no_int8_note_where_int8_is_faster_on_the_host(workspace):
    from dataclasses import replace

    from pipeline.report import int8_notes

    entries = load_entries(workspace / "results.sqlite")
    faster = [replace(e, p50_ms=0.5) if (e.device, e.variant) == ("host", "int8") else e for e in entries]
    assert int8_notes(faster, {}) == {}


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {part.splitlines()[0].split(" (")[0]: part for part in parts}


def test_markdown_puts_the_status_beside_emulated_figures_and_tables_the_accuracy(workspace):
    entries = load_entries(workspace / "results.sqlite")
    from pipeline.core.emulation import accuracy_rows, read_calibrations, read_checks

    text = render_markdown(entries, accuracy_rows(read_calibrations(workspace), read_checks(workspace)))
    assert text.splitlines()[2].startswith("**\u26a0 2 emulated row(s) are UNCALIBRATED (rpi4 fp32, rpi4 int8)")
    sections = _sections(text)
    accuracy = sections["Emulation accuracy"]
    assert "| pixel-3a | fp32 | anchor | MobileNet v2 1.0 224 | litert/xnnpack | 28 | 28.896 | +3.2% | calibrated (+3.2%) |" in accuracy
    assert "| pixel-3a | fp32 | check | MobileNet v1 1.0 224 | litert/xnnpack | 46 | 49.68 | +8.0% | within 10% |" in accuracy
    assert "| rpi4 | int8 | anchor |" in accuracy and "uncalibrated (-41%: the throttle cannot hold" in accuracy
    host = sections["digits-cnn on host"]
    assert "calibration" not in host.splitlines()[2]  # measured only: no calibration column
    assert "int8 slower than fp32 on this host: x86_64 AVX2 without an int8 dot product (VNNI/AMX)" in host
    pixel = sections["digits-cnn on pixel-3a"]
    header = pixel.splitlines()[2].split(" | ")
    assert header[6:9] == ["p50 ms", "p90 ms", "calibration"]  # the status sits beside the figures
    assert "| 9.0000 | 9.9000 | calibrated (+3.2%) |" in pixel
    assert "| 17.0000 | 18.7000 | calibrated from fp32 (+3.2%) |" in pixel
    assert "calibration pixel-3a int8: no published int8 latency" in pixel
    rpi4 = [s for name, s in sections.items() if name.startswith("digits-cnn on rpi4")][0]
    assert rpi4.splitlines()[0].endswith("\u26a0 UNCALIBRATED emulation")
    assert "| 11.0000 \u26a0 | 12.1000 \u26a0 | **\u26a0 uncalibrated (-41%)** |" in rpi4
    assert "calibration rpi4 int8: the throttle cannot hold 20 ms on this host" in rpi4


def test_html_badges_uncalibrated_rows_and_draws_emulated_rows_as_other_markers(workspace):
    page = render_html(load_entries(workspace / "results.sqlite"))
    assert "class='banner'" in page and "Emulation accuracy" not in page  # no accuracy rows given
    groups = {m.group(1): m.group(0) for m in re.finditer(r"<h2>digits-cnn on (\S+) .*?(?=<h2>|</body>)", page, re.S)}
    host, pixel, rpi4 = groups["host"], groups["pixel-3a"], groups["rpi4"]
    assert set(re.findall(r'data-kind="([^"]+)"', host)) == {"measured"} and "<circle" in host
    assert set(re.findall(r'data-kind="([^"]+)"', pixel)) == {"emulated"} and "<circle" not in pixel
    assert set(re.findall(r'data-kind="([^"]+)"', rpi4)) == {"emulated-uncalibrated"}
    assert 'stroke-dasharray="4 2"' in rpi4 and "stroke-dasharray" not in pixel
    for group in groups.values():  # the legend names every marker
        assert "&#9679; measured" in group and "&#9670; emulated (calibrated)" in group and "uncalibrated (hollow" in group
    assert "<span class='badge'>uncalibrated</span>" in rpi4.split("</h2>")[0]
    assert len(re.findall(r"<tr class='[^']*flagged'>", rpi4)) == 2 and "<span class='badge'>uncalibrated</span> uncalibrated (-41%)" in rpi4
    assert "class='badge'" not in pixel and "<td>calibrated (+3.2%)</td>" in pixel
    assert re.search(r"<title>[^<]*emulated \(uncalibrated \(-41%\)\)", rpi4)  # the tooltip says it too
    assert "int8 slower than fp32 on this host" in host


def test_write_report_reads_the_workspace_calibrations(workspace):
    html_path, md_path = write_report(workspace / "results.sqlite", workspace / "report")
    page, text = html_path.read_text(), md_path.read_text()
    assert "<h2 id='emulation-accuracy'>Emulation accuracy</h2>" in page and "## Emulation accuracy" in text
    assert page.count("<tr class=flagged>") == 1  # rpi4 int8's anchor; pixel-3a's check is within 10%
    (workspace / "calibration.json").unlink()
    (workspace / "calibration-checks.json").unlink()
    html_path, md_path = write_report(workspace / "results.sqlite", workspace / "report")
    assert "Emulation accuracy" not in md_path.read_text()
