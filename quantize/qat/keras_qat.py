"""qat-int8 for Keras: TFMOT `quantize_model` on a tf_keras twin, fine-tuned with fake quantization.

TFMOT only works on Keras 2, so the model goes through the same bridge as the pruning stages
(`keras_bridge.to_tf_keras`). The QAT model carries learned fake-quant ranges, so TFLiteConverter
with `optimizations=[DEFAULT]` alone produces a full-integer model from it (no representative data).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from pipeline.core.bundle import ModelBundle, TensorSpec
from pipeline.core.errors import UnsupportedRouteError
from quantize.config import QatInt8Config
from quantize.finetune import baseline, fine_tune_effect, fit_keras, keras_inputs, objective_for
from quantize.qat.common import qat_training_data

CALIBRATION_BATCH = 512  # training samples whose ranges start the activation quantizers


def _twin(bundle: ModelBundle) -> Any:
    from quantize.pruning.keras_bridge import to_tf_keras

    try:
        return to_tf_keras(bundle.model)
    except UnsupportedRouteError as exc:
        raise UnsupportedRouteError(
            f"Quantization 'qat-int8' needs TFMOT, reached through the same tf_keras bridge as pruning, which "
            f"refused the model: {exc} Or choose --quantize int8 (post-training, no TFMOT)."
        ) from None


@contextmanager
def _ranges_from_one_batch() -> Iterator[None]:
    """Moving-average quantizers with EMA decay 0: one training-mode call sets each range to that batch's.

    TFMOT starts activation ranges at [-6, 6] and moves them with decay 0.999, about 9% of the way in
    a 100-step fine-tune; logits clipped at 6 then cost accuracy. Starting from real ranges fixes it.
    """
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    original = quant_ops.MovingAvgQuantize

    def calibrating(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **{**kwargs, "ema_decay": 0.0})

    quant_ops.MovingAvgQuantize = calibrating
    try:
        yield
    finally:
        quant_ops.MovingAvgQuantize = original


def keras_qat_model(bundle: ModelBundle, config: QatInt8Config) -> tuple[Any, dict[str, Any]]:
    """The fine-tuned tf_keras QAT model and the effect (accuracy before/after, fine-tune seconds)."""
    import tf_keras

    from quantize.pruning.keras_bridge import import_tfmot

    objective = objective_for(bundle, qat_training_data(bundle, config))
    tfmot = import_tfmot()
    twin = _twin(bundle)
    base = baseline(bundle)
    tf_keras.utils.set_random_seed(config.seed)
    try:
        model = tfmot.quantization.keras.quantize_model(twin)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UnsupportedRouteError(
            f"TFMOT quantize_model cannot wrap Keras model '{twin.name}': {str(exc)[:400]}. Replace the layers "
            "its default 8-bit scheme does not support, or choose --quantize int8 (post-training)."
        ) from None
    static = bundle.static_batch  # a fixed model batch: train in exactly that size
    with _ranges_from_one_batch():
        model(keras_inputs(objective.feed, static or min(objective.samples, CALIBRATION_BATCH)), training=True)
    started = time.perf_counter()
    fit_keras(model, objective, config.fine_tune_epochs, config.batch_size, config.learning_rate, static_batch=static)
    seconds = time.perf_counter() - started
    tool = (f"tensorflow-model-optimization {tfmot.__version__} quantize_model (default 8-bit scheme) on a "
            "tf_keras twin of the Keras 3 model, fine-tuned with Adam")
    effect = fine_tune_effect(base, replace(bundle, model=model), objective, config.fine_tune_epochs, seconds)
    return model, {"tool": tool, **effect}


def qat_tflite_bytes(model: Any, inputs: TensorSpec | Sequence[TensorSpec]) -> bytes:
    """Convert the QAT model (batch 1, like the Keras route) with TFLiteConverter and its learned ranges.

    `inputs`: the model's input specs in order (a single spec for a single-input model).
    """
    import tensorflow as tf

    specs = [inputs] if isinstance(inputs, TensorSpec) else list(inputs)
    signature = [tf.TensorSpec([1, *spec.shape[1:]], tf.as_dtype(spec.dtype), name=spec.name) for spec in specs]

    def call(*tensors: Any) -> Any:
        return model(tensors[0] if len(tensors) == 1 else list(tensors), training=False)

    serve = tf.function(call, input_signature=signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()
