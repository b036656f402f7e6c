"""User data from `.npz` files: one array per input name (`x` for a single input) and optional integer labels `y`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from pipeline.core.datasets.base import Dataset
from pipeline.core.errors import DataError

LABELS = "y"


def check_labels(y: np.ndarray | None, count: int, what: str) -> np.ndarray | None:
    """`y` as `count` integer class ids, or None; DataError otherwise."""
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != count or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: labels 'y' must be {count} integer class ids (one per sample), "
                        f"got shape {list(y.shape)} {y.dtype}.")
    return y


def load_npz(path: Path, layout: str) -> Dataset:
    """Read every input array (and `y` if present) without unpickling; DataError names what is wrong.

    The arrays are checked against a model's inputs later (`ModelBundle.with_data`), which names what it expects.
    """
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist; it must be an .npz with one array per input name "
                        "('x' for a single input) and optional labels 'y'.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"Could not read {path} as .npz ({exc}); write it with numpy.savez(path, x=inputs, y=labels) "
            "(or one array per input name)."
        ) from None
    y = arrays.pop(LABELS, None)
    if not arrays:
        raise DataError(f"{path} holds no input arrays; save the inputs as x=... (or one array per input name).")
    count = len(next(iter(arrays.values())))
    return Dataset(name=path.name, inputs=arrays, y=check_labels(y, count, str(path)), layout=layout)
