"""Quantization configs (post-training, and quantization-aware training), one frozen class per technique.

`quantize.techniques` registers each by mode name with its validation tolerance; the routes that can
express a mode register a handler for it in `quantize.route_handlers`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from pipeline.core.errors import ConfigError


@dataclass(frozen=True)
class QuantizationConfig:
    """Base of the quantization configs: a mode name plus the technique's options."""

    mode: ClassVar[str] = ""
    needs_calibration: ClassVar[bool] = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not data.get("keep_float", True):  # absent when empty: a plain export's manifest is unchanged
            del data["keep_float"]
        return {"mode": self.mode, **data}


def check_keep_float(config: QuantizationConfig) -> None:
    """Raise ConfigError unless `keep_float` is a tuple of distinct, non-empty layer names (`auto:K` is resolved
    to names before a config is built: see pipeline.selective)."""
    names = getattr(config, "keep_float", ())
    if not isinstance(names, tuple) or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(f"keep_float must be a tuple of layer names, got {names!r}.")
    if any(n.startswith("auto:") for n in names):
        raise ConfigError(f"keep_float {names!r}: 'auto:K' picks names from a per-layer debug run; resolve it with "
                          "pipeline.selective.resolve_keep_float (the CLI and `pipeline optimize` do).")
    if len(set(names)) != len(names):
        raise ConfigError(f"keep_float names a layer twice: {names!r}.")


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
    keep_float: tuple[str, ...] = ()  # layers left in float (names from `pipeline debug`)

    def __post_init__(self) -> None:
        check_keep_float(self)


@dataclass(frozen=True)
class WeightOnlyInt8Config(QuantizationConfig):
    """int8 weights dequantized to float before each op: float compute, ~4x smaller weights."""

    mode: ClassVar[str] = "weight-int8"
    keep_float: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_keep_float(self)


@dataclass(frozen=True)
class Int8StaticConfig(QuantizationConfig):
    """Full-integer int8 weights and activations, ranges calibrated on real samples."""

    mode: ClassVar[str] = "int8"
    needs_calibration: ClassVar[bool] = True
    calibration_samples: int = 200
    per_channel: bool = True
    keep_float: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.calibration_samples < 1:
            raise ConfigError(f"calibration_samples must be >= 1, got {self.calibration_samples}.")
        check_keep_float(self)


@dataclass(frozen=True)
class Uint8WeightsConfig(QuantizationConfig):
    """Affine uint8 weights, dequantized to float32 at load (TF.js converter's weight quantization)."""

    mode: ClassVar[str] = "uint8"


@dataclass(frozen=True)
class Uint16WeightsConfig(QuantizationConfig):
    """Affine uint16 weights, dequantized to float32 at load (TF.js converter's weight quantization)."""

    mode: ClassVar[str] = "uint16"


@dataclass(frozen=True)
class QatInt8Config(QuantizationConfig):
    """Full-integer int8 through quantization-aware training: fake-quant fine-tune on the training split.

    Keras: TFMOT `quantize_model` on a tf_keras twin; PyTorch: PT2E `prepare_qat_pt2e` with the target's
    quantizer. Needs training data, not calibration data (ranges are learned while training): with labels 'y'
    a classifier is fine-tuned on cross-entropy, without them any model by distillation of its own outputs.
    """

    mode: ClassVar[str] = "qat-int8"
    fine_tune_epochs: int = 3
    learning_rate: float = 1e-4
    batch_size: int = 32
    seed: int = 0
    keep_float: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_keep_float(self)
        if not isinstance(self.fine_tune_epochs, int) or isinstance(self.fine_tune_epochs, bool) \
                or self.fine_tune_epochs < 1:
            raise ConfigError(f"fine_tune_epochs must be an integer >= 1 (QAT learns its ranges while training), "
                              f"got {self.fine_tune_epochs!r}; without fine-tuning choose --quantize int8 "
                              "(post-training static quantization, calibration samples only).")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}.")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
