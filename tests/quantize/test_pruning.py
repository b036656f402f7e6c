"""Pruning stages on the digits CNN: sparsity and parameters really removed, accuracy kept, errors explained."""

import os
from dataclasses import replace

import numpy as np
import pytest

import quantize
from pipeline.core.errors import ConfigError, DataError, UnsupportedRouteError
from pipeline.intake import load_model
from quantize.pruning import ChannelPruningConfig, MagnitudePruningConfig, parse_prune
from quantize.stages import STAGES, apply_stages


def _accuracy(bundle):
    return float(np.mean(bundle.predict(bundle.eval_data.x).argmax(-1) == bundle.eval_data.y))


def _prunable_weights(bundle):
    """Conv/dense kernels, read straight from the model (not from the stage's own report)."""
    if bundle.framework == "keras":
        return [np.asarray(layer.kernel) for layer in bundle.model.layers if hasattr(layer, "kernel")]
    return [p.detach().numpy() for name, p in bundle.model.named_parameters() if name.endswith("weight")]


def _sparsity(bundle):
    weights = _prunable_weights(bundle)
    return sum(int(np.sum(w == 0)) for w in weights) / sum(w.size for w in weights)


def _parameters(bundle):
    return sum(p.numel() for p in bundle.model.parameters())


@pytest.fixture(scope="module")
def bundles(keras_model_path, torch_model_path):
    return {"keras": load_model(str(keras_model_path)), "torch": load_model(str(torch_model_path))}


@pytest.fixture(scope="module")
def magnitude(bundles):
    """Each framework's bundle pruned to 50% with the default fine-tune (3 epochs)."""
    return {fw: apply_stages(bundle, [MagnitudePruningConfig(sparsity=0.5)]) for fw, bundle in bundles.items()}


@pytest.fixture(scope="module")
def channels(bundles):
    return apply_stages(bundles["torch"], [ChannelPruningConfig(ratio=0.3)])


def test_importing_quantize_registers_the_pruning_stages():
    assert quantize.MagnitudePruningConfig is MagnitudePruningConfig
    assert {"prune-magnitude", "prune-channels"} <= set(STAGES.names())
    assert STAGES.get("prune-magnitude").config_cls is MagnitudePruningConfig
    assert set(STAGES.get("prune-magnitude").handlers) == {"keras", "torch"}
    assert MagnitudePruningConfig(sparsity=0.5).to_json()["stage"] == "prune-magnitude"


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_magnitude_reaches_sparsity_and_keeps_accuracy(bundles, magnitude, framework):
    source = bundles[framework]
    pruned, [applied] = magnitude[framework]
    effect = applied.effect
    assert _sparsity(pruned) >= 0.49
    assert effect["sparsity_reached"] >= 0.49 and effect["zeros"] > 0
    assert effect["parameters_total"] == 38282
    assert _accuracy(pruned) >= 0.985 * _accuracy(source)
    assert effect["accuracy_after"] == pytest.approx(_accuracy(pruned), abs=1e-6)
    assert effect["accuracy_before"] == pytest.approx(_accuracy(source), abs=1e-6)
    assert effect["fine_tune_seconds"] > 0 and effect["tool"]
    assert (effect["loss"], effect["train_samples"]) == ("cross-entropy", len(source.train_data))
    assert _sparsity(source) < 0.01  # the source bundle's model is left as it was
    assert applied.config == {"stage": "prune-magnitude", **MagnitudePruningConfig(sparsity=0.5).__dict__}


def test_keras_magnitude_uses_tfmot_without_switching_tf_keras(magnitude):
    import tensorflow as tf

    assert "tensorflow-model-optimization" in magnitude["keras"][1][0].effect["tool"]
    assert tf.keras.version().startswith("3.")
    assert "TF_USE_LEGACY_KERAS" not in os.environ


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_one_shot_magnitude_needs_no_training_data(bundles, framework):
    bundle = replace(bundles[framework], train_data=None)
    pruned, [applied] = apply_stages(bundle, [MagnitudePruningConfig(sparsity=0.3, fine_tune_epochs=0)])
    assert _sparsity(pruned) >= 0.29
    assert applied.effect["fine_tune_epochs"] == 0
    assert (applied.effect["loss"], applied.effect["train_samples"]) == ("none", 0)


def test_channel_pruning_removes_parameters_and_keeps_accuracy(bundles, channels):
    source = bundles["torch"]
    pruned, [applied] = channels
    effect = applied.effect
    assert _parameters(pruned) <= 0.75 * _parameters(source)
    assert effect["parameters_removed_ratio"] >= 0.25
    assert (effect["parameters_before"], effect["parameters_after"]) == (_parameters(source), _parameters(pruned))
    assert _accuracy(pruned) >= 0.98 * _accuracy(source)
    assert effect["channels"]["8"] == [10, 10]  # the classifier keeps its outputs
    assert pruned.predict(source.eval_data.x[:4]).shape == (4, 10)
    assert "torch-pruning" in effect["tool"]


