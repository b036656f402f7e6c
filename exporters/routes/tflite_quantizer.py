"""Post-conversion quantization of a float `.tflite` with ai-edge-quantizer (recipes by mode), and selective
quantization: the ops of `keep_float` layers get the recipe's no-quantization entry and stay float."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporters.base import AppliedStage
from exporters.routes.layer_names import kept_tflite_ops
from pipeline.core.errors import ExportError, converter_errors, first_line
from pipeline.core.tensors import Feed
from quantize import QuantizationConfig

TOOL = "ai-edge-quantizer"
NO_QUANTIZE = "no_quantize"  # ai_edge_quantizer AlgorithmName.NO_QUANTIZE

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
# static int8 keeps the model's float inputs and outputs (quantized inside), as TFLiteConverter's int8 does
FLOAT_IO = [{"regex": ".*", "operation": op, "algorithm_key": NO_QUANTIZE} for op in ("INPUT", "OUTPUT")]


def _static_int8(per_channel: bool) -> list[dict[str, Any]]:
    from ai_edge_quantizer import qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    granularity = qtyping.QuantGranularity.CHANNELWISE if per_channel else qtyping.QuantGranularity.TENSORWISE
    manager.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=8,
                              weight_num_bits=8, weight_granularity=granularity)
    return [*manager.get_quantization_recipe(), *FLOAT_IO]


def recipe_for(quantization: QuantizationConfig) -> list[dict[str, Any]]:
    """The ai-edge-quantizer recipe implementing `quantization` on a float model (its global entries)."""
    from ai_edge_quantizer import recipe

    return {
        "fp16": lambda: FP16_RECIPE,
        "dynamic-int8": recipe.dynamic_wi8_afp32,
        "weight-int8": recipe.weight_only_wi8_afp32,
        "int8": lambda: _static_int8(getattr(quantization, "per_channel", True)),
    }[quantization.mode]()


def keep_float_entries(kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One no-quantization entry per kept op, matching exactly its scope (its output tensor names, each followed
    by ';', as ai-edge-quantizer names an op); later entries override the global one."""
    return [{"regex": f"^{re.escape(''.join(name + ';' for name in op['outputs']))}$", "operation": "*",
             "algorithm_key": NO_QUANTIZE} for op in kept]


def _signature_samples(float_file: Path, samples: list[Feed]) -> dict[str, list[Feed]]:
    """The calibration samples keyed by the float model's signature and its input names (the feed's own names
    where they agree, else by position)."""
    from ai_edge_litert.interpreter import Interpreter

    key, signature = next(iter(Interpreter(model_path=str(float_file)).get_signature_list().items()))
    names = list(signature["inputs"])
    if samples and set(names) != set(samples[0]):
        samples = [dict(zip(names, sample.values(), strict=True)) for sample in samples]
    return {key: samples}


def activation_ranges(float_file: Path, recipe: list[dict[str, Any]], samples: list[Feed]) -> dict[str, Any]:
    """Every activation's range over all `samples` (the smallest min and largest max, as TFLiteConverter and ONNX
    Runtime's MinMax calibrate). `Quantizer.calibrate` averages each batch's range into a moving one (0.95 weight),
    which over batch-1 samples follows the last few dozen: on the digits CNN its ranges cost 20 dB of SQNR at the
    first dense layer."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    engine = calibrator.Calibrator(str(float_file), qsv_update_func=qsv_utils.min_max_update)
    engine.calibrate(_signature_samples(float_file, samples), manager)
    return engine.get_model_qsvs()


def quantize_float_model(
    write_float: Callable[[Path], None], model_file: Path, quantization: QuantizationConfig,
    calibration: list[Feed] | None = None,
) -> tuple[AppliedStage, ...]:
    """Write a float model with `write_float`, quantize it into `model_file` (static int8 calibrated on
    `calibration`, batch-1 feeds), leaving the ops of `quantization.keep_float` float; drop the float copy.

    Raises ConfigError for a keep_float name that matches no layer, ExportError when ai-edge-quantizer fails.
    """
    from ai_edge_quantizer import quantizer

    float_file = model_file.with_name("float.tflite.partial")
    try:
        write_float(float_file)
        kept = kept_tflite_ops(float_file, getattr(quantization, "keep_float", ()))
        recipe = [*recipe_for(quantization), *keep_float_entries(kept)]
        engine = quantizer.Quantizer(str(float_file))
        engine.load_quantization_recipe(recipe)
        # it prints a size summary the manifest already holds, and a calibration progress bar
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                converter_errors(lambda exc: ExportError(f"{TOOL} could not quantize the float model "
                                                         f"({quantization.mode}): {first_line(exc)}"), TOOL):
            ranges = activation_ranges(float_file, recipe, calibration) if calibration else None
            engine.quantize(ranges).export_model(str(model_file), overwrite=True)
    finally:
        float_file.unlink(missing_ok=True)
    effect: dict[str, Any] = {"calibration_samples_used": len(calibration)} if calibration else {}
    if kept:
        effect["kept_float"] = kept
    tool = f"{TOOL} (static int8, MinMax)" if calibration else TOOL
    return (AppliedStage("quantize", quantization.to_json(), tool, effect),)
