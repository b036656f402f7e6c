"""Keras models with several named inputs (float, int, bool) and several outputs on every TF route: each artifact
keeps the inputs by name and dtype and reproduces every output of the source, run in its own runtime."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from exporters.routes import tf_to_executorch
from exporters.routes.tf_to_tfjs import convert_tf_to_tfjs
from exporters.tfjs import TFJSConfig, TFJSExporter
from exporters.tflite import TFLiteConfig, TFLiteExporter
from pipeline.core.datasets.base import Dataset
from pipeline.core.errors import UnsupportedRouteError
from pipeline.intake.memory import bundle_from_object
from quantize import quantization_config

TFJS_NODE = Path(__file__).resolve().parents[2] / "device_runtime" / "tfjs_node"


def _two_io_model():
    """Image [B, 8, 8, 1] and vector [B, 4] -> class probabilities [B, 10] and a regression head [B, 3]."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    features = keras.Input((4,), name="features")
    h = keras.layers.Flatten()(keras.layers.Conv2D(8, 3, activation="relu")(image))
    h = keras.layers.Concatenate()([h, keras.layers.Dense(16, activation="relu")(features)])
    h = keras.layers.Dense(32, activation="relu")(h)
    probs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    regression = keras.layers.Dense(3, name="regression")(h)
    return keras.Model([image, features], [probs, regression])


def _embedding():
    """Embedding(100, 32) with unit-scale vectors, like a trained one (the default init is 20x smaller)."""
    import keras

    return keras.layers.Embedding(100, 32, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0))


def _token_model():
    """Token ids [B, 16] int32 -> Embedding(100, 32) -> mean over tokens -> Dense(5)."""
    import keras

    keras.utils.set_random_seed(1)
    ids = keras.Input((16,), dtype="int32", name="token_ids")
    h = keras.layers.GlobalAveragePooling1D()(_embedding()(ids))
    return keras.Model(ids, keras.layers.Dense(5, name="logits")(h))


def _mixed_model():
    """Token ids (int32), a bool mask and a float vector -> two outputs."""
    import keras

    keras.utils.set_random_seed(2)
    ids = keras.Input((16,), dtype="int32", name="input_ids")
    mask = keras.Input((16,), dtype="bool", name="mask")
    features = keras.Input((4,), name="features")
    tokens = _embedding()(ids) * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    h = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling1D()(tokens), keras.layers.Dense(8)(features)])
    return keras.Model([ids, mask, features], [keras.layers.Dense(5)(h), keras.layers.Dense(2)(h)])


def _text_encoder():
    """input_ids and attention_mask (int64 [B, 16]) -> masked mean of token embeddings -> Dense -> the L2-normalized
    embedding [B, 32] and the pooled vector [B, 32] (inputs alike and outputs alike in dtype and shape)."""
    import keras

    keras.utils.set_random_seed(3)
    ids = keras.Input((16,), dtype="int64", name="input_ids")
    mask = keras.Input((16,), dtype="int64", name="attention_mask")
    weights = keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    pooled = keras.ops.sum(_embedding()(ids) * weights, axis=1) / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)
    embedding = keras.layers.UnitNormalization()(keras.layers.Dense(32, activation="relu")(pooled))
    return keras.Model([ids, mask], [embedding, pooled])


def _feed(rng, count):
    return {"image": rng.uniform(0, 1, (count, 8, 8, 1)).astype(np.float32),
            "features": rng.normal(0, 1, (count, 4)).astype(np.float32)}


def _with_data(model, feed_of):
    rng = np.random.default_rng(0)
    bundle = bundle_from_object(model)
    return bundle.with_data(eval_data=Dataset("eval", feed_of(rng, 32), None, "NHWC"),
                            calibration_data=Dataset("calibration", feed_of(rng, 64), None, "NHWC"))


@pytest.fixture(scope="module")
def two_io():
    return _with_data(_two_io_model(), _feed)


@pytest.fixture(scope="module")
def tokens():
    return _with_data(_token_model(), lambda rng, n: {"token_ids": rng.integers(0, 100, (n, 16)).astype(np.int32)})


