"""`pipeline devices`: each profile's calibration status per precision on this host, `--check`, and the sweep's
start-of-run notice, on calibration records written into a temporary workspace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from device_runtime.profiles import PROFILES, Anchor, DeviceProfile
from pipeline.calibration import RECORD_VERSION, host_key
from pipeline.cli import main
from pipeline.cli.devices import check_rows
from pipeline.core.emulation import accuracy_rows, read_checks


def record(profile: str, precision: str, error: float, reason: str = "", host: str | None = None) -> dict[str, Any]:
    """A calibration record as pipeline.calibration writes it."""
    anchor = PROFILES.get(profile).anchor_for(precision)
    return {"version": RECORD_VERSION, "profile": profile, "precision": precision, "calibrated_from": precision,
            "host": host or host_key(), "calibrated_at": "2026-01-01T00:00:00Z", "anchor_model": anchor.model,
            "anchor_source": anchor.source, "published_ms": anchor.published_ms, "device_threads": anchor.threads,
            "host_threads": 1, "host_ms": 10.0, "active_fraction": 0.4,
            "emulated_ms": round(anchor.published_ms * (1 + error), 3), "prediction_error": error, "iterations": 3,
            "mechanism": "duty-cycle SIGSTOP/SIGCONT", "status": "calibrated" if abs(error) <= 0.10 else "uncalibrated",
            "reason": reason}


@pytest.fixture
def workspace(tmp_path) -> Path:
    """pixel-3a calibrated (+3.2%; int8 borrows fp32), rpi4 fp32 uncalibrated and int8 calibrated, rpi3 never
    calibrated, pixel-3a-1t calibrated on another machine."""
    stored = {"pixel-3a": {"fp32": record("pixel-3a", "fp32", 0.032)},
              "rpi4": {"fp32": record("rpi4", "fp32", -0.41, reason="the throttle cannot hold 41 ms on this host"),
                       "int8": record("rpi4", "int8", 0.05)},
              "pixel-3a-1t": {"fp32": record("pixel-3a-1t", "fp32", 0.01, host="another CPU x64")}}
    (tmp_path / "calibration.json").write_text(json.dumps(stored))
    return tmp_path


def lines_of(text: str) -> dict[str, str]:
    return {line.split()[0]: line for line in text.splitlines() if line and not line.startswith(("-", " "))}


def test_devices_lists_the_calibration_status_of_each_precision(workspace, capsys):
    assert main(["devices", "--workspace", str(workspace)]) == 0
    out = capsys.readouterr().out
    header, rows = out.splitlines()[0], lines_of(out)
    assert header.split()[-3:] == ["fp32", "int8", "anchors"]
    assert "calibrated (+3.2%)" in rows["pixel-3a"] and "calibrated from fp32 (+3.2%)" in rows["pixel-3a"]
    assert "!! UNCALIBRATED (-41%)" in rows["rpi4"] and "calibrated (+5.0%)" in rows["rpi4"]
    assert rows["rpi3"].count("not calibrated yet") == 2
    assert rows["pixel-3a-1t"].count("not calibrated yet") == 2  # a calibration of another host does not count
    assert rows["host"].count("measured (no throttle)") == 2
    warning = out[out.index("WARNING"):]
    assert "1 profile/precision pair(s) are UNCALIBRATED" in warning
    assert "!! rpi4 fp32: uncalibrated (-41%: the throttle cannot hold 41 ms on this host)" in warning
    assert "pixel-3a int8: no published int8 figure" in out  # borrowed calibrations say so under the table


def test_devices_without_calibrations_says_so_and_warns_of_nothing(tmp_path, capsys):
    assert main(["devices", "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "WARNING" not in out and "UNCALIBRATED" not in out
    assert lines_of(out)["rpi4"].count("not calibrated yet") == 2


def test_devices_json_carries_each_precisions_status(workspace, capsys):
    assert main(["devices", "--json", "--workspace", str(workspace)]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    rpi4 = listed["rpi4"]["calibration"]
    assert rpi4["fp32"]["status"] == "uncalibrated" and rpi4["fp32"]["prediction_error"] == -0.41
    assert rpi4["int8"]["text"] == "calibrated (+5.0%)"
    assert listed["pixel-3a"]["calibration"]["int8"]["calibrated_from"] == "fp32"
    assert listed["rpi3"]["calibration"]["fp32"]["status"] == "not calibrated yet"
    assert listed["rpi4"]["checks"]  # the profile's own fields are still there


def test_check_of_an_unknown_profile_exits_2_listing_the_profiles(tmp_path, capsys):
    assert main(["devices", "--check", "pixel-9", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Unknown device profile 'pixel-9'. Available: host, pixel-3a, pixel-3a-1t, rpi3, rpi4." in err
    assert not (tmp_path / "calibration-checks.json").exists()


def test_check_of_a_profile_without_published_points_runs_nothing(tmp_path, capsys):
    assert main(["devices", "--check", "host", "--workspace", str(tmp_path)]) == 0
    assert "host: no published check points" in capsys.readouterr().out


def test_check_results_print_and_feed_the_accuracy_table(workspace):
    from pipeline.calibration_checks import save_checks

    checks = [{"profile": "rpi4", "precision": "fp32", "model": "MobileNet v1 1.0 224", "runtime": "litert/xnnpack",
               "device_threads": 4, "host_threads": 2, "published_ms": 72.0, "emulated_ms": 80.64,
               "prediction_error": 0.12, "error_message": None, "host": host_key()},
              {"profile": "rpi4", "precision": "int8", "model": "MobileNet v1 1.0 224", "runtime": "litert/xnnpack",
               "device_threads": 4, "host_threads": 2, "published_ms": 29.0, "emulated_ms": None,
               "prediction_error": None, "error_message": "failed: worker crashed", "host": host_key()}]
    save_checks(workspace, "rpi4", checks)
    table = check_rows(read_checks(workspace)["rpi4"])
    assert "72.0" in table and "80.64" in table and "+12.0%" in table and "off by more than 10%" in table
    assert "failed: worker crashed" in table and "2 (device 4)" in table
    from pipeline.core.emulation import read_calibrations

    rows = accuracy_rows(read_calibrations(workspace), read_checks(workspace))
    rpi4 = [(r["precision"], r["point"], r["flagged"]) for r in rows if r["profile"] == "rpi4"]
    assert rpi4 == [("fp32", "anchor", True), ("int8", "anchor", False), ("fp32", "check", True), ("int8", "check", True)]


def test_the_sweep_names_the_uncalibrated_profiles_it_will_use(workspace):
    from pipeline.sweep.calibration_notice import announce_calibration, emulated_pairs
    from pipeline.sweep.plan import build_plan
    from pipeline.sweep.recipe import parse_recipe

    recipe = parse_recipe({
        "version": 1, "name": "tiny", "models": [{"zoo": "digits-cnn", "frameworks": ["torch"]}],
        "variants": [{"name": "fp32", "quantize": "none"}, {"name": "int8", "quantize": "int8"}],
        "targets": ["tflite"], "runtimes": [{"target": "tflite", "runtime": "litert", "delegate": "xnnpack"}],
        "devices": ["host", "rpi4", "pixel-3a", "rpi3"]})
    plan = build_plan(recipe)
    assert emulated_pairs(plan) == [(d, p) for d in ("pixel-3a", "rpi3", "rpi4") for p in ("fp32", "int8")]
    said: list[str] = []
    announce_calibration(plan, workspace, said.append)
    assert len(said) == 3  # pixel-3a fp32 and rpi4 int8 are calibrated: nothing to say
    assert said[0].startswith("pixel-3a int8: calibrated from fp32 (+3.2%: no published int8 figure")
    assert said[1].startswith("UNCALIBRATED rpi4 fp32: uncalibrated (-41%: the throttle cannot hold")
    assert "'uncalibrated' badge" in said[1]
    assert said[2].startswith("not calibrated yet on this host: rpi3 fp32, rpi3 int8; each is calibrated")


@pytest.mark.slow
def test_a_check_runs_its_model_through_the_harness_under_the_calibration(tmp_path):
    """A real check: MobileNet v3 Large exported to .tflite and measured under a stored calibration (run share 1)."""
    from pipeline.calibration_checks import run_checks

    anchor = PROFILES.get("pixel-3a-1t").anchor
    check = Anchor("MobileNet v3 Large 224", 1, 44.0, "test point")
    profile = DeviceProfile("test-phone", "a test profile", cores=1, threads=1, memory_mb=None,
                            delegates=("xnnpack",), anchors=(anchor,), checks=(check,))
    stored = {**record("pixel-3a-1t", "fp32", 0.0), "profile": "test-phone", "active_fraction": 1.0}
    (tmp_path / "calibration.json").write_text(json.dumps({"test-phone": {"fp32": stored}}))
    results = run_checks(tmp_path, profile, out=lambda line: None)
    assert len(results) == 1 and results[0]["error_message"] is None, results
    emulated = results[0]["emulated_ms"]
    assert emulated > 0 and results[0]["prediction_error"] == pytest.approx((emulated - 44.0) / 44.0, abs=1e-3)
    assert results[0]["calibration_status"] == "calibrated" and results[0]["active_fraction"] == 1.0
    assert read_checks(tmp_path)["test-phone"] == results
