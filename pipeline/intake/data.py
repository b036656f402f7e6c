"""User data given in memory or as a file, turned into a Dataset checked against the model's inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.datasets import Dataset
from pipeline.core.datasets.npz import LABELS, check_labels, load_npz
from pipeline.core.errors import DataError
from pipeline.core.tensors import TensorSpec, bind_feed

DATA_FORMS = ("an array of inputs (single-input model)", "a tuple (inputs, labels)",
              "a dict {input name: array, ..., 'y': labels} ('x' for a single input)",
              "the path of an .npz file with one array per input name and optional 'y'", "a Dataset")


def to_dataset(data: Any, specs: TensorSpec | Sequence[TensorSpec], what: str) -> Dataset:
    """`data` (an array, (inputs, y), {name: array, 'y': labels}, an .npz path or a Dataset) as a Dataset.

    Image inputs are taken to be in the model's own layout and every input is checked against its spec
    (name, shape, dtype) before any slow work. Raises DataError naming what the model expects.
    """
    specs = (specs,) if isinstance(specs, TensorSpec) else tuple(specs)
    layout = next((spec.layout for spec in specs if len(spec.shape) == 4), specs[0].layout)
    if isinstance(data, Dataset):
        dataset = data.in_layout(layout) if data.layout != layout else data
    elif isinstance(data, (str, Path)):
        dataset = load_npz(Path(data), layout)
    elif isinstance(data, tuple):
        if len(data) != 2:
            raise DataError(f"{what}: a tuple must be (inputs, labels), got {len(data)} items.")
        dataset = Dataset(what, _arrays(data[0]), _labels(data[1], data[0], what), layout)
    elif isinstance(data, Mapping):
        arrays = {name: value for name, value in data.items() if name != LABELS}
        dataset = Dataset(what, _arrays(arrays), _labels(data.get(LABELS), arrays, what), layout)
    elif hasattr(data, "__array__") or isinstance(data, list):
        dataset = Dataset(what, _arrays(data), None, layout)
    else:
        raise DataError(f"{what}: cannot read a {type(data).__name__}; pass {'; '.join(DATA_FORMS)}.")
    if len(dataset) == 0:
        raise DataError(f"{what} is empty; pass at least one sample.")
    return Dataset(dataset.name, bind_feed(specs, dataset.inputs, what), dataset.y, layout, dataset.labels)


def _arrays(inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
        return {name: np.asarray(value) for name, value in inputs.items()}
    return np.asarray(inputs)


def _labels(y: Any, inputs: Any, what: str) -> np.ndarray | None:
    first = next(iter(inputs.values())) if isinstance(inputs, Mapping) and inputs else inputs
    return check_labels(None if y is None else np.asarray(y), len(np.asarray(first)), what)


def with_user_data(bundle: ModelBundle, *, eval_data: Any = None, calibration: Any = None,
                   train_data: Any = None) -> ModelBundle:
    """`bundle` with the data a user gave (any form `to_dataset` takes; None keeps the bundle's own), each split
    checked against the model's inputs before any slow work."""
    specs = bundle.inputs
    return bundle.with_data(
        eval_data=to_dataset(eval_data, specs, "evaluation data") if eval_data is not None else None,
        calibration_data=to_dataset(calibration, specs, "calibration data") if calibration is not None else None,
        train_data=to_dataset(train_data, specs, "training data") if train_data is not None else None,
    )
