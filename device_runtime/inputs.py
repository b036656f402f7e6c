"""What a benchmark runs on: an artifact's own evaluation samples, a user's `.npz`, or synthetic inputs.

A bare model file (`.tflite`, `.pte`, a TF.js `model.json`) comes without evaluation data. Its synthetic inputs
follow the model's own input signature, read from the runtime after loading, and are seeded, so every run sees
the same values. A result names what it ran on (`inputs`); one on synthetic inputs has no accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import DataError

SYNTHETIC = "synthetic"
SYNTHETIC_SAMPLES = 32
SYNTHETIC_SEED = 0
# A model file benchmarked without a manifest: its target, from the file name
MODEL_SUFFIXES = {".tflite": "tflite", ".pte": "executorch", ".json": "tfjs"}
TFJS_MODEL = "model.json"


@dataclass(frozen=True)
class InputSignature:
    """A model's first input as its runtime reports it: shape (batch first, None for an open dimension),
    element type, and the float range its values stand for (a quantized input's representable range)."""

    shape: tuple[int | None, ...]
    dtype: str
    value_range: tuple[float, float] = (0.0, 1.0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def quantized_range(dtype: Any, quantization: tuple[float, int]) -> tuple[float, float] | None:
    """The float range an integer tensor with (scale, zero point) represents; None for a float or unquantized one."""
    scale, zero_point = quantization
    if np.issubdtype(dtype, np.floating) or not scale:
        return None
    info = np.iinfo(dtype)
    return float((info.min - zero_point) * scale), float((info.max - zero_point) * scale)


def synthetic_inputs(signature: InputSignature, model: Path, samples: int = SYNTHETIC_SAMPLES,
                     seed: int = SYNTHETIC_SEED) -> np.ndarray:
    """`samples` seeded, uniform float32 samples in the signature's value range, shaped as one batch row each."""
    open_dims = [i for i, d in enumerate(signature.shape) if i and d is None]
    if open_dims or not signature.shape:
        raise DataError(f"{model} leaves input dimensions {open_dims or 'all'} open ({list(signature.shape)}), so "
                        "there is no shape to make synthetic inputs for; pass --input FILE.npz with real samples.")
    low, high = signature.value_range
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=(samples, *signature.shape[1:])).astype(np.float32)


def load_inputs(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """`x` (float32) and optional integer labels `y` from an `.npz`; DataError names what is wrong."""
    from pipeline.core.datasets.npz import load_npz

    data = load_npz(path, "NC")  # the layout is the model's own; nothing is transposed
    return data.x, data.y


def check_inputs(x: np.ndarray, signature: InputSignature, source: str, model: Path) -> None:
    """DataError when samples from `source` do not have the shape `model`'s input takes."""
    expected = signature.shape[1:]
    if x.ndim != len(signature.shape) or any(e is not None and e != a for e, a in zip(expected, x.shape[1:], strict=False)):
        raise DataError(f"{source} has samples of shape {list(x.shape[1:])} but {model} takes "
                        f"{[d if d is not None else -1 for d in expected]}; save them in the model's layout.")


def bare_model_target(path: Path) -> str | None:
    """The target of a model file given without its artifact directory (by suffix; a directory holding only a
    TF.js `model.json` counts as one), or None for anything else."""
    if path.is_dir():
        return "tfjs" if (path / TFJS_MODEL).is_file() and not (path / "manifest.json").is_file() else None
    return MODEL_SUFFIXES.get(path.suffix) if path.is_file() else None
