import pytest

from pipeline.core.errors import ConfigError, UnknownNameError
from quantize import QUANTIZATION_MODES, Int8StaticConfig, quantization_config


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
