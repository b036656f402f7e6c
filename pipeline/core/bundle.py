"""ModelBundle: a source model plus everything the stages and exporters need to know."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from pipeline.core.datasets import Dataset
from pipeline.core.errors import DataError
from pipeline.core.reference import PREDICTORS

FRAMEWORKS = ("keras", "torch")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, shape (None = any size), dtype and layout."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    layout: str = "NHWC"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}

    def check_batch(self, x: np.ndarray, what: str) -> None:
        """Raise DataError unless `x` is a batch matching this spec (any batch size)."""
        expected = self.shape[1:]
        actual = tuple(x.shape[1:])
        ok = x.ndim == len(self.shape) and all(e is None or e == a for e, a in zip(expected, actual, strict=False))
        if not ok:
            raise DataError(
                f"{what} has samples of shape {list(actual)} but input '{self.name}' expects "
                f"{list(self.shape)} ({self.layout}); convert the data to the model's layout "
                f"or pass a matching --input-shape."
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise DataError(f"{what} has dtype {x.dtype}; the model expects {self.dtype} inputs.")


def run_in_batches(
    predict: Callable[[Any, np.ndarray], np.ndarray],
    model: Any,
    x: np.ndarray,
    batch_size: int,
    static_batch: int | None = None,
) -> np.ndarray:
    """Call `predict(model, chunk)` over `x`; a static batch size is honoured by padding."""
    step = static_batch or batch_size
    outputs = []
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        valid = len(chunk)
        if static_batch and valid < static_batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], static_batch - valid, axis=0)])
        outputs.append(np.asarray(predict(model, chunk))[:valid])
    return np.concatenate(outputs)


@dataclass(frozen=True)
class SourceInfo:
    """Where a model came from: framework, intake format, path and content hash."""

    framework: str
    format: str
    path: str
    sha256: str


@dataclass(frozen=True)
class ModelBundle:
    """An in-memory source model with its signature, task and data."""

    framework: str
    model: Any
    input_spec: TensorSpec
    source: SourceInfo
    task: str = "classification"
    labels: tuple[str, ...] = ()
    eval_data: Dataset | None = None
    calibration_data: Dataset | None = None
    train_data: Dataset | None = None

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Run the source model on a batch in its own framework (the reference)."""
        self.input_spec.check_batch(x, "input")
        return run_in_batches(PREDICTORS.get(self.framework), self.model, x.astype(np.float32),
                              batch_size, static_batch=self.input_spec.shape[0])

    def with_data(self, eval_data: Dataset | None = None, calibration_data: Dataset | None = None) -> ModelBundle:
        """A copy with evaluation and/or calibration data replaced (checked against the input)."""
        for name, data in (("evaluation data", eval_data), ("calibration data", calibration_data)):
            if data is not None:
                self.input_spec.check_batch(data.x, name)
        return replace(
            self,
            eval_data=eval_data if eval_data is not None else self.eval_data,
            calibration_data=calibration_data if calibration_data is not None else self.calibration_data,
        )
