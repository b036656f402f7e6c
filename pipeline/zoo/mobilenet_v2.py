"""mobilenet-v2: a narrow MobileNetV2 in Keras and PyTorch for 64x64 RGB shapes.

conv3x3/2(16) -> 7 inverted residual blocks -> conv1x1(128) -> global average pool -> dense(8) -> softmax.
An inverted residual block is conv1x1 expansion (skipped when t = 1) -> depthwise 3x3 -> linear
conv1x1 projection, with BatchNorm after every conv, ReLU6 after all but the projection, and an
identity shortcut when stride is 1 and channels are unchanged. Convs have no bias.

The frameworks pad identically: stride-1 3x3 convs use 'same' in Keras and padding=1 in torch
(one pixel on every side in both); stride-2 ones use an explicit one-pixel ZeroPadding2D +
'valid' in Keras, since 'same' would pad only bottom/right. BatchNorm uses epsilon 1e-3 and
momentum 0.9 (torch's 0.1). Both have 86,664 trainable parameters plus 3,904 BatchNorm
moving statistics (Keras non-trainable weights, torch buffers).
"""

from __future__ import annotations

import functools
from typing import Any

INPUT_HW = (64, 64)
CHANNELS = 3
CLASSES = 8
STEM = 16
# (expansion t, output channels, stride) per inverted residual block, as in MobileNetV2's table
BLOCKS = ((1, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 2), (4, 32, 1), (4, 64, 2), (4, 64, 1))
HEAD = 128
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.9  # Keras convention: moving = momentum * moving + (1 - momentum) * batch


def _keras_conv_bn(x: Any, filters: int | None, kernel: int, stride: int, relu: bool, name: str) -> Any:
    """Conv (depthwise when `filters` is None) -> BatchNorm [-> ReLU6], padded like torch's padding=k//2."""
    import keras

    padding = "same"
    if stride == 2 and kernel > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    if filters is None:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False, name=name)(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu else x


def build_keras() -> Any:
    """The Keras (NHWC) version."""
    import keras

    inputs = keras.Input(shape=(*INPUT_HW, CHANNELS), name="image")
    x = _keras_conv_bn(inputs, STEM, 3, 2, True, "stem")
    for index, (expansion, channels, stride) in enumerate(BLOCKS):
        name = f"block{index}"
        y = x
        if expansion != 1:
            y = _keras_conv_bn(y, x.shape[-1] * expansion, 1, 1, True, f"{name}_expand")
        y = _keras_conv_bn(y, None, 3, stride, True, f"{name}_depthwise")
        y = _keras_conv_bn(y, channels, 1, 1, False, f"{name}_project")
        x = keras.layers.Add(name=f"{name}_add")([x, y]) if stride == 1 and x.shape[-1] == channels else y
    x = _keras_conv_bn(x, HEAD, 1, 1, True, "head")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(CLASSES, name="logits")(x)
    outputs = keras.layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2")


@functools.cache
def _residual_class() -> type:
    """nn.Module adding an identity shortcut around a body (defined lazily: torch is a heavy import)."""
    from torch import nn

    class Residual(nn.Module):
        """x + body(x)."""

        def __init__(self, body: nn.Module) -> None:
            super().__init__()
            self.body = body

        def forward(self, x: Any) -> Any:
            return x + self.body(x)

    return Residual


def _torch_conv_bn(inputs: int, outputs: int, kernel: int, stride: int, relu: bool, depthwise: bool = False) -> list[Any]:
    from torch import nn

    layers = [
        nn.Conv2d(inputs, outputs, kernel, stride, padding=kernel // 2, groups=inputs if depthwise else 1, bias=False),
        nn.BatchNorm2d(outputs, eps=BN_EPSILON, momentum=1.0 - BN_MOMENTUM),
    ]
    return [*layers, nn.ReLU6()] if relu else layers


def build_torch() -> Any:
    """The PyTorch (NCHW) version: an nn.Sequential ending in Softmax, like every zoo model."""
    from torch import nn

    layers = _torch_conv_bn(CHANNELS, STEM, 3, 2, True)
    width = STEM
    for expansion, channels, stride in BLOCKS:
        hidden = width * expansion
        body = _torch_conv_bn(width, hidden, 1, 1, True) if expansion != 1 else []
        body += _torch_conv_bn(hidden, hidden, 3, stride, True, depthwise=True)
        body += _torch_conv_bn(hidden, channels, 1, 1, False)
        block = nn.Sequential(*body)
        layers.append(_residual_class()(block) if stride == 1 and width == channels else block)
        width = channels
    layers += _torch_conv_bn(width, HEAD, 1, 1, True)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(HEAD, CLASSES), nn.Softmax(dim=1)]
    return nn.Sequential(*layers)
