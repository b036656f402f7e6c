"""Per-precision throttle calibration: the search, the record, precision selection and the fp32 fallback."""

import dataclasses
import json
import random
from pathlib import Path

import pytest

from device_runtime.profiles import PROFILES, Anchor, DeviceProfile
from device_runtime.throttle import throttle_mechanism
from pipeline.calibration import (
    CALIBRATION_TOLERANCE,
    MAX_MEASUREMENTS,
    browser_calibration_for,
    browser_key,
    calibrate,
    calibrate_browser,
    calibration_for,
    calibration_for_artifact,
    host_key,
    precision_of,
    search_fraction,
    stored_browser_calibration,
)
from pipeline.core.errors import ConfigError

MECHANISMS = {"cgroup-v2 cpu.max", "cgroup-v1 cpu.cfs_quota_us", "duty-cycle SIGSTOP/SIGCONT", "none"}
INTERFACE_KEYS = {"profile", "precision", "host", "calibrated_at", "anchor_model", "anchor_source", "published_ms",
                  "device_threads", "host_threads", "host_ms", "active_fraction", "emulated_ms", "prediction_error",
                  "iterations", "mechanism", "status", "reason", "calibrated_from"}


def throttled(cpu_ms: float, overhead_ms: float = 0.0, noise: float = 0.0, seed: int = 0):
    """A stand-in for the anchor measurement: p50 = cpu_ms / fraction (+ overhead under a throttle), with noise."""
    rng = random.Random(seed)
    calls = []

    def measure(fraction: float) -> float:
        calls.append(fraction)
        ms = cpu_ms / fraction + (overhead_ms if fraction < 1 else 0.0)
        return ms * (1 + rng.uniform(-noise, noise))

    measure.calls = calls
    return measure


def stage(mode: str) -> dict:
    return {"name": "quantize", "config": {"mode": mode}}


@pytest.mark.parametrize("stages,expected", [
    ([], "fp32"), ([stage("none")], "fp32"), ([stage("int8")], "int8"), ([stage("qat-int8")], "int8"),
    ([stage("dynamic-int8")], "int8"), ([{"name": "prune", "config": {"stage": "prune", "sparsity": 0.5}},
                                         stage("int8")], "int8"),
    ([stage("fp16")], "fp16"), ([stage("weight-int8")], "fp32"), ([stage("uint8")], "fp32"),
])
def test_precision_of_reads_the_quantization_stage(stages, expected):
    assert precision_of({"stages": stages}) == expected


def test_precision_of_a_bare_model_file_is_fp32():
    assert precision_of(None) == "fp32"


def test_search_converges_where_one_proportional_step_misses():
    measure = throttled(cpu_ms=7.0, overhead_ms=9.0)  # 7/f + 9: the first guess f = 7/55 lands 16% high
    search = search_fraction(measure, 55.0)
    assert search.converged and abs(search.error) <= CALIBRATION_TOLERANCE
    assert 2 < len(search.points) <= MAX_MEASUREMENTS and measure.calls[0] == 1.0
    assert abs(search.points[1][1] - 55.0) / 55.0 > CALIBRATION_TOLERANCE  # the old one-step answer was off


def test_search_converges_through_measurement_noise():
    for seed in range(20):
        search = search_fraction(throttled(cpu_ms=12.0, overhead_ms=4.0, noise=0.04, seed=seed), 79.0)
        assert search.converged, (seed, search.points)
        assert len(search.points) <= MAX_MEASUREMENTS


def test_host_slower_than_device_stops_after_one_measurement():
    search = search_fraction(throttled(cpu_ms=80.0), 55.0)
    assert not search.converged and search.fraction == 1.0 and len(search.points) == 1
    assert search.why == "host slower than the device" and search.error == pytest.approx(25 / 55)


def test_unreachable_target_gives_up_within_the_budget():
    def jumpy(fraction: float) -> float:  # the latency jumps across 55 ms: no run share lands within 10%
        return 8.0 if fraction == 1.0 else (40.0 if fraction >= 0.2 else 75.0)

    search = search_fraction(jumpy, 55.0)
    assert not search.converged and len(search.points) <= MAX_MEASUREMENTS and search.why
    assert abs(search.error) == pytest.approx(min(abs(40 - 55), abs(75 - 55)) / 55)