@pytest.mark.parametrize("stage", ["prune-channels", "prune-magnitude"])
@pytest.mark.parametrize("target", ["tflite", "executorch"])
def test_pruned_torch_bundle_exports_and_validates(magnitude, channels, tmp_path, stage, target):
    from pipeline.export import export_bundle

    pruned = channels[0] if stage == "prune-channels" else magnitude["torch"][0]
    result = export_bundle(pruned, target, quantize.quantization_config("none"), tmp_path / "artifact")
    assert result.validation_passed, result.manifest["validation"]["failures"]
    assert (tmp_path / "artifact" / "manifest.json").is_file()


def test_prune_spelling_takes_the_fine_tune_epochs():
    assert parse_prune("0.5") == MagnitudePruningConfig(sparsity=0.5)
    assert parse_prune("0.5", fine_tune_epochs=0) == MagnitudePruningConfig(sparsity=0.5, fine_tune_epochs=0)
    assert parse_prune("channels:0.3", fine_tune_epochs=None).fine_tune_epochs == 5  # the stage's default
    assert parse_prune("channels:0.3", fine_tune_epochs=2) == ChannelPruningConfig(ratio=0.3, fine_tune_epochs=2)
    with pytest.raises(ConfigError, match="fine_tune_epochs must be an integer >= 0, got -1"):
        parse_prune("0.5", fine_tune_epochs=-1)


@pytest.mark.parametrize("sparsity", [1.0, -0.1])
def test_invalid_sparsity_names_the_value_and_the_range(sparsity):
    with pytest.raises(ConfigError, match=rf"sparsity must be in \[0, 1\), got {sparsity}"):
        MagnitudePruningConfig(sparsity=sparsity)


@pytest.mark.parametrize(("options", "message"), [
    ({"ratio": 1.0}, r"ratio must be in \[0, 1\), got 1.0"),
    ({"ratio": 0.3, "importance": "l3"}, "importance must be one of l1, l2, got 'l3'"),
    ({"ratio": 0.3, "fine_tune_epochs": -1}, "fine_tune_epochs must be an integer >= 0, got -1"),
])
def test_invalid_channel_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        ChannelPruningConfig(**options)


def test_schedule_ramp_must_end_within_fine_tuning():
    with pytest.raises(ConfigError, match="begin_fraction \\+ ramp_fraction must be <= 1"):
        MagnitudePruningConfig(sparsity=0.5, begin_fraction=0.6, ramp_fraction=0.6)


@pytest.mark.parametrize(("framework", "config"), [
    ("keras", MagnitudePruningConfig(sparsity=0.5)),
    ("torch", MagnitudePruningConfig(sparsity=0.5)),
    ("torch", ChannelPruningConfig(ratio=0.3)),
])
def test_fine_tuning_without_training_data_is_a_data_error(bundles, framework, config):
    bundle = replace(bundles[framework], train_data=None)
    with pytest.raises(DataError, match=r"needs training data.*no training data\. Pass --train-data FILE\.npz.*"
                       r"--finetune-epochs 0 for one-shot"):
        apply_stages(bundle, [config])


def test_stage_on_an_unsupported_framework_lists_what_it_supports(keras_model_path, tmp_path):
    import keras

    keras.saving.load_model(keras_model_path).export(str(tmp_path / "saved"), verbose=False)
    saved_model = load_model(str(tmp_path / "saved"))
    assert saved_model.framework == "tensorflow"
    with pytest.raises(UnsupportedRouteError, match="to a tensorflow model. It supports: keras, torch"):
        apply_stages(saved_model, [MagnitudePruningConfig(sparsity=0.5)])


def test_channel_pruning_on_keras_says_why_it_is_pytorch_only(bundles):
    with pytest.raises(UnsupportedRouteError, match="available for PyTorch models only.*dependency-graph"):
        apply_stages(bundles["keras"], [ChannelPruningConfig(ratio=0.3)])


def test_keras_bridge_rebuilds_a_functional_model_exactly():
    import keras

    from quantize.pruning.keras_bridge import to_tf_keras

    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Add()([x, keras.layers.DepthwiseConv2D(3, padding="same")(x)])
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, activation="softmax", kernel_regularizer=keras.regularizers.L2(1e-4))(x)
    model = keras.Model(inputs, outputs)
    sample = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(to_tf_keras(model)(sample).numpy(), np.asarray(model(sample)), atol=1e-6)


def test_keras_bridge_refuses_a_subclassed_model():
    import keras

    from quantize.pruning.keras_bridge import to_tf_keras

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(UnsupportedRouteError, match="subclassed model"):
        to_tf_keras(Net())