@pytest.fixture(scope="module")
def mixed():
    return _with_data(_mixed_model(), lambda rng, n: {
        "input_ids": rng.integers(0, 100, (n, 16)).astype(np.int32), "mask": rng.uniform(0, 1, (n, 16)) > 0.3,
        "features": rng.normal(0, 1, (n, 4)).astype(np.float32)})


@pytest.fixture(scope="module")
def text_encoder():
    return _with_data(_text_encoder(), lambda rng, n: {
        "input_ids": rng.integers(0, 100, (n, 16)), "attention_mask": (rng.uniform(0, 1, (n, 16)) > 0.2).astype(np.int64)})


def _export_tflite(bundle, mode, out_dir):
    output = TFLiteExporter().export(bundle, out_dir, quantization_config(mode), TFLiteConfig())
    return out_dir / output.model_file, output


def _run_tflite(model_file, feed):
    """Every output of the artifact's signature (sorted by name: the source's order), one sample at a time."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_file))
    runner = interpreter.get_signature_runner()
    results = [runner(**{name: array[i:i + 1] for name, array in feed.items()}) for i in range(len(next(iter(feed.values()))))]
    return [np.concatenate([r[name] for r in results]) for name in sorted(results[0])], interpreter


def _signature(interpreter):
    details = interpreter.get_signature_runner().get_input_details()
    return {name: np.dtype(d["dtype"]).name for name, d in details.items()}


def _assert_close(artifact, reference, mode):
    """fp32 matches to float precision; a quantized output follows the reference (correlation >= 0.99) with a
    mean error under 2% of the output's range (a sample past the calibrated range may clip)."""
    if mode == "none":
        np.testing.assert_allclose(artifact, reference, atol=1e-5 * max(1.0, np.abs(reference).max()))
    else:
        assert np.corrcoef(artifact.ravel(), reference.ravel())[0, 1] >= 0.99
        assert np.abs(artifact - reference).mean() <= 0.02 * (reference.max() - reference.min())


def _op_names(interpreter):
    return {op["op_name"] for op in interpreter._get_ops_details()}


WEIGHT_SHARE = {"none": (0.95, 1.1), "fp16": (0.45, 0.6), "dynamic-int8": (0.2, 0.4), "weight-int8": (0.2, 0.4),
                "int8": (0.2, 0.4)}


@pytest.mark.parametrize("mode", list(WEIGHT_SHARE))
def test_two_inputs_two_outputs_reach_tflite(two_io, tmp_path, mode):
    model_file, output = _export_tflite(two_io, mode, tmp_path)
    feed = two_io.feed(two_io.eval_data)
    outputs, interpreter = _run_tflite(model_file, feed)
    source = two_io.predict_outputs(feed)
    assert _signature(interpreter) == {"image": "float32", "features": "float32"}
    assert interpreter.get_signature_list()["serving_default"]["outputs"] == ["output_0", "output_1"]
    assert [o.shape for o in outputs] == [s.shape for s in source] == [(32, 10), (32, 3)]
    for artifact, reference in zip(outputs, source, strict=True):
        _assert_close(artifact, reference, mode)
    assert np.mean(outputs[0].argmax(1) == source[0].argmax(1)) >= (1.0 if mode == "none" else 0.9)
    notes = output.notes
    assert notes["source_parameter_bytes"] == 4 * two_io.model.count_params()
    low, high = WEIGHT_SHARE[mode]
    assert low <= notes["artifact_weight_bytes"] / notes["source_parameter_bytes"] <= high
    if mode == "int8":
        assert "CONV_2D" in _op_names(interpreter) and {"QUANTIZE", "DEQUANTIZE"} <= _op_names(interpreter)


