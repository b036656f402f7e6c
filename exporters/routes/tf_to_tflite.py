"""Keras model or TensorFlow SavedModel -> `.tflite` through TFLiteConverter: one registered handler per mode.

The converter takes the frozen serving function (`tf_source`): one named input per model input (float, integer
or bool, batch 1), every output, and the weights as constants in the flatbuffer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporters.base import AppliedStage
from exporters.routes.calibration import calibration_feed, per_sample
from exporters.routes.tf_source import check_weight_bytes, frozen_function, source_parameter_bytes
from exporters.routes.tflite_quantizer import quantize_float_model
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, converter_errors, first_line, tensorflow_errors
from quantize import (
    DynamicInt8Config,
    Int8StaticConfig,
    QatInt8Config,
    QuantizationConfig,
    explain_refusal,
    handler_for,
    register_handler,
)

KERAS_ROUTE = ("Keras model -> tf.function (one TensorSpec per input, batch 1) -> variables frozen -> "
               "TFLiteConverter.from_concrete_functions")
SAVED_MODEL_ROUTE = ("SavedModel serving_default -> tf.function (one TensorSpec per input, batch 1) -> variables frozen "
                     "-> TFLiteConverter.from_concrete_functions")
TOOL = "tf.lite.TFLiteConverter"
TARGET = "tflite"
VARIABLE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")  # state the flatbuffer reads at run time


def unsupported_ops(message: str) -> list[str]:
    """TF op names the converter rejected, read from its error text (in order, no repeats)."""
    names = re.findall(r"'tf\.(\w+)' op", message)
    for listed in re.findall(r"(?:TF Select|Flex) ops: ([\w, ]+)", message):
        names += [name.strip() for name in listed.split(",")]
    return list(dict.fromkeys(name for name in names if name))


def converter_failure(exc: Exception, model_path: str) -> ExportError:
    """An ExportError naming the ops the converter could not take (or its first message line)."""
    ops = unsupported_ops(str(exc))
    if ops:
        return ExportError(
            f"The TFLite converter cannot convert {model_path}: op(s) {', '.join(ops)} are not TFLite "
            "builtins (they would need TF Select kernels, which the standard LiteRT runtime lacks). "
            "Replace them in the model, or export to another target (`pipeline routes`)."
        )
    return ExportError(f"The TFLite converter failed on {model_path}: {first_line(exc)}")


def _route(bundle: ModelBundle) -> str:
    return SAVED_MODEL_ROUTE if bundle.framework == "tensorflow" else KERAS_ROUTE


def _write_converted(bundle: ModelBundle, model_file: Path, configure: Callable[[Any], None] | None = None) -> None:
    """Freeze the serving function, let `configure` set up the converter, and write its output."""
    import tensorflow as tf

    with converter_errors(lambda exc: converter_failure(exc, bundle.source.path), "The TFLite conversion",
                          *tensorflow_errors()):
        frozen = frozen_function(bundle, _route(bundle))
        # a Module holding nothing: the frozen function reads no variables, and the converter takes its signature
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen.function], tf.Module())
        if configure is not None:
            configure(converter)
        model_file.write_bytes(converter.convert())


def tflite_weights(model_file: Path) -> tuple[int, tuple[str, ...]]:
    """The bytes of a `.tflite`'s constant buffers (its weights), and the variable ops it holds (VAR_HANDLE, ...)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(model_file.read_bytes(), 0)
    weight_bytes = 0
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        weight_bytes += buffer.DataLength() or (buffer.Size() if buffer.Offset() > 1 else 0)  # >2 GB models: outside
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    used = {names.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), "") for c in codes}
    return weight_bytes, tuple(op for op in VARIABLE_OPS if op in used)


def weight_notes(bundle: ModelBundle, model_file: Path, mode: str) -> dict[str, Any]:
    """The manifest notes comparing the artifact's weight bytes with the source's parameter bytes; ExportError
    when the weights did not make it into the flatbuffer."""
    artifact_bytes, variable_ops = tflite_weights(model_file)
    return check_weight_bytes(source_parameter_bytes(bundle), artifact_bytes, mode, f"TFLite file {model_file.name}",
                              variable_ops)


