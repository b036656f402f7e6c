"""Pruning and QAT of a user's own models (not from the zoo) on their own data, with any inputs.

A classifier with labels is fine-tuned on cross-entropy; a model without labels (a two-input text encoder,
a Keras model with two heads) by distillation against its own outputs; one-shot needs no data at all.
"""

from dataclasses import replace

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.intake.data import with_user_data
from pipeline.intake.memory import bundle_from_object
from quantize import QatInt8Config
from quantize.pruning import ChannelPruningConfig, MagnitudePruningConfig
from quantize.stages import apply_stages

WEIGHTS = np.random.default_rng(7).normal(size=8)


def sign_task(samples, seed):
    """A learnable task: is a fixed linear function of 8 features positive?"""
    x = np.random.default_rng(seed).normal(size=(samples, 8)).astype(np.float32)
    return x, (x @ WEIGHTS > 0).astype(np.int64)


def tokens(samples, seed):
    """Token ids (0 where padded) and attention masks of 4 to 16 tokens."""
    rng = np.random.default_rng(seed)
    mask = (np.arange(16)[None] < rng.integers(4, 17, size=(samples, 1))).astype(np.int64)
    return {"input_ids": rng.integers(1, 100, size=(samples, 16)) * mask, "attention_mask": mask}


def accuracy(bundle):
    return float(np.mean(bundle.predict(bundle.eval_data).argmax(-1) == bundle.eval_data.y))


def cosine(bundle, source, data):
    a, b = bundle.predict(data), source.predict(data)
    return float(np.mean(np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))))


def torch_sparsity(bundle):
    weights = [m.weight.detach().numpy() for m in bundle.model.modules() if type(m).__name__ in ("Linear", "Conv2d")]
    return sum(int(np.sum(w == 0)) for w in weights) / sum(w.size for w in weights)


@pytest.fixture(scope="module")
def classifier():
    """A user's torch MLP trained on the sign task, with its own evaluation and training data."""
    import torch

    x, y = sign_task(400, seed=1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        optimizer.step()
    bundle = bundle_from_object(net.eval(), example_inputs=torch.zeros(1, 8), name="sign-classifier")
    bundle = with_user_data(bundle, eval_data=sign_task(200, seed=2), train_data=(x, y))
    assert accuracy(bundle) >= 0.9
    return bundle


@pytest.fixture(scope="module")
def encoder():
    """A two-input torch text encoder (int64 ids and mask -> L2-normalized 32-d embedding), no labels.

    Position ids come from integer arithmetic (`arange(n) + 0`, as transformers builds them), which a
    PT2E quantizer must keep integer."""
    import torch

    class TextEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(100, 32)
            self.position = torch.nn.Embedding(16, 32)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 32))

        def forward(self, input_ids, attention_mask):
            positions = torch.arange(input_ids.shape[1]) + 0
            hidden = self.embed(input_ids) + self.position(positions)
            hidden = hidden + self.mlp(hidden)
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            return torch.nn.functional.normalize(pooled, dim=-1)

    torch.manual_seed(0)
    example = {name: torch.from_numpy(array[:1]) for name, array in tokens(1, 0).items()}
    bundle = bundle_from_object(TextEncoder().eval(), example_inputs=example, name="text-encoder")
    return with_user_data(bundle, eval_data=tokens(100, seed=1), train_data=tokens(300, seed=2))


def test_magnitude_pruning_fine_tunes_a_user_classifier_on_its_own_data(classifier):
    config = MagnitudePruningConfig(sparsity=0.8, fine_tune_epochs=3, learning_rate=1e-2)
    pruned, [applied] = apply_stages(classifier, [config])
    one_shot, _ = apply_stages(classifier, [replace(config, fine_tune_epochs=0)])
    effect = applied.effect
    assert torch_sparsity(pruned) >= 0.79 and effect["sparsity_reached"] >= 0.79
    assert (effect["loss"], effect["train_samples"], effect["fine_tune_epochs"]) == ("cross-entropy", 400, 3)
    assert effect["accuracy_before"] == pytest.approx(accuracy(classifier), abs=1e-6)
    assert effect["accuracy_after"] == pytest.approx(accuracy(pruned), abs=1e-6)
    # fine-tuning on the user's labels keeps the accuracy that pruning once, without data, loses
    assert accuracy(pruned) >= accuracy(classifier) - 0.03
    assert accuracy(pruned) >= accuracy(one_shot) + 0.03
    assert effect["fidelity"]["data"] == "evaluation data" and effect["fidelity"]["samples"] == 200
    assert torch_sparsity(classifier) < 0.01  # the source model is left as it was


