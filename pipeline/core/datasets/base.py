"""Dataset records, the dataset registry and layout conversion."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from pipeline.core.errors import DataError
from pipeline.core.registry import Registry
from pipeline.core.tensors import SHORTHAND, feed_length, slice_feed

LAYOUTS = ("NHWC", "NCHW", "NC")


@dataclass(frozen=True)
class Dataset:
    """Samples of one or more named inputs (images in `layout`) with optional integer labels `y`.

    `inputs` maps input name -> batch; a single array given in its place is the single input `x`.
    """

    name: str
    inputs: Mapping[str, np.ndarray]
    y: np.ndarray | None
    layout: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, Mapping):
            object.__setattr__(self, "inputs", {SHORTHAND: self.inputs})
        if not self.inputs:
            raise DataError(f"Dataset '{self.name}' has no inputs.")

    @property
    def x(self) -> np.ndarray:
        """The samples of a single-input dataset; DataError for one with several inputs."""
        if len(self.inputs) != 1:
            raise DataError(f"Dataset '{self.name}' has {len(self.inputs)} inputs ({', '.join(self.inputs)}); "
                            "use its `inputs` by name.")
        return next(iter(self.inputs.values()))

    def __len__(self) -> int:
        return feed_length(self.inputs)

    def take(self, count: int) -> Dataset:
        """The first `count` samples (all of them if fewer exist)."""
        y = None if self.y is None else self.y[:count]
        return Dataset(self.name, slice_feed(self.inputs, 0, count), y, self.layout, self.labels)

    def in_layout(self, layout: str) -> Dataset:
        """The same samples with their 4-D (image) inputs transposed to `layout` (NHWC <-> NCHW)."""
        if layout == self.layout:
            return self
        moved = {name: to_layout(x, self.layout, layout) if x.ndim == 4 else x for name, x in self.inputs.items()}
        return Dataset(self.name, moved, self.y, layout, self.labels)


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