def test_calibration_record_has_the_shared_fields(tmp_path):
    record = calibrate(tmp_path, PROFILES.get("pixel-3a-1t"), "fp32", measure=throttled(7.0, 3.0))
    assert set(record) >= INTERFACE_KEYS
    assert record["status"] == "calibrated" and record["reason"] == "" and record["calibrated_from"] == "fp32"
    assert record["mechanism"] in MECHANISMS and record["mechanism"] == throttle_mechanism(0.5)
    assert record["iterations"] == len(record["measurements"]) and record["host"] == host_key()
    assert abs(record["emulated_ms"] - 55.0) / 55.0 <= 0.10 and record["active_fraction"] < 1
    assert "XNNPACK" in record["anchor_source"]
    json.dumps(record)  # stored as JSON


def test_uncalibrated_record_says_why(tmp_path):
    record = calibrate(tmp_path, PROFILES.get("rpi4"), "int8", measure=throttled(30.0))  # device: 20 ms
    assert record["status"] == "uncalibrated" and record["active_fraction"] == 1.0 and record["mechanism"] == "none"
    assert "slower than the device" in record["reason"] and record["prediction_error"] == pytest.approx(0.5)
    if record["host_threads"] < 4:  # a host with fewer cores than the board says so
        assert "the device runs 4 threads" in record["reason"]


def test_profile_without_an_anchor_of_that_precision_cannot_be_calibrated(tmp_path):
    with pytest.raises(ConfigError, match="pixel-3a has no int8 anchor"):
        calibrate(tmp_path, PROFILES.get("pixel-3a"), "int8", measure=throttled(7.0))
    assert calibration_for(tmp_path, PROFILES.get("host")) is None


def _store(workspace: Path, *records: dict) -> None:
    stored: dict = {}
    for record in records:
        stored.setdefault(record["profile"], {})[record["precision"]] = record
    (workspace / "calibration.json").write_text(json.dumps(stored))


def test_int8_without_a_published_figure_falls_back_to_fp32_with_the_reason(tmp_path):
    fp32 = calibrate(tmp_path, PROFILES.get("pixel-3a"), "fp32", measure=throttled(7.0, 2.0))
    _store(tmp_path, fp32)
    for precision in ("int8", "fp16"):
        record = calibration_for(tmp_path, PROFILES.get("pixel-3a"), precision)
        assert record["precision"] == precision and record["calibrated_from"] == "fp32"
        assert record["active_fraction"] == fp32["active_fraction"] and record["status"] == fp32["status"]
        assert f"no published {precision} latency" in record["reason"]
    assert calibration_for(tmp_path, PROFILES.get("pixel-3a"), "fp32") == fp32  # stored, not re-measured


def test_each_precision_gets_its_own_fraction(tmp_path):
    profile = PROFILES.get("rpi4")
    fp32 = calibrate(tmp_path, profile, "fp32", measure=throttled(12.0))
    int8 = calibrate(tmp_path, profile, "int8", measure=throttled(4.0))
    _store(tmp_path, fp32, int8)
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "manifest.json").write_text(json.dumps({"stages": [stage("int8")]}))
    chosen = calibration_for_artifact(tmp_path, profile, artifact)
    assert chosen["precision"] == chosen["calibrated_from"] == "int8" and chosen["published_ms"] == 20.0
    assert chosen["active_fraction"] != fp32["active_fraction"]
    bare = tmp_path / "model.tflite"
    bare.write_bytes(b"")
    assert calibration_for_artifact(tmp_path, profile, bare)["precision"] == "fp32"
    with pytest.raises(ConfigError, match="Unknown precision 'int4'"):
        calibration_for(tmp_path, profile, "int4")


def test_every_emulated_profile_has_a_cited_fp32_anchor_and_a_check():
    for name in ("pixel-3a", "pixel-3a-1t", "rpi4", "rpi3"):
        profile = PROFILES.get(name)
        assert profile.anchors[0] is profile.anchor and profile.anchor.precision == "fp32"
        assert profile.checks and all("XNNPACK README" in point.source for point in profile.anchors + profile.checks)
    assert PROFILES.get("rpi4").anchor_for("int8").published_ms == 20.0
    assert PROFILES.get("rpi3").anchor_for("int8").published_ms == 30.0
    assert PROFILES.get("pixel-3a").anchor_for("int8") is None


