"""Post-training quantization configs, one frozen class per technique, registered by mode name."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from pipeline.errors import ConfigError
from pipeline.registry import Registry


@dataclass(frozen=True)
class QuantizationConfig:
    """Base of the quantization configs: a mode name plus the technique's options."""

    mode: ClassVar[str] = ""
    needs_calibration: ClassVar[bool] = False

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, **asdict(self)}


@dataclass(frozen=True)
class NoQuantization(QuantizationConfig):
    """Keep float32 weights and activations."""

    mode: ClassVar[str] = "none"


@dataclass(frozen=True)
class Fp16Config(QuantizationConfig):
    """float16 weights, float32 compute (weights are dequantized at load or run time)."""

    mode: ClassVar[str] = "fp16"


@dataclass(frozen=True)
class DynamicInt8Config(QuantizationConfig):
    """int8 weights; activations quantized on the fly at run time (dynamic range)."""

    mode: ClassVar[str] = "dynamic-int8"


@dataclass(frozen=True)
class WeightOnlyInt8Config(QuantizationConfig):
    """int8 weights dequantized to float before each op: float compute, ~4x smaller weights."""

    mode: ClassVar[str] = "weight-int8"


@dataclass(frozen=True)
class Int8StaticConfig(QuantizationConfig):
    """Full-integer int8 weights and activations, ranges calibrated on real samples."""

    mode: ClassVar[str] = "int8"
    needs_calibration: ClassVar[bool] = True
    calibration_samples: int = 200
    per_channel: bool = True

    def __post_init__(self) -> None:
        if self.calibration_samples < 1:
            raise ConfigError(f"calibration_samples must be >= 1, got {self.calibration_samples}.")


@dataclass(frozen=True)
class Uint8WeightsConfig(QuantizationConfig):
    """Affine uint8 weights, dequantized to float32 at load (TF.js converter's weight quantization)."""

    mode: ClassVar[str] = "uint8"


@dataclass(frozen=True)
class Uint16WeightsConfig(QuantizationConfig):
    """Affine uint16 weights, dequantized to float32 at load (TF.js converter's weight quantization)."""

    mode: ClassVar[str] = "uint16"


QUANTIZATION_MODES: Registry[type[QuantizationConfig]] = Registry("quantization mode")
for _config in (NoQuantization, Fp16Config, DynamicInt8Config, WeightOnlyInt8Config, Int8StaticConfig,
                Uint8WeightsConfig, Uint16WeightsConfig):
    QUANTIZATION_MODES.register(_config.mode, _config)


def quantization_config(mode: str, **options: Any) -> QuantizationConfig:
    """Build the config for `mode` (e.g. 'int8'); unknown modes list the options."""
    config_cls = QUANTIZATION_MODES.get(mode)
    try:
        return config_cls(**options)
    except TypeError as exc:
        raise ConfigError(f"Invalid options for quantization mode '{mode}': {exc}.") from None
