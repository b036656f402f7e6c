"""User data from `.npz` files: array `x` (inputs) and optional integer labels `y`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from pipeline.core.datasets.base import Dataset
from pipeline.core.errors import DataError


def load_npz(path: Path, layout: str) -> Dataset:
    """Read `x` (and `y` if present) without unpickling; DataError names what is wrong."""
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist; it must be an .npz with array 'x' (and optional 'y').")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"Could not read {path} as .npz ({exc}); write it with numpy.savez(path, x=inputs, y=labels)."
        ) from None
    if "x" not in arrays:
        raise DataError(f"{path} has arrays {sorted(arrays)} but no 'x'; save the inputs as x=...")
    x = arrays["x"]
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: 'x' has dtype {x.dtype}; save float32 inputs, preprocessed as the model expects.")
    y = arrays.get("y")
    if y is not None and (y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer)):
        raise DataError(f"{path}: 'y' must be {len(x)} integer class labels, got shape {list(y.shape)} {y.dtype}.")
    return Dataset(name=path.name, x=x.astype(np.float32), y=y, layout=layout)
