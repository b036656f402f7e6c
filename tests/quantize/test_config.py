from dataclasses import replace

import pytest

from pipeline.core.errors import ConfigError, UnknownNameError
from quantize import QUANTIZATION_MODES, Int8StaticConfig, Tolerance, quantization_config, tolerance_for
from quantize.techniques import TOLERANCE_NAMES, parse_tolerances


@pytest.mark.parametrize("mode", QUANTIZATION_MODES.names())
def test_every_mode_round_trips_its_config(mode):
    config = quantization_config(mode)
    data = config.to_json()
    assert data["mode"] == mode
    options = {k: v for k, v in data.items() if k != "mode"}
    assert quantization_config(mode, **options) == config


def test_unknown_mode_lists_the_options():
    with pytest.raises(UnknownNameError, match="Available: dynamic-int8, fp16, int8, none, qat-int8, uint16, uint8, weight-int8. Did you mean 'int8'"):
        quantization_config("int9")


def test_calibration_samples_must_be_positive():
    with pytest.raises(ConfigError, match="calibration_samples must be >= 1, got 0"):
        Int8StaticConfig(calibration_samples=0)


def test_options_a_mode_does_not_take_are_rejected():
    with pytest.raises(ConfigError, match="fp16"):
        quantization_config("fp16", calibration_samples=10)


def _at_least_as_strict(a, b, name) -> bool:
    """Whether bound `name` of Tolerance `a` accepts no more than `b`'s (None accepts everything)."""
    first, second = getattr(a, name), getattr(b, name)
    if second is None:
        return True
    if first is None:
        return False
    return first >= second if name.startswith("min_") else first <= second


@pytest.mark.parametrize("name", TOLERANCE_NAMES)
def test_float_is_the_strictest_mode_and_int8_weights_stricter_than_full_int8(name):
    for mode in QUANTIZATION_MODES.names():
        assert _at_least_as_strict(tolerance_for("none"), tolerance_for(mode), name), mode
    for mode in ("fp16", "uint16", "dynamic-int8", "weight-int8", "uint8"):
        assert _at_least_as_strict(tolerance_for(mode), tolerance_for("int8"), name), mode
    assert _at_least_as_strict(tolerance_for("fp16"), tolerance_for("dynamic-int8"), name)


@pytest.mark.parametrize("mode", QUANTIZATION_MODES.names())
def test_every_mode_bounds_every_task_and_its_tolerance_round_trips_through_overrides(mode):
    tolerance = tolerance_for(mode)
    assert list(tolerance.to_json()) == list(TOLERANCE_NAMES)
    assert tolerance.min_cosine_mean is not None and tolerance.min_sqnr_db is not None
    items = [f"{name}={value}" for name, value in tolerance.to_json().items()]
    assert tolerance_for("none", parse_tolerances(items)) == tolerance


def test_an_override_replaces_one_bound_and_none_lifts_it():
    assert tolerance_for("int8", {"min_sqnr_db": 3.0}) == replace(tolerance_for("int8"), min_sqnr_db=3.0)
    assert tolerance_for("int8", parse_tolerances(["min_cosine_worst=none"])).min_cosine_worst is None
    assert tolerance_for("int8", {}) is tolerance_for("int8")


@pytest.mark.parametrize("name, value, rule", [
    ("max_abs_error", 0.0, "> 0"), ("min_cosine_mean", -1.5, r"in \[-1, 1\]"), ("min_sqnr_db", float("inf"), "a finite number of dB"),
    ("max_accuracy_drop", 2.0, r"in \[0, 1\]"), ("min_neighbour_agreement", "0.9", r"in \[0, 1\]"),
])
def test_a_bound_out_of_its_range_is_refused_by_name(name, value, rule):
    with pytest.raises(ConfigError, match=f"{name} must be {rule}.* got {value!r}"):
        Tolerance(**{"max_abs_error": 0.1, "min_top1_agreement": 0.9, "max_accuracy_drop": 0.01, name: value})
    with pytest.raises(ConfigError, match=f"mode 'int8': {name} must be"):
        tolerance_for("int8", {name: value})
