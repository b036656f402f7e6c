"""User data given in memory or as a file, turned into a Dataset checked against the model's input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.bundle import TensorSpec
from pipeline.core.datasets import Dataset
from pipeline.core.datasets.npz import load_npz
from pipeline.core.errors import DataError

DATA_FORMS = ("an array of inputs", "a tuple (inputs, labels)", "a dict {'x': inputs, 'y': labels}",
              "the path of an .npz file with arrays 'x' and optional 'y'", "a Dataset")


def _labels(y: Any, count: int, what: str) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != count or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: labels must be {count} integer class ids (one per input), "
                        f"got shape {list(y.shape)} {y.dtype}.")
    return y


def _inputs(x: Any, what: str) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{what}: inputs have dtype {x.dtype}; pass float inputs, preprocessed as the model expects.")
    return x.astype(np.float32, copy=False)


def to_dataset(data: Any, spec: TensorSpec, what: str) -> Dataset:
    """`data` (an array, (x, y), {'x', 'y'}, an .npz path or a Dataset) as a Dataset in the model's layout.

    The inputs are taken to be in the model's own layout (`spec.layout`) and are checked against its
    input shape. Raises DataError naming what was expected.
    """
    if isinstance(data, Dataset):
        dataset = data.in_layout(spec.layout) if data.layout != spec.layout else data
    elif isinstance(data, (str, Path)):
        dataset = load_npz(Path(data), spec.layout)
    elif isinstance(data, tuple):
        if len(data) != 2:
            raise DataError(f"{what}: a tuple must be (inputs, labels), got {len(data)} items.")
        x = _inputs(data[0], what)
        dataset = Dataset(name=what, x=x, y=_labels(data[1], len(x), what), layout=spec.layout)
    elif isinstance(data, dict):
        unknown = sorted(set(data) - {"x", "y"})
        if unknown or "x" not in data:
            raise DataError(f"{what}: a dict holds 'x' (inputs) and optional 'y' (labels), got keys {sorted(data)}.")
        x = _inputs(data["x"], what)
        dataset = Dataset(name=what, x=x, y=_labels(data.get("y"), len(x), what), layout=spec.layout)
    elif hasattr(data, "__array__") or isinstance(data, list):
        dataset = Dataset(name=what, x=_inputs(data, what), y=None, layout=spec.layout)
    else:
        raise DataError(f"{what}: cannot read a {type(data).__name__}; pass {'; '.join(DATA_FORMS)}.")
    if len(dataset) == 0:
        raise DataError(f"{what} is empty; pass at least one sample.")
    spec.check_batch(dataset.x, what)
    return dataset
