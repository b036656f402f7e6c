"""Dataset records, the dataset registry and layout conversion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.core.errors import DataError
from pipeline.core.registry import Registry

LAYOUTS = ("NHWC", "NCHW", "NC")


@dataclass(frozen=True)
class Dataset:
    """Inputs `x` (float32, in `layout`) with optional integer labels `y`."""

    name: str
    x: np.ndarray
    y: np.ndarray | None
    layout: str
    labels: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, count: int) -> Dataset:
        """The first `count` samples (all of them if fewer exist)."""
        y = None if self.y is None else self.y[:count]
        return Dataset(self.name, self.x[:count], y, self.layout, self.labels)

    def in_layout(self, layout: str) -> Dataset:
        """The same samples transposed to `layout` (NHWC <-> NCHW)."""
        return Dataset(self.name, to_layout(self.x, self.layout, layout), self.y, layout, self.labels)


@dataclass(frozen=True)
class DatasetSplits:
    """Fixed splits of one dataset: train, calibration (drawn from train) and test."""

    train: Dataset
    calibration: Dataset
    test: Dataset


def to_layout(x: np.ndarray, source: str, target: str) -> np.ndarray:
    """Transpose a batch between NHWC and NCHW; other layouts must match exactly."""
    for layout in (source, target):
        if layout not in LAYOUTS:
            raise DataError(f"Unknown layout '{layout}'. Available: {', '.join(LAYOUTS)}.")
    if source == target:
        return x
    if {source, target} != {"NHWC", "NCHW"} or x.ndim != 4:
        raise DataError(f"Cannot convert a {x.ndim}-D batch from {source} to {target}.")
    axes = (0, 3, 1, 2) if target == "NCHW" else (0, 2, 3, 1)
    # copy(order="C"): ascontiguousarray keeps odd strides on size-1 dims, which exporters then bake in
    return x.transpose(axes).copy(order="C")


DATASETS: Registry[Callable[[int], DatasetSplits]] = Registry("dataset")


def load_dataset(name: str, seed: int = 0) -> DatasetSplits:
    """Build the named bundled dataset's splits (deterministic for a given seed)."""
    return DATASETS.get(name)(seed)
