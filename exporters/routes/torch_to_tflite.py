"""PyTorch -> `.tflite` through litert-torch; fp16/dynamic/weight-only int8 via ai-edge-quantizer, int8 via PT2E."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import AppliedStage
from exporters.routes.calibration import calibration_feed, example_feed, per_sample, torch_args
from exporters.routes.tflite_quantizer import quantize_float_model
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, converter_errors, tensorflow_errors
from quantize import Int8StaticConfig, QatInt8Config, QuantizationConfig, handler_for, register_handler

ROUTE = "torch.export -> litert_torch.convert (batch 1)"
TARGET = "tflite"


def _sample_args(bundle: ModelBundle) -> tuple[Any, ...]:
    """One batch-1 tensor per input for tracing (real samples when the bundle has data), in input order."""
    return torch_args(example_feed(bundle, ROUTE))


def input_casts(bundle: ModelBundle, model_file: Path) -> dict[str, str]:
    """Integer and bool inputs whose dtype the converter changed (litert-torch turns int64 into int32), as
    name -> 'int64->int32': data must be cast to feed the artifact. (A float input quantized by int8 is not listed:
    its scale and zero point are in the artifact's signature.)

    The artifact's inputs are matched to the model's by position: litert-torch names them args_0, args_1, ...
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_file))
    signature = interpreter.get_signature_runner().get_input_details()
    details = [signature.get(f"args_{i}") for i in range(len(bundle.inputs))]
    if None in details:
        details = sorted(interpreter.get_input_details(), key=lambda d: d["index"])
    return {spec.name: f"{spec.dtype}->{np.dtype(detail['dtype']).name}"
            for spec, detail in zip(bundle.inputs, details, strict=False)
            if not spec.is_float and np.dtype(detail["dtype"]).name != spec.dtype}


def _convert(module: Any, args: tuple[Any, ...], model_file: Path, **kwargs: Any) -> None:
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch

    def failed(exc: Exception) -> ExportError:  # torch.export and the MLIR lowering raise many types
        return ExportError(
            f"litert-torch could not convert {module.__class__.__name__}: {str(exc)[:800]}. "
            "If torch.export cannot trace the model, make its forward free of data-dependent "
            "Python control flow; if an op has no TFLite lowering, replace it."
        )

    with converter_errors(failed, "The litert-torch conversion", *tensorflow_errors()):
        litert_torch.convert(module, args, **kwargs).export(str(model_file))


def _pt2e_int8(bundle: ModelBundle, args: tuple[Any, ...], config: Int8StaticConfig) -> tuple[Any, Any]:
    """Prepare, calibrate on real samples, and convert with litert-torch's PT2E quantizer."""
    import torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    samples = per_sample(calibration_feed(bundle, config.calibration_samples))
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=config.per_channel, is_dynamic=False)
    )
    prepared = prepare_pt2e(torch.export.export(bundle.model, args).module(), quantizer)
    with torch.no_grad():
        for sample in samples:  # real ids for integer inputs: an embedding's output range depends on them
            prepared(*torch_args(sample))
    return convert_pt2e(prepared, fold_quantize=False), QuantConfig(pt2e_quantizer=quantizer)


# --- one handler per mode: (bundle, model_file, quantization) -> stages applied ------------------


def _float(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    _convert(bundle.model, _sample_args(bundle), model_file)
    return ()


def _post_conversion(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    """fp16, dynamic-int8 and weight-int8: ai-edge-quantizer rewrites the float model (the ops of `keep_float`
    layers, labelled from its tensor names, left float)."""
    args = _sample_args(bundle)
    return quantize_float_model(lambda path: _convert(bundle.model, args, path), model_file, quantization)


def _int8(bundle: ModelBundle, model_file: Path, quantization: Int8StaticConfig) -> tuple[AppliedStage, ...]:
    args = _sample_args(bundle)
    module, quant_config = _pt2e_int8(bundle, args, quantization)
    _convert(module, args, model_file, quant_config=quant_config)
    return (AppliedStage("quantize", quantization.to_json(), "PT2E (litert_torch PT2EQuantizer) + litert_torch"),)


def _qat_int8(bundle: ModelBundle, model_file: Path, quantization: QatInt8Config) -> tuple[AppliedStage, ...]:
    from litert_torch.quantize.quant_config import QuantConfig

    from quantize.qat.torch_qat import litert_qat_quantizer, qat_torch

    args = _sample_args(bundle)
    quantizer = litert_qat_quantizer()
    module, effect = qat_torch(bundle, quantization, quantizer, fold_quantize=False)
    _convert(module, args, model_file, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    return (AppliedStage("quantize", quantization.to_json(), f"{effect['tool']} + litert_torch", effect),)


def convert_torch_to_tflite(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    """Write `model_file` with the handler registered for the mode; returns the quantization stage (if any)."""
    return handler_for(quantization.mode, bundle.framework, TARGET)(bundle, model_file, quantization)


register_handler("none", "torch", TARGET, _float)
register_handler("fp16", "torch", TARGET, _post_conversion)
for _mode in ("dynamic-int8", "weight-int8"):  # keep_float: the float model's ops are left out of the recipe
    register_handler(_mode, "torch", TARGET, _post_conversion, keep_float=True)
register_handler("int8", "torch", TARGET, _int8)
register_handler("qat-int8", "torch", TARGET, _qat_int8)
