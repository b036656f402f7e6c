"""SavedModels as users write them: `tf.saved_model.save` of a subclassed Keras model (variables kept as resources,
a `serving_default` signature over a tf.function) converts on every TF route to an artifact that holds its weights,
and an artifact without them is refused with the reason."""

import json

import numpy as np
import pytest

from exporters.routes import tf_to_executorch
from exporters.routes.tf_source import check_weight_bytes
from exporters.routes.tf_to_tflite import tflite_weights, weight_notes
from exporters.tfjs import TFJSConfig, TFJSExporter
from exporters.tflite import TFLiteConfig, TFLiteExporter
from pipeline.core.datasets.base import Dataset
from pipeline.core.errors import ExportError
from pipeline.core.tensors import parse_input_specs
from pipeline.intake import load_model
from quantize import quantization_config


def _save_subclassed(path):
    """A subclassed keras.Model (two convs, two dense layers) saved the way its users do."""
    import keras
    import tensorflow as tf

    class Classifier(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv1 = keras.layers.Conv2D(32, 3, activation="relu", bias_initializer="random_normal")
            self.conv2 = keras.layers.Conv2D(64, 3, activation="relu", bias_initializer="random_normal")
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.hidden = keras.layers.Dense(512, activation="relu", bias_initializer="random_normal")
            self.head = keras.layers.Dense(10, bias_initializer="random_normal")

        def call(self, x):
            return self.head(self.hidden(self.pool(self.conv2(self.conv1(x)))))

    keras.utils.set_random_seed(0)
    model = Classifier()
    model(np.zeros((1, 16, 16, 3), np.float32))
    serve = tf.function(lambda image: {"logits": model(image)})
    tf.saved_model.save(model, str(path), signatures=serve.get_concrete_function(
        tf.TensorSpec([None, 16, 16, 3], tf.float32, name="image")))
    return 4 * model.count_params()


@pytest.fixture(scope="module")
def subclassed(tmp_path_factory):
    """(bundle with real-looking data, the model's parameter bytes, the SavedModel's path)."""
    path = tmp_path_factory.mktemp("saved") / "classifier"
    parameter_bytes = _save_subclassed(path)
    rng = np.random.default_rng(0)
    bundle = load_model(str(path)).with_data(
        eval_data=Dataset("eval", {"image": rng.uniform(0, 1, (24, 16, 16, 3)).astype(np.float32)}, None, "NHWC"),
        calibration_data=Dataset("calibration", {"image": rng.uniform(0, 1, (64, 16, 16, 3)).astype(np.float32)},
                                 None, "NHWC"))
    return bundle, parameter_bytes, path


def _run_signature(model_file, feed):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(model_file)).get_signature_runner()
    results = [runner(**{name: array[i:i + 1] for name, array in feed.items()})
               for i in range(len(next(iter(feed.values()))))]
    return {name: np.concatenate([r[name] for r in results]) for name in results[0]}


@pytest.mark.parametrize(("mode", "share"), [("none", (0.98, 1.05)), ("int8", (0.24, 0.35))])
def test_subclassed_saved_model_converts_to_a_tflite_holding_its_weights(subclassed, tmp_path, mode, share):
    bundle, parameter_bytes, _ = subclassed
    output = TFLiteExporter().export(bundle, tmp_path, quantization_config(mode), TFLiteConfig())
    model_file = tmp_path / output.model_file
    low, high = share
    assert low * parameter_bytes <= model_file.stat().st_size <= high * parameter_bytes + 8192
    weight_bytes, variable_ops = tflite_weights(model_file)
    assert variable_ops == ()
    assert output.notes == {"source_parameter_bytes": parameter_bytes, "artifact_weight_bytes": weight_bytes}
    feed = bundle.feed(bundle.eval_data)
    outputs = _run_signature(model_file, feed)
    reference = bundle.predict_outputs(feed)[0]
    assert list(outputs) == ["logits"]
    if mode == "none":
        np.testing.assert_allclose(outputs["logits"], reference, atol=1e-4)
    else:
        assert np.corrcoef(outputs["logits"].ravel(), reference.ravel())[0, 1] >= 0.99


def test_a_tflite_reading_variables_it_does_not_hold_is_refused(subclassed, tmp_path):
    """The converter's own SavedModel path keeps this model's weights out of the flatbuffer (READ_VARIABLE)."""
    import tensorflow as tf

    bundle, parameter_bytes, path = subclassed
    model_file = tmp_path / "model.tflite"
    model_file.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(path)).convert())
    assert model_file.stat().st_size < 0.1 * parameter_bytes
    assert set(tflite_weights(model_file)[1]) == {"VAR_HANDLE", "READ_VARIABLE"}
    with pytest.raises(ExportError, match=r"weights did not make it into the TFLite file model.tflite.*"
                       rf"source's parameters are {parameter_bytes} bytes.*VAR_HANDLE, READ_VARIABLE ops.*model.export"):
        weight_notes(bundle, model_file, "none")