def test_one_shot_pruning_needs_no_training_data_and_records_no_loss(classifier):
    bundle = replace(classifier, train_data=None)
    pruned, [applied] = apply_stages(bundle, [MagnitudePruningConfig(sparsity=0.5, fine_tune_epochs=0)])
    effect = applied.effect
    assert torch_sparsity(pruned) >= 0.49
    assert (effect["loss"], effect["train_samples"], effect["fine_tune_epochs"]) == ("none", 0, 0)
    assert effect["accuracy_after"] == pytest.approx(accuracy(pruned), abs=1e-6)
    assert 0 < effect["fidelity"]["cosine_mean"] < 1 and effect["fidelity"]["relative_error_mean"] > 0


@pytest.mark.parametrize("config", [MagnitudePruningConfig(sparsity=0.5), ChannelPruningConfig(ratio=0.3)])
def test_fine_tuning_without_training_data_names_both_fixes(classifier, config):
    with pytest.raises(DataError, match=r"fine-tunes for \d epoch\(s\) and needs training data.*no training data\. "
                       r"Pass --train-data FILE\.npz \(one array per input name.*labels 'y'.*--finetune-epochs 0"):
        apply_stages(replace(classifier, train_data=None), [config])


def test_a_two_input_text_encoder_is_pruned_by_distillation(encoder):
    one_shot, [shot] = apply_stages(encoder, [MagnitudePruningConfig(sparsity=0.6, fine_tune_epochs=0)])
    tuned, [applied] = apply_stages(encoder, [MagnitudePruningConfig(sparsity=0.6, fine_tune_epochs=3)])
    effect = applied.effect
    assert (effect["loss"], effect["train_samples"]) == ("distillation", 300)
    assert effect["sparsity_reached"] >= 0.59 and effect["accuracy_before"] is None
    assert effect["fidelity"]["cosine_mean"] == pytest.approx(cosine(tuned, encoder, encoder.eval_data), abs=1e-5)
    # distilling the unpruned model's embeddings recovers what one-shot pruning lost
    assert cosine(tuned, encoder, encoder.eval_data) > cosine(one_shot, encoder, encoder.eval_data) + 0.005
    assert effect["fidelity"]["relative_error_mean"] < shot.effect["fidelity"]["relative_error_mean"]
    assert tuned.predict(encoder.eval_data).shape == (100, 32)


def test_channel_pruning_shrinks_the_text_encoder_and_distills_it(encoder):
    pruned, [applied] = apply_stages(encoder, [ChannelPruningConfig(ratio=0.5, fine_tune_epochs=3)])
    effect = applied.effect
    assert effect["channels"]["mlp.0"] == [64, 32] and "mlp.2" in effect["protected_layers"]
    assert effect["loss"] == "distillation" and effect["parameters_after"] < effect["parameters_before"]
    assert cosine(pruned, encoder, encoder.eval_data) >= 0.99


def test_labels_that_are_not_class_ids_of_the_output_are_refused(encoder):
    data = {**tokens(50, seed=3), "y": np.full(50, 40)}
    bundle = with_user_data(encoder, train_data=data)
    with pytest.raises(DataError, match=r"labels 'y' range over \[40, 40\].*shape \[32\].*drop 'y'"):
        apply_stages(bundle, [MagnitudePruningConfig(sparsity=0.5)])


def test_keras_magnitude_pruning_of_a_user_classifier(classifier):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden), name="sign_classifier")
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = sign_task(400, seed=1)
    model.fit(x, y, epochs=30, batch_size=64, verbose=0)
    bundle = with_user_data(bundle_from_object(model), eval_data=sign_task(200, seed=2), train_data=(x, y))
    pruned, [applied] = apply_stages(bundle, [MagnitudePruningConfig(sparsity=0.8, learning_rate=1e-2)])
    kernels = [np.asarray(layer.kernel) for layer in pruned.model.layers if hasattr(layer, "kernel")]
    assert sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels) >= 0.79
    assert (applied.effect["loss"], applied.effect["train_samples"]) == ("cross-entropy", 400)
    assert accuracy(pruned) >= accuracy(bundle) - 0.03 and accuracy(bundle) >= 0.9


