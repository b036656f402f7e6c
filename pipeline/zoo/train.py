"""Train a zoo model and save it in an intake format with its model card."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.datasets import load_dataset
from pipeline.core.errors import ConfigError
from pipeline.core.files import staged_file
from pipeline.core.versions import toolchain_versions
from pipeline.intake.card import ModelCard, write_card
from pipeline.zoo import ZOO
from pipeline.zoo.training import TrainConfig, accuracy, train_keras, train_torch

MODEL_SUFFIX = {"keras": ".keras", "torch": ".pt2"}
LAYOUT = {"keras": "NHWC", "torch": "NCHW"}
FRAMEWORK_PACKAGES = {"keras": ("tensorflow", "keras"), "torch": ("torch",)}


@dataclass(frozen=True)
class TrainedModel:
    """Where a trained zoo model was saved and how well it did on the test split."""

    path: Path
    framework: str
    test_accuracy: float
    train_seconds: float


def default_model_path(name: str, framework: str, models_dir: Path = Path("workspace/models")) -> Path:
    return models_dir / f"{name}-{framework}{MODEL_SUFFIX[framework]}"


def _save_keras(model: Any, path: Path) -> None:
    with staged_file(path) as tmp:
        model.save(tmp)


def _save_torch(model: Any, path: Path, example: np.ndarray) -> None:
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (torch.from_numpy(example),), dynamic_shapes=({0: batch},))
    with staged_file(path) as tmp:
        torch.export.save(program, str(tmp))


def checked_model_path(name: str, framework: str, out: Path | None) -> Path:
    """Where zoo model `name` goes for `framework` (default path when `out` is None); ConfigError for a bad pair."""
    entry = ZOO.get(name)
    if framework not in entry.builders:
        raise ConfigError(f"Zoo model '{name}' has no '{framework}' version. Available: {', '.join(entry.builders)}.")
    out = out or default_model_path(name, framework)
    if out.suffix != MODEL_SUFFIX[framework]:
        raise ConfigError(f"--out {out}: a {framework} model is saved as '{MODEL_SUFFIX[framework]}'; rename the file.")
    return out


def train_zoo_model(name: str, framework: str, out: Path | None = None, seed: int | None = None) -> TrainedModel:
    """Build, train (fixed seeds and split) and save zoo model `name` for `framework`.

    A pretrained entry has nothing to train: ConfigError pointing at `materialize`.
    """
    out = checked_model_path(name, framework, out)
    entry = ZOO.get(name)
    if entry.pretrained is not None:
        raise ConfigError(f"Zoo model '{name}' is pretrained; there is nothing to train. Materialize it with "
                          f"pipeline.zoo.materialize.materialize('{name}', '{framework}', path).")
    config = entry.train_config if seed is None else TrainConfig(**{**entry.train_config.__dict__, "seed": seed})
    splits = load_dataset(entry.dataset, seed=config.seed)
    layout = LAYOUT[framework]
    test = splits.test.in_layout(layout)
    started = time.perf_counter()
    if framework == "keras":
        import keras

        keras.utils.set_random_seed(config.seed)
        model = entry.builders[framework]()
        train_keras(model, splits, config)
        test_accuracy = accuracy(np.asarray(model(test.x, training=False)), test.y)
        _save_keras(model, out)
    else:
        import torch

        torch.manual_seed(config.seed)
        model = entry.builders[framework]()
        train_torch(model, splits, config)
        with torch.no_grad():
            test_accuracy = accuracy(model(torch.from_numpy(test.x)).numpy(), test.y)
        _save_torch(model, out, test.x[:8])
    seconds = time.perf_counter() - started
    card = ModelCard(
        name=name, dataset=entry.dataset, input_layout=layout, labels=splits.test.labels, seed=config.seed,
        training={**config.__dict__, "test_accuracy": round(test_accuracy, 6), "train_seconds": round(seconds, 2),
                  "command": f"pipeline train {name} --framework {framework} --seed {config.seed}",
                  "versions": toolchain_versions(*FRAMEWORK_PACKAGES[framework])},
    )
    write_card(out, card)
    return TrainedModel(path=out, framework=framework, test_accuracy=test_accuracy, train_seconds=seconds)
