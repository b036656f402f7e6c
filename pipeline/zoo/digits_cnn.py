"""digits-cnn: the same small CNN in Keras and PyTorch for 8x8 digits.

conv3x3(16) -> conv3x3(32) -> maxpool2 -> flatten -> dense(64) -> dense(10) -> softmax.
Both frameworks use 'same' padding and ReLU, so layer shapes and parameter
counts match (38,282 parameters).
"""

from __future__ import annotations

from typing import Any

INPUT_HW = (8, 8)
CHANNELS = 1
CLASSES = 10


def build_keras() -> Any:
    """The Keras (NHWC) version."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(*INPUT_HW, CHANNELS), name="image"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(CLASSES),
            keras.layers.Softmax(),
        ],
        name="digits_cnn",
    )


def build_torch() -> Any:
    """The PyTorch (NCHW) version."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(CHANNELS, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (INPUT_HW[0] // 2) * (INPUT_HW[1] // 2), 64),
        nn.ReLU(),
        nn.Linear(64, CLASSES),
        nn.Softmax(dim=1),
    )
