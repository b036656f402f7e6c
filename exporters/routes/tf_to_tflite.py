"""Keras model or TensorFlow SavedModel -> `.tflite` through TFLiteConverter."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from exporters.base import AppliedStage
from exporters.routes.calibration import calibration_samples
from exporters.routes.tflite_quantizer import quantize_float_model
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, UnsupportedRouteError, first_line
from quantize import (
    DynamicInt8Config,
    Fp16Config,
    Int8StaticConfig,
    NoQuantization,
    QatInt8Config,
    QuantizationConfig,
    WeightOnlyInt8Config,
)

KERAS_ROUTE = "Keras model.export (SavedModel, batch 1) -> TFLiteConverter.from_saved_model"
SAVED_MODEL_ROUTE = "SavedModel -> TFLiteConverter.from_saved_model"
TOOL = "tf.lite.TFLiteConverter"


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


def _configure(converter: Any, bundle: ModelBundle, quantization: QuantizationConfig) -> None:
    import tensorflow as tf

    if isinstance(quantization, Fp16Config):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif isinstance(quantization, DynamicInt8Config):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif isinstance(quantization, Int8StaticConfig):
        samples = calibration_samples(bundle, quantization.calibration_samples)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[None]] for sample in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter._experimental_disable_per_channel = not quantization.per_channel


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


def _convert_qat(bundle: ModelBundle, model_file: Path, quantization: QatInt8Config) -> tuple[AppliedStage, ...]:
    """TFMOT QAT on a tf_keras twin, then TFLiteConverter with the ranges it learned."""
    if bundle.framework != "keras":
        raise UnsupportedRouteError(
            f"Quantization '{quantization.mode}' is not expressible for a SavedModel source: QAT fine-tunes a Keras "
            "model. Export the Keras model (.keras) instead, or choose --quantize int8."
        )
    from quantize.qat.keras_qat import keras_qat_model, qat_tflite_bytes

    model, effect = keras_qat_model(bundle, quantization)
    try:
        model_file.write_bytes(qat_tflite_bytes(model, bundle.input_spec))
    except Exception as exc:  # the converter raises ConverterError and assorted others
        raise converter_failure(exc, bundle.source.path) from None
    return (AppliedStage("quantize", quantization.to_json(), f"{effect['tool']} -> {TOOL}", effect),)


def convert_tf_to_tflite(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    """Write `model_file`; returns the quantization stage applied (if any)."""
    import tensorflow as tf

    if isinstance(quantization, QatInt8Config):
        return _convert_qat(bundle, model_file, quantization)

    with tempfile.TemporaryDirectory(prefix="tflite-export-") as scratch:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(_saved_model_dir(bundle, Path(scratch))))

        def convert(path: Path, config: QuantizationConfig) -> None:
            _configure(converter, bundle, config)
            try:
                path.write_bytes(converter.convert())
            except Exception as exc:  # the converter raises ConverterError and assorted others
                raise converter_failure(exc, bundle.source.path) from None

        if isinstance(quantization, WeightOnlyInt8Config):  # TFLiteConverter has no weight-only int8 mode
            return quantize_float_model(lambda path: convert(path, NoQuantization()), model_file, quantization)
        convert(model_file, quantization)
    if quantization.mode == "none":
        return ()
    return (AppliedStage("quantize", quantization.to_json(), TOOL),)
