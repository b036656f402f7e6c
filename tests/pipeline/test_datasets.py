import numpy as np
import pytest

from pipeline.core.datasets import load_dataset, to_layout
from pipeline.core.datasets.npz import load_npz
from pipeline.core.errors import DataError


def test_digits_split_is_fixed_and_scaled():
    first, second = load_dataset("digits"), load_dataset("digits")
    assert first.test.x.shape == (360, 8, 8, 1)
    assert len(first.train) == 1437
    np.testing.assert_array_equal(first.test.y, second.test.y)
    assert first.test.x.min() >= 0.0 and first.test.x.max() <= 1.0
    assert len(first.calibration) == 200


def test_layout_round_trip():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    nchw = to_layout(x, "NHWC", "NCHW")
    assert nchw.shape == (2, 5, 3, 4)
    np.testing.assert_array_equal(to_layout(nchw, "NCHW", "NHWC"), x)


def test_npz_without_x_names_the_arrays(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, inputs=np.zeros((2, 3), np.float32))
    with pytest.raises(DataError, match=r"\['inputs'\] but no 'x'"):
        load_npz(path, "NC")


def test_npz_that_is_not_an_archive(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="Could not read"):
        load_npz(path, "NC")


def test_npz_labels_must_match_inputs(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((4, 3), np.float32), y=np.zeros(3, np.int64))
    with pytest.raises(DataError, match="'y' must be 4 integer class labels"):
        load_npz(path, "NC")
