"""The quantization techniques: each mode's frozen config class, registered with the tolerance its artifacts must meet.

A mode cannot be registered without a `Tolerance`; validation reads it with `tolerance_for(mode, overrides)`,
the overrides coming from `--tolerance NAME=VALUE` (`parse_tolerances`).
Which routes can express a mode is `quantize.route_handlers`' business.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.registry import Registry, did_you_mean
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

# Each bound's valid values, as (what the error says, the check); None always means "not checked".
_RANGES: dict[str, tuple[str, Callable[[float], bool]]] = {
    "max_abs_error": ("> 0", lambda v: v > 0),
    "min_top1_agreement": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "max_accuracy_drop": ("in [0, 1] (0.015 = 1.5 points)", lambda v: 0 <= v <= 1),
    "min_cosine_mean": ("in [-1, 1]", lambda v: -1 <= v <= 1),
    "min_cosine_worst": ("in [-1, 1]", lambda v: -1 <= v <= 1),
    "min_neighbour_agreement": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "min_sqnr_db": ("a finite number of dB", lambda v: True),
    "max_relative_l2": ("> 0", lambda v: v > 0),
}
TOLERANCE_NAMES: tuple[str, ...] = tuple(_RANGES)


def _range_error(name: str, value: Any) -> str | None:
    """Why `value` cannot bound `name`, or None when it can."""
    if value is None:
        return None
    rule, check = _RANGES[name]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and math.isfinite(value) and check(value):
        return None
    return f"{name} must be {rule} or None (not checked), got {value!r}."


@dataclass(frozen=True)
class Tolerance:
    """What 'agrees with the source' means for one quantization mode, one bound per metric; None leaves it unchecked.

    Classification outputs (probabilities, or logits turned into probabilities by softmax): `max_abs_error`
    in probability units, `min_top1_agreement`, `max_accuracy_drop` in accuracy points (0.015 = 1.5 points).
    Embeddings: each sample's cosine similarity to the source's, mean and worst (`min_cosine_mean`,
    `min_cosine_worst`), and `min_neighbour_agreement`, the mean share of each sample's 5 nearest neighbours
    (by cosine, within the evaluation set) that the artifact keeps. Dense outputs (maps, boxes, regressions):
    `min_sqnr_db`, the signal-to-quantization-noise ratio over the whole output in dB, and `max_relative_l2`,
    ||artifact - source|| / ||source|| (the same measure in other units: SQNR = -20 log10 of it).
    The new bounds default to float32's, so a mode whose outputs move registers looser ones.
    """

    max_abs_error: float | None
    min_top1_agreement: float | None
    max_accuracy_drop: float | None
    min_cosine_mean: float | None = 0.9999
    min_cosine_worst: float | None = 0.999
    min_neighbour_agreement: float | None = 0.99
    min_sqnr_db: float | None = 40.0
    max_relative_l2: float | None = None

    def __post_init__(self) -> None:
        for name in TOLERANCE_NAMES:
            if error := _range_error(name, getattr(self, name)):
                raise ConfigError(error)

    def to_json(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in TOLERANCE_NAMES}


def parse_tolerances(items: Sequence[str]) -> dict[str, float | None]:
    """`--tolerance NAME=VALUE` items (repeatable) as {name: value}; VALUE 'none' leaves that bound unchecked.

    Raises ConfigError naming the valid names for an unknown name, a value that is not a number or is out of
    range, and a name given twice with different values.
    """
    valid = f"Valid names: {', '.join(TOLERANCE_NAMES)}."
    overrides: dict[str, float | None] = {}
    for item in items:
        name, equals, text = (part.strip() for part in str(item).partition("="))
        if not equals or name not in _RANGES:
            raise ConfigError(f"Unknown tolerance '{name}' in --tolerance {item}. {valid}"
                              f"{did_you_mean(name, list(TOLERANCE_NAMES))} Write NAME=VALUE, e.g. min_cosine_mean=0.98.")
        try:
            value = None if text.lower() == "none" else float(text)
        except ValueError:
            raise ConfigError(f"--tolerance {item}: '{text}' is not a number. Write {name}=VALUE with a number, or "
                              f"{name}=none to leave it unchecked. {valid}") from None
        if error := _range_error(name, value):
            raise ConfigError(f"--tolerance {item}: {error} {valid}")
        if name in overrides and overrides[name] != value:
            raise ConfigError(f"--tolerance {name} is given twice ({overrides[name]} and {value}); keep one.")
        overrides[name] = value
    return overrides


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


def tolerance_for(mode: str, overrides: Mapping[str, float | None] | None = None) -> Tolerance:
    """The validation tolerance of `mode` with `overrides` (bound name -> value, None: not checked) applied.

    Raises UnknownNameError listing the modes for an unknown mode, ConfigError for an unknown bound name
    (listing the valid ones) or an out-of-range value.
    """
    tolerance = TECHNIQUES.get(mode).tolerance
    if not overrides:
        return tolerance
    if unknown := [name for name in overrides if name not in _RANGES]:
        raise ConfigError(f"Unknown tolerance {', '.join(map(repr, unknown))}. "
                          f"Valid names: {', '.join(TOLERANCE_NAMES)}.{did_you_mean(unknown[0], list(TOLERANCE_NAMES))}")
    try:
        return replace(tolerance, **overrides)
    except ConfigError as exc:
        raise ConfigError(f"Tolerance override for mode '{mode}': {exc}") from None


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
    if isinstance(options.get("keep_float"), (list, str)):  # from JSON or YAML; a single name as a string
        names = options["keep_float"]
        options = {**options, "keep_float": (names,) if isinstance(names, str) else tuple(names)}
    try:
        return config_cls(**options)
    except TypeError as exc:
        raise ConfigError(f"Invalid options for quantization mode '{mode}': {exc}.") from None


# Embedding and dense bounds, set under the worst of: the zoo's digits CNN and MobileNet (Keras and PyTorch; logits,
# penultimate features, L2-normalised embeddings, a feature map), a ViT-like logits classifier, a small text encoder
# and all-MiniLM-L6-v2, on LiteRT, ExecuTorch and TF.js. Worst measured -- float32: 123 dB, cosine 1.0, neighbours
# 1.0; fp16: 60.5 dB, neighbours 0.995; 8-bit weights: 24.4 dB, cosine mean 0.998 / worst 0.9965 (MiniLM on
# LiteRT), neighbours 0.935; int8: 21.8 dB (MobileNet feature map on ExecuTorch), cosine 0.9992 / 0.987, neighbours
# 0.82; qat-int8 logits: 19.6 dB. MiniLM in full int8 fails, as it should: cosine mean 0.87 (ExecuTorch) and 0.95
# (LiteRT), neighbours 0.69 and 0.80. Neighbour agreement is the most sensitive: samples of one class crowd
# together, so small moves swap neighbours. max_relative_l2 stays unchecked: it is the SQNR bound in other units.
_FLOAT16 = Tolerance(max_abs_error=1e-2, min_top1_agreement=0.99, max_accuracy_drop=0.01, min_cosine_mean=0.999,
                     min_cosine_worst=0.99, min_neighbour_agreement=0.95, min_sqnr_db=30.0)
# 8-bit weights: one boundary sample of 600 moved by 0.15 on the MobileNet (TF.js uint8, 99.7% agreement)
_INT8_WEIGHTS = Tolerance(max_abs_error=0.2, min_top1_agreement=0.97, max_accuracy_drop=0.015, min_cosine_mean=0.995,
                          min_cosine_worst=0.98, min_neighbour_agreement=0.85, min_sqnr_db=20.0)

register_technique(NoQuantization, Tolerance(max_abs_error=1e-4, min_top1_agreement=0.99, max_accuracy_drop=0.005))
register_technique(Fp16Config, _FLOAT16)
register_technique(DynamicInt8Config, _INT8_WEIGHTS)
register_technique(WeightOnlyInt8Config, _INT8_WEIGHTS)
# full-integer: activations are int8 too, so boundary samples move more (0.26 measured on the pruned MobileNet)
register_technique(Int8StaticConfig, Tolerance(max_abs_error=0.35, min_top1_agreement=0.97, max_accuracy_drop=0.015,
                                               min_cosine_mean=0.99, min_cosine_worst=0.95, min_neighbour_agreement=0.75,
                                               min_sqnr_db=15.0))
# QAT fine-tunes the weights, so outputs move away from the source's by design (a sample near a decision
# boundary can change its probabilities by 0.8): agreement and accuracy are what must hold; the other bounds
# only catch a broken artifact
register_technique(QatInt8Config, Tolerance(max_abs_error=None, min_top1_agreement=0.97, max_accuracy_drop=0.015,
                                            min_cosine_mean=0.98, min_cosine_worst=0.9, min_neighbour_agreement=0.7,
                                            min_sqnr_db=10.0))
register_technique(Uint8WeightsConfig, _INT8_WEIGHTS)
register_technique(Uint16WeightsConfig, _FLOAT16)