@pytest.mark.parametrize(("mode", "artifact_share", "refused"), [
    ("none", 0.002, True),  # the case: 29 KB for 14.7M float32 parameters
    ("none", 0.95, False), ("fp16", 0.5, False), ("int8", 0.26, False), ("dynamic-int8", 0.03, False),
    ("int8", 0.02, True), ("fp16", 0.04, True),
])
def test_the_expected_weight_share_follows_the_mode(mode, artifact_share, refused):
    source = 14_700_000 * 4
    artifact = int(artifact_share * source)
    if refused:
        with pytest.raises(ExportError, match=rf"holds {artifact} weight bytes.*mode '{mode}'"):
            check_weight_bytes(source, artifact, mode, "artifact")
    else:
        assert check_weight_bytes(source, artifact, mode, "artifact") == {
            "source_parameter_bytes": source, "artifact_weight_bytes": artifact}


def test_subclassed_saved_model_converts_to_tfjs_with_its_weights(subclassed, tmp_path):
    bundle, parameter_bytes, _ = subclassed
    output = TFJSExporter().export(bundle, tmp_path, quantization_config("uint8"), TFJSConfig())
    assert 0.24 <= output.notes["artifact_weight_bytes"] / parameter_bytes <= 0.3
    signature = json.loads((tmp_path / "model.json").read_text())["signature"]
    assert list(signature["inputs"]) == ["image"] and list(signature["outputs"]) == ["logits"]


@pytest.mark.slow  # about 30-50 s here, most of it importing torch and executorch
def test_subclassed_saved_model_converts_to_executorch_with_its_weights(subclassed, tmp_path):
    import torch
    from executorch.runtime import Runtime

    bundle, parameter_bytes, _ = subclassed
    tf_to_executorch.convert_keras_to_executorch(bundle, tmp_path / "model.pte", quantization_config("none"), "xnnpack")
    assert (tmp_path / "model.pte").stat().st_size >= 0.98 * parameter_bytes
    feed = bundle.feed(bundle.eval_data.take(1))
    method = Runtime.get().load_program(tmp_path / "model.pte").load_method("forward")
    outputs = method.execute([torch.from_numpy(feed["image"])])
    np.testing.assert_allclose(outputs[0].numpy(), bundle.predict_outputs(feed)[0], atol=1e-4)


def _save_text_scorer(path):
    """A tf.Module whose signature takes int64 token ids and a float weight by name, with a dynamic sequence
    length, and returns two named outputs."""
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.Variable(tf.random.stateless_normal((50, 8), seed=(1, 2)))
            self.proj = tf.Variable(tf.random.stateless_normal((8, 3), seed=(3, 4)))

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name="token_ids"),
                                      tf.TensorSpec([None, 1], tf.float32, name="weight")])
        def serve(self, token_ids, weight):
            pooled = tf.reduce_mean(tf.gather(self.table, token_ids), axis=1) * weight
            return {"scores": tf.matmul(pooled, self.proj), "embedding": tf.math.l2_normalize(pooled, axis=-1)}

    module = Scorer()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def test_saved_model_inputs_are_taken_by_name_with_the_sequence_length_given(tmp_path):
    _save_text_scorer(tmp_path / "scorer")
    bundle = load_model(str(tmp_path / "scorer"), input_specs=parse_input_specs("token_ids:1x12:int64,weight:1x1:float32"))
    rng = np.random.default_rng(0)
    feed = {"token_ids": rng.integers(0, 50, (6, 12)), "weight": rng.uniform(0.5, 2, (6, 1)).astype(np.float32)}
    bundle = bundle.with_data(eval_data=Dataset("eval", feed, None, "NC"), calibration_data=Dataset("cal", feed, None, "NC"))
    for mode in ("none", "dynamic-int8"):
        (tmp_path / mode).mkdir()
        output = TFLiteExporter().export(bundle, tmp_path / mode, quantization_config(mode), TFLiteConfig())
        from ai_edge_litert.interpreter import Interpreter

        inputs = Interpreter(model_path=str(tmp_path / mode / output.model_file)).get_signature_runner().get_input_details()
        assert {name: (np.dtype(d["dtype"]).name, list(d["shape"])) for name, d in inputs.items()} == {
            "token_ids": ("int64", [1, 12]), "weight": ("float32", [1, 1])}
        outputs = _run_signature(tmp_path / mode / output.model_file, bundle.feed(feed))
        assert list(outputs) == ["embedding", "scores"]
        for artifact, reference in zip(outputs.values(), bundle.predict_outputs(feed), strict=True):
            np.testing.assert_allclose(artifact, reference, atol=1e-5 if mode == "none" else 0.05)