@pytest.mark.parametrize("mode", ["none", "dynamic-int8", "int8"])
def test_token_ids_stay_integer_in_tflite(tokens, tmp_path, mode):
    model_file, output = _export_tflite(tokens, mode, tmp_path)
    feed = tokens.feed(tokens.eval_data)
    outputs, interpreter = _run_tflite(model_file, feed)
    assert _signature(interpreter) == {"token_ids": "int32"}
    _assert_close(outputs[0], tokens.predict_outputs(feed)[0], mode)
    assert not {"READ_VARIABLE", "VAR_HANDLE"} & _op_names(interpreter)
    if mode != "none":
        assert output.notes["artifact_weight_bytes"] <= 0.4 * output.notes["source_parameter_bytes"]


def test_int8_keeps_integer_and_bool_inputs_next_to_float_ones(mixed, tmp_path):
    model_file, _ = _export_tflite(mixed, "int8", tmp_path)
    feed = mixed.feed(mixed.eval_data)
    outputs, interpreter = _run_tflite(model_file, feed)
    assert _signature(interpreter) == {"input_ids": "int32", "mask": "bool", "features": "float32"}
    for artifact, reference in zip(outputs, mixed.predict_outputs(feed), strict=True):
        _assert_close(artifact, reference, "int8")


def _run_tfjs(model_dir, feed):
    """Run the graph model in TF.js (Node, cpu backend) on a feed; returns {output name: array}."""
    script = """
const fs = require('fs'), path = require('path');
const tf = require('@tensorflow/tfjs');
const [dir, feedFile] = process.argv.slice(1);
const handler = {load: async () => {
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const specs = [], shards = [];
  for (const g of m.weightsManifest) { specs.push(...g.weights); for (const p of g.paths) shards.push(fs.readFileSync(path.join(dir, p))); }
  const data = Buffer.concat(shards);
  return {modelTopology: m.modelTopology, weightSpecs: specs, signature: m.signature, format: m.format,
          weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)};
}};
(async () => {
  await tf.setBackend('cpu');
  const model = await tf.loadGraphModel(handler);
  const feed = JSON.parse(fs.readFileSync(feedFile, 'utf8'));
  const inputs = {};
  for (const [name, v] of Object.entries(feed)) inputs[name] = tf.tensor(v.data, v.shape, v.dtype);
  const names = model.outputs.map((o) => o.name);
  let results = model.execute(inputs, names);
  if (!Array.isArray(results)) results = [results];
  const out = {};
  names.forEach((name, i) => { out[name] = {shape: results[i].shape, data: Array.from(results[i].dataSync())}; });
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""
    feed_file = model_dir / "feed.json"
    dtypes = {"f": "float32", "b": "bool"}  # TF.js holds integers (int64 too) as int32
    feed_file.write_text(json.dumps({name: {"data": array.astype(float if array.dtype.kind == "f" else int).ravel().tolist(),
                                            "shape": list(array.shape), "dtype": dtypes.get(array.dtype.kind, "int32")}
                                     for name, array in feed.items()}))
    run = subprocess.run(["node", "-e", script, str(model_dir), str(feed_file)], cwd=TFJS_NODE,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    by_node = {name: np.asarray(v["data"], np.float32).reshape(v["shape"]) for name, v in json.loads(run.stdout).items()}
    signature = json.loads((model_dir / "model.json").read_text())["signature"]["outputs"]
    return {key: by_node[spec["name"].removesuffix(":0")] for key, spec in signature.items()}


def test_two_input_model_reaches_tfjs_with_both_inputs(two_io, tmp_path):
    output = TFJSExporter().export(two_io, tmp_path, quantization_config("none"), TFJSConfig())
    model = json.loads((tmp_path / "model.json").read_text())
    inputs = model["signature"]["inputs"]
    assert sorted(inputs) == ["features", "image"]
    assert {name: spec["dtype"] for name, spec in inputs.items()} == {"features": "DT_FLOAT", "image": "DT_FLOAT"}
    assert [int(d["size"]) for d in inputs["image"]["tensorShape"]["dim"]] == [1, 8, 8, 1]
    assert sorted(model["signature"]["outputs"]) == ["output_0", "output_1"]
    assert 0.95 <= output.notes["artifact_weight_bytes"] / output.notes["source_parameter_bytes"] <= 1.05
    feed = two_io.feed(two_io.eval_data.take(1))
    outputs = _run_tfjs(tmp_path, feed)
    for name, reference in zip(["output_0", "output_1"], two_io.predict_outputs(feed), strict=True):
        np.testing.assert_allclose(outputs[name], reference, atol=1e-5)


def test_token_ids_stay_integer_in_tfjs(mixed, tmp_path):
    convert_tf_to_tfjs(mixed, tmp_path, quantization_config("fp16"))
    inputs = json.loads((tmp_path / "model.json").read_text())["signature"]["inputs"]
    assert {name: spec["dtype"] for name, spec in inputs.items()} == {
        "input_ids": "DT_INT32", "mask": "DT_BOOL", "features": "DT_FLOAT"}
    feed = mixed.feed(mixed.eval_data.take(1))
    outputs = _run_tfjs(tmp_path, feed)
    for name, reference in zip(["output_0", "output_1"], mixed.predict_outputs(feed), strict=True):
        np.testing.assert_allclose(outputs[name], reference, atol=1e-2)


@pytest.mark.parametrize("mode", ["none", "int8"])
def test_text_encoder_keeps_int64_inputs_in_tflite(text_encoder, tmp_path, mode):
    model_file, _ = _export_tflite(text_encoder, mode, tmp_path)
    feed = text_encoder.feed(text_encoder.eval_data)
    outputs, interpreter = _run_tflite(model_file, feed)
    assert _signature(interpreter) == {"input_ids": "int64", "attention_mask": "int64"}
    for artifact, reference in zip(outputs, text_encoder.predict_outputs(feed), strict=True):
        _assert_close(artifact, reference, mode)


def test_text_encoder_inputs_and_outputs_keep_their_names_in_tfjs(text_encoder, tmp_path):
    """The TF.js converter names alike inputs (and outputs) by their graph tensors; the route restores the names."""
    convert_tf_to_tfjs(text_encoder, tmp_path, quantization_config("none"))
    signature = json.loads((tmp_path / "model.json").read_text())["signature"]
    assert {name: spec["dtype"] for name, spec in signature["inputs"].items()} == {
        "input_ids": "DT_INT64", "attention_mask": "DT_INT64"}
    assert sorted(signature["outputs"]) == ["output_0", "output_1"]
    feed = text_encoder.feed(text_encoder.eval_data.take(1))
    outputs = _run_tfjs(tmp_path, feed)
    for name, reference in zip(["output_0", "output_1"], text_encoder.predict_outputs(feed), strict=True):
        np.testing.assert_allclose(outputs[name], reference, atol=1e-5)


@pytest.mark.slow  # about 30-50 s here, most of it importing torch and executorch
def test_several_inputs_reach_executorch_through_onnx(mixed, tmp_path):
    from executorch.runtime import Runtime

    stages, report = tf_to_executorch.convert_keras_to_executorch(mixed, tmp_path / "model.pte",
                                                                  quantization_config("none"), "xnnpack")
    assert stages == () and report.ops_delegated > 0
    import torch

    method = Runtime.get().load_program(tmp_path / "model.pte").load_method("forward")
    feed = mixed.feed(mixed.eval_data.take(1))
    outputs = method.execute([torch.from_numpy(np.ascontiguousarray(array)) for array in feed.values()])
    for artifact, reference in zip(outputs, mixed.predict_outputs(feed), strict=True):
        np.testing.assert_allclose(artifact.numpy(), reference, atol=1e-5)


def test_a_dynamic_sequence_length_is_refused_with_the_fix(tokens, tmp_path):
    from dataclasses import replace

    from pipeline.core.tensors import TensorSpec

    open_length = replace(tokens, inputs=(TensorSpec("token_ids", (None, None), "int32", "NC"),))
    with pytest.raises(UnsupportedRouteError, match=r"token_ids: \[-1,-1\] int32.*--input-spec token_ids:1x128:int32"):
        _export_tflite(open_length, "none", tmp_path)
    with pytest.raises(UnsupportedRouteError, match=r"--input-spec token_ids:1x128:int32"):
        tf_to_executorch.convert_keras_to_executorch(open_length, tmp_path / "m.pte", quantization_config("none"), "none")