def test_profile_anchors_are_validated():
    fp32 = Anchor("m", 1, 10.0, "s")
    int8 = Anchor("m", 1, 5.0, "s", "int8")
    with pytest.raises(ConfigError, match="the first anchor must be the fp32 one"):
        DeviceProfile("x", "x", 1, 1, None, ("xnnpack",), anchors=(int8, fp32))
    with pytest.raises(ConfigError, match="one anchor per precision"):
        DeviceProfile("x", "x", 1, 1, None, ("xnnpack",), anchors=(fp32, fp32))
    with pytest.raises(ConfigError, match="precision must be one of"):
        Anchor("m", 1, 10.0, "s", "int4")


@pytest.mark.slow
def test_real_calibration_of_pixel_3a_1t_fp32(tmp_path):
    profile = PROFILES.get("pixel-3a-1t")
    record = calibration_for(tmp_path, profile, "fp32")
    assert record["mechanism"] == throttle_mechanism(0.5) and record["iterations"] <= MAX_MEASUREMENTS
    assert record["active_fraction"] < 1 and record["emulated_ms"] > 2 * record["host_ms"]  # this host is faster
    if record["status"] == "calibrated":
        assert abs(record["prediction_error"]) <= CALIBRATION_TOLERANCE
    else:
        assert record["reason"]
    stored = json.loads((tmp_path / "calibration.json").read_text())
    assert stored["pixel-3a-1t"]["fp32"]["calibrated_at"] == record["calibrated_at"]


# --- the browser's DevTools rate ----------------------------------------------------------------------------------

DEVTOOLS = "devtools Emulation.setCPUThrottlingRate"


def test_browser_calibration_record_has_the_shared_fields_and_its_rate(tmp_path):
    record = calibrate_browser(tmp_path, PROFILES.get("pixel-3a-1t"), measure=throttled(20.0, 4.0))
    assert set(record) >= INTERFACE_KEYS and record["runtime"] == "tfjs-browser/wasm"
    assert record["status"] == "calibrated" and record["mechanism"] == DEVTOOLS and record["reason"] == ""
    assert record["cpu_throttling_rate"] == pytest.approx(1 / record["active_fraction"], rel=1e-3)
    assert record["cpu_throttling_rate"] > 1 and abs(record["emulated_ms"] - 55.0) / 55.0 <= CALIBRATION_TOLERANCE
    assert [m["cpu_throttling_rate"] for m in record["measurements"]][0] == 1.0
    json.dumps(record)


def test_browser_slower_than_the_device_stays_uncalibrated_with_the_reason(tmp_path):
    record = calibrate_browser(tmp_path, PROFILES.get("pixel-3a-1t"), measure=throttled(70.0))  # device: 55 ms
    assert record["status"] == "uncalibrated" and record["cpu_throttling_rate"] == 1.0 and record["mechanism"] == "none"
    assert "XNNPACK native code" in record["reason"] and "70.0 ms" in record["reason"]
    assert record["iterations"] == 1


def _tfjs_and_tflite_artifacts(workspace: Path) -> tuple[Path, Path]:
    paths = []
    for target in ("tfjs", "tflite"):
        artifact = workspace / target
        artifact.mkdir()
        (artifact / "manifest.json").write_text(json.dumps({"target": target, "stages": []}))
        paths.append(artifact)
    return paths[0], paths[1]


def test_browser_calibration_is_stored_apart_and_reaches_tfjs_artifacts_only(tmp_path):
    from device_runtime.harness import BROWSER_RATE_NOTE
    from pipeline.cli.devices import list_devices
    from pipeline.core.emulation import accuracy_rows, read_calibrations

    profile = PROFILES.get("pixel-3a-1t")
    litert = calibrate(tmp_path, profile, "fp32", measure=throttled(7.0, 3.0))
    (tmp_path / "calibration.json").write_text(json.dumps({profile.name: {"fp32": litert}}))
    before = list_devices(tmp_path, host_key(), False)[0]
    browser = calibrate_browser(tmp_path, profile, measure=throttled(20.0, 4.0))
    stored = {profile.name: {"fp32": litert}, browser_key(profile): {"fp32": browser}}
    (tmp_path / "calibration.json").write_text(json.dumps(stored))

    assert stored_browser_calibration(tmp_path, profile) == browser
    assert browser_calibration_for(tmp_path, profile) == browser  # stored: nothing measured
    tfjs, tflite = _tfjs_and_tflite_artifacts(tmp_path)
    chosen = calibration_for_artifact(tmp_path, profile, tfjs)
    assert chosen["browser"] == browser and chosen["active_fraction"] == litert["active_fraction"]
    assert "browser" not in calibration_for_artifact(tmp_path, profile, tflite)
    # `pipeline devices` lists the profile's precisions as before; the accuracy table shows the browser's anchor
    assert set(read_calibrations(tmp_path)[profile.name]) == {"fp32"}
    assert list_devices(tmp_path, host_key(), False)[0] == before
    rows = [r for r in accuracy_rows(read_calibrations(tmp_path), {}) if r["runtime"] == "tfjs-browser/wasm"]
    assert len(rows) == 1 and rows[0]["published_ms"] == 55.0 and not rows[0]["flagged"]
    # another host's browser calibration is not used: the rows fall back to the LiteRT run share, and say so
    stored[browser_key(profile)]["fp32"] = {**browser, "host": "another host"}
    (tmp_path / "calibration.json").write_text(json.dumps(stored))
    assert "browser" not in calibration_for_artifact(tmp_path, profile, tfjs)
    assert BROWSER_RATE_NOTE == "browser rate not calibrated, derived from the LiteRT run share"