def _converter_stage(quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    return (AppliedStage("quantize", quantization.to_json(), TOOL),)


# --- one handler per mode: (bundle, model_file, quantization) -> stages applied ------------------


def _float(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    _write_converted(bundle, model_file)
    return ()


def _fp16(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    import tensorflow as tf

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]

    _write_converted(bundle, model_file, configure)
    return _converter_stage(quantization)


def _dynamic_int8(bundle: ModelBundle, model_file: Path, quantization: DynamicInt8Config) -> tuple[AppliedStage, ...]:
    """TFLiteConverter's dynamic range quantization; with `keep_float`, ai-edge-quantizer's (it takes per-op
    settings, the converter does not)."""
    import tensorflow as tf

    if quantization.keep_float:
        return quantize_float_model(lambda path: _write_converted(bundle, path), model_file, quantization)

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

    _write_converted(bundle, model_file, configure)
    return _converter_stage(quantization)


def _weight_int8(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    """TFLiteConverter has no weight-only int8 mode: ai-edge-quantizer rewrites the float model (`keep_float` ops
    left float)."""
    return quantize_float_model(lambda path: _write_converted(bundle, path), model_file, quantization)


def _int8(bundle: ModelBundle, model_file: Path, quantization: Int8StaticConfig) -> tuple[AppliedStage, ...]:
    """Full-integer compute calibrated on real samples; float inputs and outputs stay float32 (quantized inside
    the model), integer and bool inputs keep their type. With `keep_float`, ai-edge-quantizer quantizes the float
    model on the same samples, leaving those layers' ops float."""
    import tensorflow as tf

    samples = per_sample(calibration_feed(bundle, quantization.calibration_samples))
    if quantization.keep_float:
        return quantize_float_model(lambda path: _write_converted(bundle, path), model_file, quantization, samples)

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # one dict per sample, by input name: a list would be matched to the flatbuffer's inputs, sorted by name
        converter.representative_dataset = lambda: iter(samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter._experimental_disable_per_channel = not quantization.per_channel

    _write_converted(bundle, model_file, configure)
    return _converter_stage(quantization)


def _qat_int8(bundle: ModelBundle, model_file: Path, quantization: QatInt8Config) -> tuple[AppliedStage, ...]:
    """TFMOT QAT on a tf_keras twin, then TFLiteConverter with the ranges it learned."""
    from quantize.qat.keras_qat import keras_qat_model, qat_tflite_bytes

    model, effect = keras_qat_model(bundle, quantization)
    with converter_errors(lambda exc: converter_failure(exc, bundle.source.path), "The TFLite conversion",
                          *tensorflow_errors()):
        model_file.write_bytes(qat_tflite_bytes(model, bundle.inputs))
    return (AppliedStage("quantize", quantization.to_json(), f"{effect['tool']} -> {TOOL}", effect),)


def convert_tf_to_tflite(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    """Write `model_file` with the handler registered for the mode; returns the quantization stage (if any)."""
    return handler_for(quantization.mode, bundle.framework, TARGET)(bundle, model_file, quantization)


for _framework in ("keras", "tensorflow"):
    register_handler("none", _framework, TARGET, _float)
    register_handler("fp16", _framework, TARGET, _fp16)
    register_handler("dynamic-int8", _framework, TARGET, _dynamic_int8, keep_float=True)
    register_handler("weight-int8", _framework, TARGET, _weight_int8, keep_float=True)
    register_handler("int8", _framework, TARGET, _int8, keep_float=True)
register_handler("qat-int8", "keras", TARGET, _qat_int8)
explain_refusal("qat-int8", "tensorflow", TARGET, "QAT fine-tunes a Keras model, and a SavedModel is not one; "
                "export the Keras model (.keras) instead, or choose int8")
