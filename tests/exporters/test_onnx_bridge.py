"""ONNX-bridged routes: PyTorch -> TF.js (onnx2tf) and Keras -> ExecuTorch (tf2onnx + onnx2fx), run in their runtimes."""

import os

import numpy as np
import pytest

from device_runtime.executorch_runtime import ExecuTorchRuntime
from device_runtime.tfjs_node import TFJSNodeRuntime
from exporters.routes import tf_to_executorch, torch_to_tfjs
from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
from pipeline.core.errors import ConfigError, ExportError, UnsupportedRouteError
from pipeline.intake import load_model
from quantize import quantization_config


@pytest.fixture(scope="module")
def torch_bundle(torch_model_path):
    return load_model(str(torch_model_path))


@pytest.fixture(scope="module")
def keras_bundle(keras_model_path):
    return load_model(str(keras_model_path))


def _assert_agrees(outputs, source):
    assert outputs.shape == source.shape == (360, 10)
    assert np.max(np.abs(outputs - source)) <= 1e-4
    assert np.mean(outputs.argmax(1) == source.argmax(1)) >= 0.99


def test_torch_to_tfjs_takes_nhwc_and_agrees_in_node(torch_bundle, tmp_path):
    stages = torch_to_tfjs.convert_torch_to_tfjs(torch_bundle, tmp_path, quantization_config("none"))
    assert stages == ()
    assert "TF_USE_LEGACY_KERAS" not in os.environ  # onnx2tf sets it at import; the bridge must undo that
    session = TFJSNodeRuntime().load(tmp_path / "model.json", "wasm")
    assert session.input_signatures()[0].shape == (1, 8, 8, 1)  # onnx2tf moves the input to NHWC
    outputs = session.run(torch_bundle.eval_data.in_layout("NHWC").x)
    assert session.delegate == "wasm"
    _assert_agrees(outputs, torch_bundle.predict(torch_bundle.eval_data.x))


def test_torch_to_tfjs_can_keep_the_nchw_input(torch_bundle, tmp_path):
    torch_to_tfjs.convert_torch_to_tfjs(torch_bundle, tmp_path, quantization_config("none"), input_layout="NCHW")
    session = TFJSNodeRuntime().load(tmp_path / "model.json", "cpu")
    assert session.input_signatures()[0].shape == (1, 1, 8, 8)
    _assert_agrees(session.run(torch_bundle.eval_data.x), torch_bundle.predict(torch_bundle.eval_data.x))


def test_saved_model_bundle_moves_the_data_to_the_saved_model_layout(torch_bundle, tmp_path):
    saved = torch_to_tfjs.torch_to_tf_saved_model(torch_bundle, tmp_path)
    tf_bundle = torch_to_tfjs.saved_model_bundle(torch_bundle, saved, "NHWC")
    assert tf_bundle.framework == "tensorflow" and tf_bundle.input_spec.shape == (1, 8, 8, 1)
    assert tf_bundle.eval_data.layout == "NHWC" and tf_bundle.eval_data.x.shape == (360, 8, 8, 1)
    assert tf_bundle.calibration_data.layout == "NHWC" and torch_bundle.eval_data.layout == "NCHW"
    _assert_agrees(tf_bundle.predict(tf_bundle.eval_data.x), torch_bundle.predict(torch_bundle.eval_data.x))


def test_keras_to_executorch_agrees_in_the_runtime(keras_bundle, tmp_path):
    stages, report = tf_to_executorch.convert_keras_to_executorch(
        keras_bundle, tmp_path / "model.pte", quantization_config("none"), "xnnpack"
    )
    assert stages == ()
    assert report.delegated_share == 1.0 and report.ops_not_delegated == ()
    session = ExecuTorchRuntime().load(tmp_path / "model.pte", "xnnpack")
    x = keras_bundle.eval_data.x  # NHWC: the torch module keeps the Keras layout
    _assert_agrees(session.run(x), keras_bundle.predict(x))


def test_keras_to_torch_module_keeps_the_keras_layout(keras_bundle, tmp_path):
    import torch

    module = tf_to_executorch.keras_to_torch_module(keras_bundle, tmp_path)
    x = keras_bundle.eval_data.x[:1]
    assert x.shape == (1, 8, 8, 1)
    with torch.no_grad():
        outputs = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(outputs, keras_bundle.predict(x), atol=1e-5)
    assert not [n for n in module.graph.nodes if n.op == "get_attr" and not getattr(module, n.target).is_floating_point()]


