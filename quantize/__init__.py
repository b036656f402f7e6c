"""Optimization stages. Quantization configs are plain frozen data honoured by the exporters."""

from quantize.config import (
    QUANTIZATION_MODES,
    DynamicInt8Config,
    Fp16Config,
    Int8StaticConfig,
    NoQuantization,
    QatInt8Config,
    QuantizationConfig,
    Uint8WeightsConfig,
    Uint16WeightsConfig,
    WeightOnlyInt8Config,
    quantization_config,
)
from quantize.pruning import ChannelPruningConfig, MagnitudePruningConfig  # noqa: F401  (registers the pruning stages)

__all__ = [
    "QUANTIZATION_MODES",
    "DynamicInt8Config",
    "Fp16Config",
    "Int8StaticConfig",
    "NoQuantization",
    "QatInt8Config",
    "QuantizationConfig",
    "Uint8WeightsConfig",
    "Uint16WeightsConfig",
    "WeightOnlyInt8Config",
    "quantization_config",
]
