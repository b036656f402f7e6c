"""scikit-learn's bundled handwritten digits (8x8 grayscale, 10 classes)."""

from __future__ import annotations

import numpy as np

from pipeline.core.datasets.base import DATASETS, Dataset, DatasetSplits

TEST_FRACTION = 0.2
CALIBRATION_SAMPLES = 200


def digits_splits(seed: int = 0) -> DatasetSplits:
    """Stratified 80/20 split of `load_digits`, pixels scaled to [0, 1], NHWC."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=seed, stratify=y
    )
    labels = tuple(str(d) for d in range(10))
    train = Dataset("digits", x_train, y_train, "NHWC", labels)
    calibration = train.take(CALIBRATION_SAMPLES)
    test = Dataset("digits", x_test, y_test, "NHWC", labels)
    return DatasetSplits(train=train, calibration=calibration, test=test)


DATASETS.register("digits", digits_splits)
