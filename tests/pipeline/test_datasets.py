import numpy as np
import pytest

from pipeline.core.datasets import load_dataset, to_layout
from pipeline.core.datasets.npz import load_npz
from pipeline.core.errors import DataError
from pipeline.core.tensors import TensorSpec, bind_feed
from pipeline.intake.data import to_dataset


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


def test_npz_arrays_that_are_not_the_models_inputs_name_what_it_expects(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, inputs=np.zeros((2, 3), np.float32), mask=np.ones((2, 3), np.int64))
    specs = (TensorSpec("input_ids", (None, 3), "int64", "NC"), TensorSpec("mask", (None, 3), "int64", "NC"))
    with pytest.raises(DataError, match=r"has arrays inputs, mask but the model's inputs are "
                                        r"input_ids: \[-1,3\] int64; mask: \[-1,3\] int64 \(missing: input_ids\) "
                                        r"\(unknown: inputs\)"):
        to_dataset(path, specs, "eval data")


def test_multi_input_npz_binds_by_name_and_casts_integers(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, mask=np.ones((2, 3), np.int32), input_ids=np.arange(6).reshape(2, 3), y=np.array([0, 1]))
    specs = (TensorSpec("input_ids", (None, 3), "int64", "NC"), TensorSpec("mask", (None, 3), "bool", "NC"))
    data = to_dataset(path, specs, "eval data")
    assert list(data.inputs) == ["input_ids", "mask"] and data.inputs["mask"].dtype == bool
    assert data.inputs["input_ids"].dtype == np.int64 and list(data.y) == [0, 1]
    with pytest.raises(DataError, match="has 2 inputs"):
        _ = data.x


def test_float_data_for_an_integer_input_and_nan_inputs_are_refused():
    spec = TensorSpec("input_ids", (None, 3), "int64", "NC")
    with pytest.raises(DataError, match="expects int64 .token ids"):
        bind_feed((spec,), np.zeros((2, 3), np.float32), "calibration data")
    image = TensorSpec("image", (None, 2), "float32", "NC")
    with pytest.raises(DataError, match="holds 1 NaN or infinite values"):
        bind_feed((image,), np.array([[0.0, np.nan], [1.0, 2.0]], np.float32), "calibration data")


def test_npz_that_is_not_an_archive(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="Could not read"):
        load_npz(path, "NC")


def test_npz_labels_must_match_inputs(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.zeros((4, 3), np.float32), y=np.zeros(3, np.int64))
    with pytest.raises(DataError, match="'y' must be 4 integer class ids"):
        load_npz(path, "NC")
