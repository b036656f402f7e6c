"""qat-int8 for Keras: TFMOT `quantize_model` on a tf_keras twin, fine-tuned with fake quantization.

TFMOT only works on Keras 2, so the model goes through the same bridge as the pruning stages
(`keras_bridge.to_tf_keras`). The QAT model carries learned fake-quant ranges, so TFLiteConverter
with `optimizations=[DEFAULT]` alone produces a full-integer model from it (no representative data).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from pipeline.core.bundle import ModelBundle, TensorSpec, run_in_batches
from pipeline.core.errors import UnsupportedRouteError
from quantize.config import QatInt8Config
from quantize.pruning.common import eval_accuracy
from quantize.qat.common import qat_effect, qat_training_data

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


def _accuracy(model: Any, bundle: ModelBundle) -> float | None:
    data = bundle.eval_data
    if data is None or data.y is None:
        return None
    outputs = run_in_batches(lambda m, chunk: np.asarray(m(chunk, training=False)), model, data.x, 256,
                             static_batch=bundle.input_spec.shape[0])
    return round(float(np.mean(outputs.argmax(-1) == data.y)), 6)


def keras_qat_model(bundle: ModelBundle, config: QatInt8Config) -> tuple[Any, dict[str, Any]]:
    """The fine-tuned tf_keras QAT model and the effect (accuracy before/after, fine-tune seconds)."""
    import tf_keras

    from quantize.pruning.keras_bridge import import_tfmot

    data = qat_training_data(bundle, config)
    tfmot = import_tfmot()
    twin = _twin(bundle)
    before = eval_accuracy(bundle)
    tf_keras.utils.set_random_seed(config.seed)
    try:
        model = tfmot.quantization.keras.quantize_model(twin)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UnsupportedRouteError(
            f"TFMOT quantize_model cannot wrap Keras model '{twin.name}': {str(exc)[:400]}. Replace the layers "
            "its default 8-bit scheme does not support, or choose --quantize int8 (post-training)."
        ) from None
    static = bundle.input_spec.shape[0]  # a fixed model batch: train in exactly that size
    batch_size = static or config.batch_size
    usable = len(data) - len(data) % static if static else len(data)
    probe = np.asarray(twin(data.x[:batch_size], training=False))
    probabilities = bool(probe.min() >= 0 and np.allclose(probe.sum(axis=-1), 1.0, atol=1e-3))
    with _ranges_from_one_batch():
        model(data.x[: static or min(len(data), CALIBRATION_BATCH)], training=True)
    model.compile(optimizer=tf_keras.optimizers.Adam(config.learning_rate),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities))
    started = time.perf_counter()
    model.fit(data.x[:usable], data.y[:usable], batch_size=batch_size, epochs=config.fine_tune_epochs,
              shuffle=True, verbose=0)
    seconds = time.perf_counter() - started
    tool = (f"tensorflow-model-optimization {tfmot.__version__} quantize_model (default 8-bit scheme) on a "
            "tf_keras twin of the Keras 3 model, fine-tuned with Adam")
    return model, qat_effect(tool, config, data, before, _accuracy(model, bundle), seconds)


def qat_tflite_bytes(model: Any, spec: TensorSpec) -> bytes:
    """Convert the QAT model (batch 1, like the Keras route) with TFLiteConverter and its learned ranges."""
    import tensorflow as tf

    serve = tf.function(lambda x: model(x, training=False),
                        input_signature=[tf.TensorSpec([1, *spec.shape[1:]], tf.float32, name=spec.name)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()
