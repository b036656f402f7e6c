"""Keras model or TensorFlow SavedModel -> `.tflite` through TFLiteConverter: one registered handler per mode."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporters.base import AppliedStage
from exporters.routes.calibration import calibration_samples
from exporters.routes.tflite_quantizer import quantize_float_model
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, converter_errors, first_line, tensorflow_errors
from quantize import (
    Int8StaticConfig,
    QatInt8Config,
    QuantizationConfig,
    explain_refusal,
    handler_for,
    register_handler,
)

KERAS_ROUTE = "Keras model.export (SavedModel, batch 1) -> TFLiteConverter.from_saved_model"
SAVED_MODEL_ROUTE = "SavedModel -> TFLiteConverter.from_saved_model"
TOOL = "tf.lite.TFLiteConverter"
TARGET = "tflite"


def _saved_model_dir(bundle: ModelBundle, scratch: Path) -> Path:
    """The SavedModel to convert: the source itself, or the Keras model exported with batch 1."""
    if bundle.framework == "tensorflow":
        return Path(bundle.source.path)
    import tensorflow as tf

    spec = bundle.input_spec
    path = scratch / "saved_model"
    bundle.model.export(
        str(path), format="tf_saved_model", verbose=False,
        input_signature=[tf.TensorSpec([1, *spec.shape[1:]], tf.float32, name=spec.name)],
    )
    return path


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


def _write_converted(bundle: ModelBundle, model_file: Path, configure: Callable[[Any], None] | None = None) -> None:
    """Export the SavedModel (if needed), let `configure` set up the converter, and write its output."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="tflite-export-") as scratch:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(_saved_model_dir(bundle, Path(scratch))))
        if configure is not None:
            configure(converter)
        with converter_errors(lambda exc: converter_failure(exc, bundle.source.path), "The TFLite conversion",
                              *tensorflow_errors()):
            model_file.write_bytes(converter.convert())


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


def _dynamic_int8(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    import tensorflow as tf

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

    _write_converted(bundle, model_file, configure)
    return _converter_stage(quantization)


def _weight_int8(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    """TFLiteConverter has no weight-only int8 mode: ai-edge-quantizer rewrites the float model."""
    return quantize_float_model(lambda path: _write_converted(bundle, path), model_file, quantization)


def _int8(bundle: ModelBundle, model_file: Path, quantization: Int8StaticConfig) -> tuple[AppliedStage, ...]:
    import tensorflow as tf

    samples = calibration_samples(bundle, quantization.calibration_samples)

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[None]] for sample in samples)
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
        model_file.write_bytes(qat_tflite_bytes(model, bundle.input_spec))
    return (AppliedStage("quantize", quantization.to_json(), f"{effect['tool']} -> {TOOL}", effect),)


def convert_tf_to_tflite(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    """Write `model_file` with the handler registered for the mode; returns the quantization stage (if any)."""
    return handler_for(quantization.mode, bundle.framework, TARGET)(bundle, model_file, quantization)


for _framework in ("keras", "tensorflow"):
    register_handler("none", _framework, TARGET, _float)
    register_handler("fp16", _framework, TARGET, _fp16)
    register_handler("dynamic-int8", _framework, TARGET, _dynamic_int8)
    register_handler("weight-int8", _framework, TARGET, _weight_int8)
    register_handler("int8", _framework, TARGET, _int8)
register_handler("qat-int8", "keras", TARGET, _qat_int8)
explain_refusal("qat-int8", "tensorflow", TARGET, "QAT fine-tunes a Keras model, and a SavedModel is not one; "
                "export the Keras model (.keras) instead, or choose int8")
