"""The reference model zoo: the same architectures in Keras and PyTorch trained on bundled data, and pretrained models.

Trained entries ship their weights (`pipeline/zoo/weights/`); `pipeline.zoo.materialize` copies them, or trains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.registry import Registry
from pipeline.zoo import digits_cnn, minilm, mobilenet_v2
from pipeline.zoo.training import TrainConfig


@dataclass(frozen=True)
class ZooEntry:
    """A reference model: builders per framework, its dataset and training recipe.

    `pretrained(framework, path) -> path` writes a pretrained entry's model file and card instead of training.
    """

    name: str
    description: str
    dataset: str
    builders: dict[str, Callable[[], Any]]
    train_config: TrainConfig = field(default_factory=TrainConfig)
    min_test_accuracy: float = 0.0
    task: str = "classification"
    pretrained: Callable[[str, Path], Path] | None = None


ZOO: Registry[ZooEntry] = Registry("zoo model")

ZOO.register(
    "digits-cnn",
    ZooEntry(
        name="digits-cnn",
        description="Small CNN (38k params) for 8x8 handwritten digits (scikit-learn load_digits)",
        dataset="digits",
        builders={"keras": digits_cnn.build_keras, "torch": digits_cnn.build_torch},
        train_config=TrainConfig(epochs=30),
        min_test_accuracy=0.97,
    ),
)

ZOO.register(
    "mobilenet-v2-shapes",
    ZooEntry(
        name="mobilenet-v2-shapes",
        description="MobileNetV2-class network (87k params, 7 inverted residual blocks, ReLU6) for 64x64 RGB procedural shapes",
        dataset="shapes",
        builders={"keras": mobilenet_v2.build_keras, "torch": mobilenet_v2.build_torch},
        train_config=TrainConfig(epochs=10, batch_size=32, learning_rate=3e-3, lr_schedule="cosine"),
        min_test_accuracy=0.90,
    ),
)

ZOO.register(
    "minilm-l6",
    ZooEntry(
        name="minilm-l6",
        description="all-MiniLM-L6-v2 sentence encoder (pretrained, 22.7M params; int64 input_ids and attention_mask "
                    "[1, 128] -> 384-d normalized embedding), Apache-2.0",
        dataset="sentences",
        builders={"torch": minilm.build_torch},
        task="embedding",
        pretrained=minilm.save_pretrained,
    ),
)
