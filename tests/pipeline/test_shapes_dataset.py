import numpy as np
import pytest

from pipeline.core.datasets import DATASETS, load_dataset
from pipeline.core.datasets.shapes import CLASSES, render


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes")


def test_shapes_is_registered_with_64x64_rgb_splits(shapes):
    assert "shapes" in DATASETS
    assert shapes.train.x.shape == (4800, 64, 64, 3) and shapes.test.x.shape == (600, 64, 64, 3)
    for split in (shapes.train, shapes.test):
        assert split.x.dtype == np.float32 and split.x.flags["C_CONTIGUOUS"] and split.layout == "NHWC"
        assert split.x.min() >= 0.0 and split.x.max() <= 1.0
        assert split.labels == CLASSES and len(CLASSES) >= 6
    np.testing.assert_array_equal(shapes.calibration.x, shapes.train.x[:200])


def test_every_class_is_equally_represented(shapes):
    assert np.bincount(shapes.train.y, minlength=len(CLASSES)).tolist() == [600] * len(CLASSES)
    assert np.bincount(shapes.test.y, minlength=len(CLASSES)).tolist() == [75] * len(CLASSES)
    assert len(set(shapes.train.y[:16].tolist())) > 1  # shuffled, not sorted by class


def test_same_seed_gives_identical_arrays(shapes):
    again = load_dataset("shapes", seed=0)
    np.testing.assert_array_equal(again.train.x, shapes.train.x)
    np.testing.assert_array_equal(again.test.y, shapes.test.y)
    other = load_dataset("shapes", seed=1)
    assert not np.array_equal(other.test.x, shapes.test.x)


def test_images_are_not_trivially_separable_by_colour(shapes):
    """The shape and background colours are random, so mean colour says little about the class."""
    means = np.stack([shapes.train.x[shapes.train.y == c].mean(axis=(0, 1, 2)) for c in range(len(CLASSES))])
    assert np.ptp(means, axis=0).max() < 0.05


def test_render_draws_the_requested_classes_deterministically():
    labels = np.arange(len(CLASSES))
    first = render(labels, np.random.default_rng(7))
    np.testing.assert_array_equal(first, render(labels, np.random.default_rng(7)))
    assert first.shape == (len(CLASSES), 64, 64, 3)
