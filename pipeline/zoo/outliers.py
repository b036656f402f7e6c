"""digits-cnn with activation outliers: the same function, but per-tensor int8 activations lose their resolution.

A function-preserving rescaling of the trained zoo model: a few output channels of the first convolution
(followed by ReLU) are multiplied by `factor`, and the matching input channels of the second convolution
divided by it. ReLU is positively homogeneous, so float outputs are unchanged; a per-tensor int8 range of the
first convolution's output is then set by the outlier channels and the other channels collapse to a few levels.
Selective quantization tests and benchmarks use it as a model on which plain int8 misses an accuracy budget.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pipeline.core.errors import ConfigError
from pipeline.core.files import staged_file
from pipeline.intake.card import card_path, read_card, write_card
from pipeline.zoo.materialize import materialize
from pipeline.zoo.train import MODEL_SUFFIX, default_model_path

SOURCE = "digits-cnn"
NAME = "digits-cnn-outliers"
DEFAULT_FACTOR = 300.0
DEFAULT_CHANNELS = (0, 1, 2)
FIRST_CONV_CHANNELS = 16
# The scaled convolution (followed by ReLU) and the one that reads it, by framework: Keras layer name, torch state-dict prefix.
SCALED_LAYER = {"keras": ("conv2d", "conv2d_1"), "torch": ("0", "2")}


def _check(framework: str, out_path: Path, factor: float, channels: tuple[int, ...]) -> None:
    if framework not in MODEL_SUFFIX:
        raise ConfigError(f"framework '{framework}' has no outlier model. Available: {', '.join(MODEL_SUFFIX)}.")
    if out_path.suffix != MODEL_SUFFIX[framework]:
        raise ConfigError(f"out_path {out_path}: a {framework} model is saved as '{MODEL_SUFFIX[framework]}'; "
                          "rename the file.")
    if not factor > 0:
        raise ConfigError(f"factor must be > 0 (ReLU only commutes with a positive scale), got {factor}.")
    bad = [c for c in channels if not 0 <= c < FIRST_CONV_CHANNELS]
    if not channels or bad:
        raise ConfigError(f"channels must be a non-empty subset of 0..{FIRST_CONV_CHANNELS - 1}, got {channels}.")


def _source_model(framework: str, models_dir: Path) -> Path:
    """The trained digits-cnn in `models_dir`, written there first (shipped weights) unless it is there with its card."""
    path = default_model_path(SOURCE, framework, models_dir)
    if not (path.is_file() and card_path(path).is_file()):
        materialize(SOURCE, framework, path)
    return path


def _rescale_keras(source: Path, out_path: Path, factor: float, channels: list[int]) -> None:
    import keras

    model = keras.saving.load_model(source, compile=False, safe_mode=True)
    scaled, reader = (model.get_layer(name) for name in SCALED_LAYER["keras"])
    kernel, bias = scaled.get_weights()
    kernel[..., channels] *= factor
    bias[channels] *= factor
    scaled.set_weights([kernel, bias])
    next_kernel, next_bias = reader.get_weights()
    next_kernel[:, :, channels, :] /= factor  # HWIO
    reader.set_weights([next_kernel, next_bias])
    with staged_file(out_path) as tmp:
        model.save(tmp)


def _rescale_torch(source: Path, out_path: Path, factor: float, channels: list[int]) -> None:
    import torch

    from pipeline.zoo import ZOO

    state = torch.export.load(str(source)).module().state_dict()
    scaled, reader = SCALED_LAYER["torch"]
    with torch.no_grad():
        state[f"{scaled}.weight"][channels] *= factor
        state[f"{scaled}.bias"][channels] *= factor
        state[f"{reader}.weight"][:, channels] /= factor  # OIHW
    model = ZOO.get(SOURCE).builders["torch"]().eval()
    model.load_state_dict(state)
    example = torch.zeros(8, 1, 8, 8)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    with staged_file(out_path) as tmp:
        torch.export.save(program, str(tmp))


def write_outlier_model(framework: str, out_path: Path, models_dir: Path, factor: float = DEFAULT_FACTOR,
                        channels: tuple[int, ...] = DEFAULT_CHANNELS) -> Path:
    """Write digits-cnn with `channels` of its first convolution scaled by `factor` to `out_path` (+ card).

    The source zoo model is taken from (or first written to) `models_dir`. The card is the source's, so the
    evaluation and calibration data come along with `pipeline.intake.load_model`.
    Raises ConfigError for an unknown framework, a wrong suffix, a non-positive factor or a bad channel.
    """
    out_path = Path(out_path)
    channels = tuple(int(c) for c in channels)
    _check(framework, out_path, factor, channels)
    source = _source_model(framework, Path(models_dir))
    if out_path.resolve() == source.resolve():
        raise ConfigError(f"out_path {out_path} is the source model; choose another file name.")
    rescale = _rescale_keras if framework == "keras" else _rescale_torch
    rescale(source, out_path, float(factor), sorted(set(channels)))
    card = read_card(source)
    outliers = {"source": source.name, "layer": SCALED_LAYER[framework][0], "factor": float(factor),
                "channels": list(channels)}
    write_card(out_path, replace(card, name=NAME, training={**card.training, "outliers": outliers}))
    return out_path
