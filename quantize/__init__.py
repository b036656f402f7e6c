"""Optimization stages and quantization techniques.

A technique is a frozen config registered with its validation tolerance (`quantize.techniques`); each
route that can express it registers a handler (`quantize.route_handlers`), which the exporters look up.
"""

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
from quantize.pruning import ChannelPruningConfig, MagnitudePruningConfig  # noqa: F401  (registers the pruning stages)
from quantize.route_handlers import (
    ROUTE_HANDLERS,
    RouteHandlers,
    check_keep_float_route,
    explain_refusal,
    handler_for,
    modes_for,
    register_handler,
    routes_for,
    target_modes,
)
from quantize.techniques import (
    QUANTIZATION_MODES,
    TECHNIQUES,
    Technique,
    Tolerance,
    quantization_config,
    register_technique,
    technique_modes,
    tolerance_for,
)

__all__ = [
    "QUANTIZATION_MODES",
    "ROUTE_HANDLERS",
    "TECHNIQUES",
    "DynamicInt8Config",
    "Fp16Config",
    "Int8StaticConfig",
    "NoQuantization",
    "QatInt8Config",
    "QuantizationConfig",
    "RouteHandlers",
    "Technique",
    "Tolerance",
    "Uint8WeightsConfig",
    "Uint16WeightsConfig",
    "WeightOnlyInt8Config",
    "check_keep_float_route",
    "explain_refusal",
    "handler_for",
    "modes_for",
    "quantization_config",
    "register_handler",
    "register_technique",
    "routes_for",
    "target_modes",
    "technique_modes",
    "tolerance_for",
]