def test_browser_rows_take_the_browser_rate_else_the_litert_share_with_a_note(tmp_path):
    from device_runtime.device_scripts.edge_bench import Protocol
    from device_runtime.harness import BROWSER_RATE_NOTE, BenchRequest, _payload, page_rate

    profile = PROFILES.get("pixel-3a-1t")
    litert = calibrate(tmp_path, profile, "fp32", measure=throttled(7.0, 3.0))
    browser = calibrate_browser(tmp_path, profile, measure=throttled(20.0, 4.0))
    request = BenchRequest(tmp_path / "artifact", "tfjs-browser", "cpu", 1, profile, Protocol(),
                           active_fraction=litert["active_fraction"], calibration=litert)
    rate, record, source = page_rate(request)
    assert rate == pytest.approx(1 / litert["active_fraction"]) and source == BROWSER_RATE_NOTE
    assert record["reason"].endswith(BROWSER_RATE_NOTE) and record["status"] == litert["status"]
    assert _payload(request)["cpu_throttling_rate"] == rate

    with_browser = dataclasses.replace(request, calibration={**litert, "browser": browser})
    rate, record, source = page_rate(with_browser)
    assert rate == browser["cpu_throttling_rate"] != pytest.approx(1 / litert["active_fraction"], rel=0.05)
    assert record == browser and source == "the browser's own calibration (calibrated)"
    assert _payload(with_browser)["cpu_throttling_rate"] == rate


@pytest.mark.slow
@pytest.mark.browser
def test_real_browser_calibration_of_pixel_3a_1t(tmp_path):
    profile = PROFILES.get("pixel-3a-1t")
    record = browser_calibration_for(tmp_path, profile)
    assert record["runtime"] == "tfjs-browser/wasm" and record["iterations"] <= MAX_MEASUREMENTS
    assert record["browser_version"] and record["host_ms"] > 0
    if record["status"] == "calibrated":
        assert abs(record["prediction_error"]) <= CALIBRATION_TOLERANCE and record["mechanism"] == DEVTOOLS
        if record["cpu_throttling_rate"] > 1.5:  # a real slowdown: the page took several times the host time
            assert record["emulated_ms"] > 1.3 * record["host_ms"]
    else:
        assert record["reason"] and record["emulated_ms"] != pytest.approx(55.0, rel=CALIBRATION_TOLERANCE)
    stored = json.loads((tmp_path / "calibration.json").read_text())
    assert stored[browser_key(profile)]["fp32"]["calibrated_at"] == record["calibrated_at"]
    assert profile.name not in stored  # the LiteRT calibration is not made by the browser's


def test_a_sweep_cell_of_tfjs_in_chromium_is_keyed_by_the_browser_rate():
    from pipeline.sweep.plan import BenchCell, ExportCell
    from pipeline.sweep.recipe import ModelSpec, RuntimeSpec, VariantSpec

    export = ExportCell(ModelSpec("digits-cnn", "keras"), VariantSpec("fp32"), "tfjs")
    litert = {"active_fraction": 0.2}
    with_rate = {**litert, "browser": {"cpu_throttling_rate": 3.5}}
    for runtime, changes in (("tfjs-browser", True), ("tfjs-node", False)):
        cell = BenchCell(export, RuntimeSpec("tfjs", runtime, "cpu"), "pixel-3a-1t")
        assert (cell.key("sha", {}, litert) != cell.key("sha", {}, with_rate)) is changes
