"""The quantization techniques: each mode's frozen config class, registered with the tolerance its artifacts must meet.

A mode cannot be registered without a `Tolerance`; validation reads it with `tolerance_for(mode)`.
Which routes can express a mode is `quantize.route_handlers`' business.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.registry import Registry
from quantize.config import (
    DynamicInt8Config,
    Fp16Config,
    Int8StaticConfig,
    NoQuantization,
    QatInt8Config,
    QuantizationConfig,
    Uint8WeightsConfig,
    Uint16WeightsConfig,
    WeightOnlyInt8Config,
)


@dataclass(frozen=True)
class Tolerance:
    """What 'agrees with the source' means for one quantization mode.

    Outputs are class probabilities, so `max_abs_error` is in probability units; None leaves it
    unbounded (a mode that retrains the weights is judged on agreement and accuracy only).
    """

    max_abs_error: float | None
    min_top1_agreement: float
    max_accuracy_drop: float  # in accuracy points (0.015 = 1.5 points)

    def __post_init__(self) -> None:
        if self.max_abs_error is not None and not self.max_abs_error > 0:
            raise ConfigError(f"max_abs_error must be > 0 or None (unbounded), got {self.max_abs_error!r}.")
        if not 0 <= self.min_top1_agreement <= 1:
            raise ConfigError(f"min_top1_agreement must be in [0, 1], got {self.min_top1_agreement!r}.")
        if not 0 <= self.max_accuracy_drop <= 1:
            raise ConfigError(f"max_accuracy_drop must be in [0, 1] (0.015 = 1.5 points), got {self.max_accuracy_drop!r}.")


@dataclass(frozen=True)
class Technique:
    """A registered quantization mode: its config class and the tolerance its artifacts are validated against."""

    config_cls: type[QuantizationConfig]
    tolerance: Tolerance

    @property
    def mode(self) -> str:
        return self.config_cls.mode


TECHNIQUES: Registry[Technique] = Registry("quantization mode")


def register_technique(config_cls: type[QuantizationConfig], tolerance: Tolerance) -> Technique:
    """Register `config_cls` under its `mode` with `tolerance`.

    Raises ConfigError when `tolerance` is not a Tolerance, the class has no mode, or the mode is taken.
    """
    if not (isinstance(config_cls, type) and issubclass(config_cls, QuantizationConfig)) or not config_cls.mode:
        raise ConfigError(f"{config_cls!r} is not a QuantizationConfig subclass with a `mode` name.")
    if not isinstance(tolerance, Tolerance):
        raise ConfigError(f"Quantization mode '{config_cls.mode}' needs a Tolerance to validate its artifacts "
                          f"against, got {tolerance!r}.")
    return TECHNIQUES.register(config_cls.mode, Technique(config_cls, tolerance))


def technique_modes() -> tuple[str, ...]:
    """Every registered mode, in registration order (float first, then by technique)."""
    return tuple(TECHNIQUES.in_order())


def tolerance_for(mode: str) -> Tolerance:
    """The validation tolerance of `mode`; UnknownNameError listing the modes for an unknown one."""
    return TECHNIQUES.get(mode).tolerance


class ConfigClasses:
    """Read-only view of the techniques as mode -> config class (what `QUANTIZATION_MODES` has always been)."""

    kind = TECHNIQUES.kind

    def get(self, mode: str) -> type[QuantizationConfig]:
        """The config class of `mode`; UnknownNameError listing the modes (and the closest) otherwise."""
        return TECHNIQUES.get(mode).config_cls

    def names(self) -> list[str]:
        return TECHNIQUES.names()

    def items(self) -> list[tuple[str, type[QuantizationConfig]]]:
        return [(mode, technique.config_cls) for mode, technique in TECHNIQUES.items()]

    def __contains__(self, mode: object) -> bool:
        return mode in TECHNIQUES

    def __iter__(self) -> Iterator[str]:
        return iter(TECHNIQUES)


QUANTIZATION_MODES = ConfigClasses()


def quantization_config(mode: str, **options: Any) -> QuantizationConfig:
    """Build the config for `mode` (e.g. 'int8'); unknown modes list the options."""
    config_cls = QUANTIZATION_MODES.get(mode)
    try:
        return config_cls(**options)
    except TypeError as exc:
        raise ConfigError(f"Invalid options for quantization mode '{mode}': {exc}.") from None


_FLOAT16 = Tolerance(max_abs_error=1e-2, min_top1_agreement=0.99, max_accuracy_drop=0.01)
# 8-bit weights: one boundary sample of 600 moved by 0.15 on the MobileNet (TF.js uint8, 99.7% agreement)
_INT8_WEIGHTS = Tolerance(max_abs_error=0.2, min_top1_agreement=0.97, max_accuracy_drop=0.015)

register_technique(NoQuantization, Tolerance(max_abs_error=1e-4, min_top1_agreement=0.99, max_accuracy_drop=0.005))
register_technique(Fp16Config, _FLOAT16)
register_technique(DynamicInt8Config, _INT8_WEIGHTS)
register_technique(WeightOnlyInt8Config, _INT8_WEIGHTS)
# full-integer: activations are int8 too, so boundary samples move more (0.26 measured on the pruned MobileNet)
register_technique(Int8StaticConfig, Tolerance(max_abs_error=0.35, min_top1_agreement=0.97, max_accuracy_drop=0.015))
# QAT fine-tunes the weights, so outputs move away from the source's by design (a sample near a decision
# boundary can change its probabilities by 0.8): agreement and accuracy are what must hold
register_technique(QatInt8Config, Tolerance(max_abs_error=None, min_top1_agreement=0.97, max_accuracy_drop=0.015))
register_technique(Uint8WeightsConfig, _INT8_WEIGHTS)
register_technique(Uint16WeightsConfig, _FLOAT16)