def two_head_keras_model():
    """Two inputs (an 8x8 image and a 4-vector), two outputs (10 class probabilities, a 3-d regression)."""
    import keras

    keras.utils.set_random_seed(0)
    image, vector = keras.Input((8, 8, 1), name="image"), keras.Input((4,), name="vector")
    features = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image))
    joined = keras.layers.Concatenate()([features, keras.layers.Dense(8, activation="relu")(vector)])
    hidden = keras.layers.Dense(32, activation="relu")(joined)
    heads = [keras.layers.Dense(10, activation="softmax", name="classes")(hidden),
             keras.layers.Dense(3, name="regression")(hidden)]
    return keras.Model([image, vector], heads, name="two_heads")


def two_head_data(samples, seed):
    rng = np.random.default_rng(seed)
    return {"image": rng.random((samples, 8, 8, 1), dtype=np.float32),
            "vector": rng.normal(size=(samples, 4)).astype(np.float32)}


def test_keras_two_input_two_output_model_is_pruned_by_distillation_of_both_heads():
    bundle = bundle_from_object(two_head_keras_model())
    labelled = {**two_head_data(256, seed=1), "y": np.random.default_rng(2).integers(0, 10, 256)}
    bundle = with_user_data(bundle, eval_data=two_head_data(64, seed=3), train_data=labelled)
    pruned, [applied] = apply_stages(bundle, [MagnitudePruningConfig(sparsity=0.5, fine_tune_epochs=2)])
    effect = applied.effect
    assert effect["sparsity_reached"] >= 0.49 and effect["loss"] == "distillation"
    assert effect["loss_note"] == "labels 'y' unused: the model has 2 outputs, all distilled"
    outputs = pruned.predict_outputs(bundle.eval_data)
    assert [o.shape for o in outputs] == [(64, 10), (64, 3)]
    assert effect["fidelity"]["cosine_mean"] > 0.8


def test_qat_fine_tunes_a_user_torch_classifier(classifier):
    from quantize.qat.torch_qat import qat_torch, xnnpack_qat_quantizer

    converted, effect = qat_torch(classifier, QatInt8Config(fine_tune_epochs=2, learning_rate=1e-3),
                                  xnnpack_qat_quantizer())
    assert (effect["loss"], effect["train_samples"], effect["fine_tune_epochs"]) == ("cross-entropy", 400, 2)
    assert any("quantize_per_tensor" in str(node.target) for node in converted.graph.nodes)
    quantized = replace(classifier, model=converted)
    assert effect["accuracy_after"] == pytest.approx(accuracy(quantized), abs=1e-6)
    assert accuracy(quantized) >= accuracy(classifier) - 0.03


def test_qat_distills_the_two_input_text_encoder(encoder):
    from quantize.qat.torch_qat import qat_torch, xnnpack_qat_quantizer

    converted, effect = qat_torch(encoder, QatInt8Config(fine_tune_epochs=1, learning_rate=1e-3),
                                  xnnpack_qat_quantizer())
    assert (effect["loss"], effect["train_samples"]) == ("distillation", 300)
    assert cosine(replace(encoder, model=converted), encoder, encoder.eval_data) >= 0.99
    assert effect["fidelity"]["cosine_mean"] >= 0.99


def test_keras_qat_of_a_two_input_model_converts_with_every_input():
    from ai_edge_litert.interpreter import Interpreter

    from quantize.qat.keras_qat import keras_qat_model, qat_tflite_bytes

    bundle = with_user_data(bundle_from_object(two_head_keras_model()), eval_data=two_head_data(32, seed=3),
                            train_data=two_head_data(128, seed=1))
    model, effect = keras_qat_model(bundle, QatInt8Config(fine_tune_epochs=1))
    assert effect["loss"] == "distillation" and effect["fidelity"]["cosine_mean"] >= 0.99
    runner = Interpreter(model_content=qat_tflite_bytes(model, bundle.inputs)).get_signature_runner()
    assert set(runner.get_input_details()) == {"image", "vector"}
    feed = bundle.feed(bundle.eval_data)
    runs = [runner(**{name: array[i : i + 1] for name, array in feed.items()}) for i in range(8)]
    # the converted model reproduces the fake-quantized one it came from, every input in its place
    reference = replace(bundle, model=model).predict_outputs({name: array[:8] for name, array in feed.items()})
    for name in runs[0]:  # match each artifact output to the output of its width
        out = np.concatenate([run[name] for run in runs])
        [ref] = [ref for ref in reference if ref.shape == out.shape]
        assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 0.05


def test_qat_without_training_data_names_train_data(classifier):
    from quantize.qat.torch_qat import qat_torch, xnnpack_qat_quantizer

    with pytest.raises(DataError, match=r"needs training data.*Pass --train-data FILE\.npz.*--quantize int8"):
        qat_torch(replace(classifier, train_data=None), QatInt8Config(), xnnpack_qat_quantizer())
