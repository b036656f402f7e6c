"""Bundled datasets (no downloads): a registry of named, deterministic splits."""

from pipeline.datasets import digits as _digits  # noqa: F401  (registers "digits")
from pipeline.datasets import shapes as _shapes  # noqa: F401  (registers "shapes")
from pipeline.datasets.base import DATASETS, Dataset, DatasetSplits, load_dataset, to_layout

__all__ = ["DATASETS", "Dataset", "DatasetSplits", "load_dataset", "to_layout"]
