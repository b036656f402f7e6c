"""Calibration samples for static quantization, taken from the bundle's real data."""

from __future__ import annotations

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import DataError


def calibration_samples(bundle: ModelBundle, count: int) -> np.ndarray:
    """Up to `count` float32 calibration inputs in the model's layout; DataError if there are none."""
    data = bundle.calibration_data
    if data is None or len(data) == 0:
        raise DataError(
            "int8 quantization needs calibration data: pass --calibration FILE.npz (array 'x' "
            f"shaped like the model input {list(bundle.input_spec.shape)}), or use a model with a card "
            "(`pipeline train`), or choose --quantize dynamic-int8, which needs none."
        )
    return data.x[:count].astype(np.float32)