def _torch_bundle(module):
    return ModelBundle("torch", module.eval(), TensorSpec("x", (None, 4), layout="NC"),
                       SourceInfo("torch", "factory", f"tests:{type(module).__name__}", ""))


def test_op_without_onnx2tf_converter_is_named(tmp_path):
    import torch

    class BitwiseNot(torch.nn.Module):
        def forward(self, x):
            return torch.bitwise_not((x * 10).to(torch.int32)).to(torch.float32)

    with pytest.raises(ExportError, match=r"PyTorch -> TF.js step 2/3 \(onnx2tf\) failed on op BitwiseNot"):
        torch_to_tfjs.convert_torch_to_tfjs(_torch_bundle(BitwiseNot()), tmp_path / "out", quantization_config("none"))
    assert not (tmp_path / "out").exists()


def test_op_without_onnx_translation_is_named(tmp_path):
    import torch

    class Zeta(torch.nn.Module):
        def forward(self, x):
            return torch.special.zeta(x, x + 1)

    with pytest.raises(ExportError, match=r"step 1/3 \(torch.onnx.export\) failed on op prims.zeta.*custom_translation_table"):
        torch_to_tfjs.convert_torch_to_tfjs(_torch_bundle(Zeta()), tmp_path / "out", quantization_config("none"))
    assert not (tmp_path / "out").exists()


def test_tf_op_without_onnx_equivalent_is_named(tmp_path):
    import tensorflow as tf

    class LogGamma(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x):
            return tf.math.lgamma(x) + 1.0

    module = LogGamma()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.__call__)
    with pytest.raises(ExportError, match=r"Keras/SavedModel -> ExecuTorch step 2/5 \(tf2onnx\) failed on op Lgamma"):
        tf_to_executorch.convert_keras_to_executorch(load_model(str(tmp_path / "saved")), tmp_path / "model.pte",
                                                     quantization_config("none"), "xnnpack")


def test_impossible_modes_are_refused_before_converting(torch_bundle, keras_bundle, tmp_path):
    with pytest.raises(UnsupportedRouteError, match=r"'int8' cannot be expressed for target tfjs from a torch model.*"
                       r"Options: none, fp16, uint8, uint16\. Routes that express int8: .*torch -> tflite"):
        torch_to_tfjs.convert_torch_to_tfjs(torch_bundle, tmp_path / "tfjs", quantization_config("int8"))
    with pytest.raises(UnsupportedRouteError, match="Options: none, dynamic-int8, int8"):
        tf_to_executorch.convert_keras_to_executorch(keras_bundle, tmp_path / "m.pte", quantization_config("fp16"), "xnnpack")
    with pytest.raises(ConfigError, match="input_layout 'NCWH' is not known. Options: NHWC, NCHW"):
        torch_to_tfjs.convert_torch_to_tfjs(torch_bundle, tmp_path / "tfjs", quantization_config("none"), input_layout="NCWH")
    assert not list(tmp_path.iterdir())


def test_mobilenet_style_keras_ops_reach_xnnpack(tmp_path):
    """ZeroPadding2D, ReLU6 and GlobalAveragePooling2D arrive as pad, clamp and mean, all on the delegate."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.ZeroPadding2D(((0, 1), (0, 1))),
        keras.layers.Conv2D(8, 3, strides=2),
        keras.layers.ReLU(max_value=6.0),
        keras.layers.DepthwiseConv2D(3, padding="same"),
        keras.layers.ReLU(max_value=6.0),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4),
    ])
    model.save(tmp_path / "block.keras")
    bundle = load_model(str(tmp_path / "block.keras"))
    stages, report = tf_to_executorch.convert_keras_to_executorch(
        bundle, tmp_path / "model.pte", quantization_config("none"), "xnnpack"
    )
    assert report.ops_not_delegated == () and report.delegated_share == 1.0
    x = np.random.default_rng(0).uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
    outputs = ExecuTorchRuntime().load(tmp_path / "model.pte", "xnnpack").run(x)
    np.testing.assert_allclose(outputs, model.predict(x, verbose=0), atol=1e-5)
