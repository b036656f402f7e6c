"""Post-conversion quantization of a float `.tflite` with ai-edge-quantizer (recipes by mode)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporters.base import AppliedStage
from quantize import QuantizationConfig

TOOL = "ai-edge-quantizer"

FP16_RECIPE = [
    {
        "regex": ".*",
        "operation": "*",
        "algorithm_key": "float_casting",
        "op_config": {
            "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
            "compute_precision": "FLOAT",
            "explicit_dequantize": True,
        },
    }
]


def recipe_for(mode: str) -> Any:
    """The ai-edge-quantizer recipe implementing `mode` on a float model."""
    from ai_edge_quantizer import recipe

    return {
        "fp16": lambda: FP16_RECIPE,
        "dynamic-int8": recipe.dynamic_wi8_afp32,
        "weight-int8": recipe.weight_only_wi8_afp32,
    }[mode]()


def quantize_float_model(
    write_float: Callable[[Path], None], model_file: Path, quantization: QuantizationConfig
) -> tuple[AppliedStage, ...]:
    """Write a float model with `write_float`, quantize it into `model_file`, drop the float copy."""
    from ai_edge_quantizer import quantizer

    float_file = model_file.with_name("float.tflite.partial")
    try:
        write_float(float_file)
        engine = quantizer.Quantizer(str(float_file))
        engine.load_quantization_recipe(recipe_for(quantization.mode))
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a size summary the manifest already holds
            engine.quantize().export_model(str(model_file), overwrite=True)
    finally:
        float_file.unlink(missing_ok=True)
    return (AppliedStage("quantize", quantization.to_json(), TOOL),)
