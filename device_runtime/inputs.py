"""What a benchmark runs on: an artifact's own evaluation samples, a user's `.npz`, or synthetic inputs.

A bare model file (`.tflite`, `.pte`, a TF.js `model.json`) comes without evaluation data. Its synthetic inputs
follow the model's own input signatures (one per input), read from the runtime after loading, and are seeded, so
every run sees the same values: floats uniform in the input's value range, masks all ones, other integers (token
ids) in [0, 100). A result names what it ran on (`inputs`); one on synthetic inputs has no accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime.device_scripts.edge_bench import FeedMismatch, match_inputs
from pipeline.core.errors import DataError

SYNTHETIC = "synthetic"
SYNTHETIC_SAMPLES = 32
SYNTHETIC_SEED = 0
SYNTHETIC_INT_HIGH = 100  # integer inputs (token ids, indices) get values in [0, 100)
# A model file benchmarked without a manifest: its target, from the file name
MODEL_SUFFIXES = {".tflite": "tflite", ".pte": "executorch", ".json": "tfjs", ".onnx": "onnx"}
TFJS_MODEL = "model.json"


@dataclass(frozen=True)
class InputSignature:
    """One model input as its runtime reports it: name (None where the artifact keeps none), shape (batch first,
    None for an open dimension), element type, and for float values (`dtype` float, or `quantized` integers
    standing for floats) the range they span (a quantized input's representable range)."""

    name: str | None
    shape: tuple[int | None, ...]
    dtype: str
    value_range: tuple[float, float] = (0.0, 1.0)
    quantized: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def takes_floats(self) -> bool:
        return self.dtype.startswith("float") or self.quantized

    def synthetic_values(self) -> str:
        """What synthetic inputs put in this input, as a result records it."""
        if self.takes_floats:
            return f"uniform floats in [{self.value_range[0]:g}, {self.value_range[1]:g}]"
        if self.is_mask:
            return "all ones (a mask)"
        return f"random integers in [0, {SYNTHETIC_INT_HIGH}) (the token ids a real input holds are unknown)"

    @property
    def is_mask(self) -> bool:
        return self.dtype == "bool" or "mask" in (self.name or "").lower()


def quantized_range(dtype: Any, quantization: tuple[float, int]) -> tuple[float, float] | None:
    """The float range an integer tensor with (scale, zero point) represents; None for a float or unquantized one."""
    scale, zero_point = quantization
    if np.issubdtype(dtype, np.floating) or np.dtype(dtype) == np.bool_ or not scale:
        return None
    info = np.iinfo(dtype)
    return float((info.min - zero_point) * scale), float((info.max - zero_point) * scale)


def signature_of(tensor: Any) -> InputSignature:
    """An on-device program's input (`edge_bench.TensorInfo`) as an InputSignature."""
    value_range = quantized_range(np.dtype(tensor.dtype), (tensor.scale, tensor.zero_point))
    return InputSignature(tensor.name, tuple(tensor.shape), np.dtype(tensor.dtype).name, value_range or (0.0, 1.0),
                          quantized=value_range is not None)


def synthetic_inputs(signatures: Sequence[InputSignature], model: Path, samples: int = SYNTHETIC_SAMPLES,
                     seed: int = SYNTHETIC_SEED) -> dict[str, np.ndarray]:
    """`samples` seeded samples per input (input name -> batch; `input_<i>` where the artifact keeps no name):
    floats uniform in the value range, masks all ones, other integers in [0, SYNTHETIC_INT_HIGH)."""
    rng = np.random.default_rng(seed)
    feed = {}
    for i, signature in enumerate(signatures):
        open_dims = [d for d, size in enumerate(signature.shape) if d and size is None]
        if open_dims or not signature.shape:
            raise DataError(f"{model} leaves dimensions {open_dims or 'all'} of input '{signature.name}' open "
                            f"({list(signature.shape)}), so there is no shape to make synthetic inputs for; pass "
                            "--input FILE.npz with real samples (one array per input name).")
        size = (samples, *signature.shape[1:])
        if signature.takes_floats:
            values = rng.uniform(*signature.value_range, size=size).astype(np.float32)
        elif signature.is_mask:
            values = np.ones(size, signature.dtype)
        else:
            values = rng.integers(0, SYNTHETIC_INT_HIGH, size=size).astype(signature.dtype)
        feed[signature.name or f"input_{i}"] = values
    return feed


def describe_synthetic(signatures: Sequence[InputSignature]) -> list[dict[str, Any]]:
    """Each input's signature with what synthetic inputs put in it, for the result."""
    return [{**signature.to_json(), "synthetic_values": signature.synthetic_values()} for signature in signatures]


def load_inputs(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The inputs (one array per input name; `x` for a single input) and optional integer labels `y` of an
    `.npz`; DataError names what is wrong."""
    from pipeline.core.datasets.npz import load_npz

    data = load_npz(path, "NC")  # the layout is the model's own; nothing is transposed
    return dict(data.inputs), data.y


def check_inputs(feed: Mapping[str, np.ndarray], signatures: Sequence[InputSignature], source: str,
                 model: Path) -> None:
    """DataError when the arrays of `source` do not fit `model`'s inputs (matched by name where the names agree,
    else by position): their count, a sample shape, or floats for an integer input."""
    expected = "; ".join(f"{s.name or f'#{i}'}: {[-1 if d is None else d for d in s.shape]} {s.dtype}"
                         for i, s in enumerate(signatures))
    try:
        pairs = match_inputs([signature.name for signature in signatures], feed)
    except FeedMismatch as exc:
        raise DataError(f"{source}: {exc}; {model} takes {expected}.") from None
    for (name, x), signature in zip(pairs, signatures, strict=True):
        wanted = signature.shape[1:]
        if x.ndim != len(signature.shape) or any(e is not None and e != a for e, a in zip(wanted, x.shape[1:], strict=False)):
            raise DataError(f"{source} has samples of shape {list(x.shape[1:])} for input '{name}' but {model} takes "
                            f"{[d if d is not None else -1 for d in wanted]}; save them in the model's layout.")
        if x.dtype.kind == "f" and not signature.takes_floats:
            raise DataError(f"{source}: input '{name}' holds floats but {model} takes {signature.dtype} values "
                            "(token ids, masks, indices); save them as integers.")


def bare_model_target(path: Path) -> str | None:
    """The target of a model file given without its artifact directory (by suffix; a directory holding only a
    TF.js `model.json` counts as one), or None for anything else."""
    if path.is_dir():
        return "tfjs" if (path / TFJS_MODEL).is_file() and not (path / "manifest.json").is_file() else None
    return MODEL_SUFFIXES.get(path.suffix) if path.is_file() else None
