"""Bundled datasets (no downloads): a registry of named, deterministic splits."""

from pipeline.core.datasets import digits as _digits  # noqa: F401  (registers "digits")
from pipeline.core.datasets import sentences as _sentences  # noqa: F401  (registers "sentences")
from pipeline.core.datasets import shapes as _shapes  # noqa: F401  (registers "shapes")
from pipeline.core.datasets.base import DATASETS, Dataset, DatasetSplits, load_dataset, to_layout

__all__ = ["DATASETS", "Dataset", "DatasetSplits", "load_dataset", "to_layout"]
