import json

import pytest

from pipeline.core.errors import ConfigError, UnknownNameError
from pipeline.intake.card import card_path
from pipeline.zoo import ZOO
from pipeline.zoo.train import train_zoo_model


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_reference_cnn_reaches_zoo_accuracy_and_writes_a_card(model_paths, framework):
    card = json.loads(card_path(model_paths[framework]).read_text())
    assert card["dataset"] == "digits"
    assert card["training"]["test_accuracy"] >= ZOO.get("digits-cnn").min_test_accuracy


def test_both_frameworks_build_the_same_architecture():
    import numpy as np

    entry = ZOO.get("digits-cnn")
    keras_params = entry.builders["keras"]().count_params()
    torch_params = sum(int(np.prod(p.shape)) for p in entry.builders["torch"]().parameters())
    assert keras_params == torch_params == 38282


def test_unknown_zoo_model_suggests_the_closest(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean 'digits-cnn'"):
        train_zoo_model("digit-cnn", "torch", tmp_path / "m.pt2")


def test_wrong_extension_for_framework_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\.pt2"):
        train_zoo_model("digits-cnn", "torch", tmp_path / "m.keras")
    assert not list(tmp_path.iterdir())


def test_mobilenet_class_model_is_the_same_in_both_frameworks():
    import numpy as np
    import torch

    from pipeline.zoo import mobilenet_v2

    keras_model = mobilenet_v2.build_keras()
    torch_model = mobilenet_v2.build_torch().eval()
    keras_params = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    torch_params = sum(p.numel() for p in torch_model.parameters())
    assert keras_params == torch_params == 86664
    keras_stats = sum(int(np.prod(w.shape)) for w in keras_model.non_trainable_weights)
    torch_stats = sum(b.numel() for name, b in torch_model.named_buffers() if not name.endswith("num_batches_tracked"))
    assert keras_stats == torch_stats == 3904  # BatchNorm moving mean/variance
    assert keras_model.output_shape == (None, 8)
    assert tuple(torch_model(torch.zeros(2, 3, 64, 64)).shape) == (2, 8)


def test_mobilenet_v2_computes_the_same_function_in_both_frameworks():
    """Torch weights copied into the Keras model give the same outputs: padding and strides line up."""
    import keras
    import numpy as np
    import torch
    from torch import nn

    entry = ZOO.get("mobilenet-v2-shapes")
    torch.manual_seed(0)
    torch_model, keras_model = entry.builders["torch"]().eval(), entry.builders["keras"]()
    modules = [m for m in torch_model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    layers = [layer for layer in keras_model.layers if layer.weights]
    for module, layer in zip(modules, layers, strict=True):
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            tensors = [module.weight, module.bias, module.running_mean, module.running_var]
            layer.set_weights([t.detach().numpy() for t in tensors])
        elif isinstance(module, nn.Conv2d):  # OIHW -> HWIO, depthwise (C,1,H,W) -> (H,W,C,1)
            weight = module.weight.detach().numpy()
            layer.set_weights([weight.transpose(2, 3, 0, 1) if module.groups > 1 else weight.transpose(2, 3, 1, 0)])
        else:
            layer.set_weights([module.weight.detach().numpy().T, module.bias.detach().numpy()])
    x = np.random.default_rng(0).uniform(0, 1, (4, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():  # compare logits: probabilities of an untrained model are all close to 1/8
        expected = torch_model[:-1](torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    keras_logits = keras.Model(keras_model.input, keras_model.get_layer("logits").output)
    np.testing.assert_allclose(np.asarray(keras_logits(x, training=False)), expected, rtol=1e-4, atol=1e-5)
    assert np.abs(expected).max() > 0.05  # the comparison is not trivially between zeros


def test_unknown_lr_schedule_is_refused():
    from pipeline.zoo.training import TrainConfig

    with pytest.raises(ConfigError, match="Options: constant, cosine"):
        TrainConfig(lr_schedule="step")
