"""Shared fixtures: the reference models (the zoo's shipped weights, copied once per test session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def keras_model_path(models_dir: Path) -> Path:
    from pipeline.zoo.materialize import materialize

    return materialize("digits-cnn", "keras", models_dir / "digits-cnn-keras.keras").path


@pytest.fixture(scope="session")
def torch_model_path(models_dir: Path) -> Path:
    from pipeline.zoo.materialize import materialize

    return materialize("digits-cnn", "torch", models_dir / "digits-cnn-torch.pt2").path


@pytest.fixture(scope="session")
def model_paths(keras_model_path: Path, torch_model_path: Path) -> dict[str, Path]:
    return {"keras": keras_model_path, "torch": torch_model_path}


@pytest.fixture(scope="session")
def outlier_paths(model_paths: dict[str, Path], models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The digits CNN with outlier channels (float unchanged, plain int8 over a 1-point budget), both frameworks."""
    from pipeline.zoo.outliers import NAME, write_outlier_model

    folder = tmp_path_factory.mktemp("outliers")
    return {fw: write_outlier_model(fw, folder / f"{NAME}-{fw}.{suffix}", models_dir)
            for fw, suffix in (("keras", "keras"), ("torch", "pt2"))}


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The digits test split as user-style .npz files, one per layout."""
    import numpy as np

    from pipeline.core.datasets import load_dataset

    folder = tmp_path_factory.mktemp("data")
    test = load_dataset("digits").test
    paths = {}
    for layout in ("NHWC", "NCHW"):
        data = test.in_layout(layout)
        paths[layout] = folder / f"digits-{layout}.npz"
        np.savez(paths[layout], x=data.x, y=data.y)
    return paths


@pytest.fixture(scope="session")
def artifacts(model_paths, tmp_path_factory) -> dict[str, Path]:
    """A few exported artifacts (with eval.npz) shared by the harness tests."""
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from quantize import quantization_config

    root = tmp_path_factory.mktemp("artifacts")
    torch_bundle = load_model(str(model_paths["torch"]))
    keras_bundle = load_model(str(model_paths["keras"]))
    plan = {
        "tflite-fp32": (torch_bundle, "tflite", "none"),
        "tflite-int8": (torch_bundle, "tflite", "int8"),
        "executorch-fp32": (torch_bundle, "executorch", "none"),
        "tfjs-fp32": (keras_bundle, "tfjs", "none"),
    }
    for name, (bundle, target, mode) in plan.items():
        export_bundle(bundle, target, quantization_config(mode), root / name)
    return {name: root / name for name in plan}


@pytest.fixture(scope="session")
def mobilenet_paths(models_dir: Path) -> dict[str, Path]:
    """The MobileNetV2-class zoo model in both frameworks (shipped weights; trained only if none ship)."""
    from pipeline.zoo.materialize import materialize

    return {framework: materialize("mobilenet-v2-shapes", framework,
                                   models_dir / f"mobilenet-v2-shapes-{framework}.{suffix}").path
            for framework, suffix in (("keras", "keras"), ("torch", "pt2"))}


@pytest.fixture(scope="session")
def minilm_path(models_dir: Path) -> Path:
    """The pretrained all-MiniLM-L6-v2 encoder exported to .pt2 with its card (about 10-20 s, 90 MB)."""
    from pipeline.zoo.materialize import materialize

    return materialize("minilm-l6", "torch", models_dir / "minilm-l6-torch.pt2").path
