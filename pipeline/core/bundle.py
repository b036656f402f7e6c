"""ModelBundle: a source model plus everything the stages and exporters need to know."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.core.datasets import Dataset
from pipeline.core.errors import DataError
from pipeline.core.reference import OUTPUT_NAMES, PREDICTORS
from pipeline.core.tensors import (
    Feed,
    TensorSpec,
    bind_feed,
    describe_inputs,
    dtype_name,
    feed_length,
    layout_for,
    pad_feed,
    single_output,
    slice_feed,
)

__all__ = ["FRAMEWORKS", "ModelBundle", "SourceInfo", "TensorSpec", "run_feed_in_batches"]

FRAMEWORKS = ("keras", "torch")


def run_feed_in_batches(
    predict: Callable[[Any, Feed], list[np.ndarray]],
    model: Any,
    feed: Feed,
    batch_size: int,
    static_batch: int | None = None,
) -> list[np.ndarray]:
    """Call `predict(model, chunk)` over a feed and join each output; a static batch is honoured by padding."""
    step = static_batch or batch_size
    chunks: list[list[np.ndarray]] = []
    total = feed_length(feed)
    for start in range(0, total, step):
        chunk = slice_feed(feed, start, start + step)
        valid = feed_length(chunk)
        if static_batch and valid < static_batch:
            chunk = pad_feed(chunk, static_batch)
        chunks.append([np.asarray(out)[:valid] for out in predict(model, chunk)])
    return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]


@dataclass(frozen=True)
class SourceInfo:
    """Where a model came from: framework, intake format, path and content hash."""

    framework: str
    format: str
    path: str
    sha256: str


@dataclass(frozen=True)
class ModelBundle:
    """An in-memory source model with its signature (named inputs and outputs), task and data.

    `outputs` is empty until the outputs are known (`with_outputs` reads them by running the model once).
    `task` is 'auto' unless the model's card or the user names it.
    """

    framework: str
    model: Any
    inputs: tuple[TensorSpec, ...]
    source: SourceInfo
    task: str = "auto"
    labels: tuple[str, ...] = ()
    eval_data: Dataset | None = None
    calibration_data: Dataset | None = None
    train_data: Dataset | None = None
    outputs: tuple[TensorSpec, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.inputs, TensorSpec):
            object.__setattr__(self, "inputs", (self.inputs,))

    @property
    def input_spec(self) -> TensorSpec:
        """The input of a single-input model; DataError naming the inputs for one with several."""
        if len(self.inputs) != 1:
            raise DataError(f"This step takes single-input models; {self.source.path} has inputs "
                            f"{describe_inputs(self.inputs)}.")
        return self.inputs[0]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def static_batch(self) -> int | None:
        """The batch size the model was built for, when it is fixed."""
        return self.inputs[0].shape[0]

    def feed(self, data: Any, what: str = "input") -> Feed:
        """`data` (an array for a single input, a dict by input name, or a Dataset) checked against the inputs."""
        if isinstance(data, Dataset):
            data = data.inputs
        return bind_feed(self.inputs, data, what)

    def predict_outputs(self, data: Any, batch_size: int = 256) -> list[np.ndarray]:
        """Every output of the source model on a batch, run in its own framework (the reference)."""
        return run_feed_in_batches(PREDICTORS.get(self.framework), self.model, self.feed(data), batch_size,
                                   static_batch=self.static_batch)

    def predict(self, data: Any, batch_size: int = 256) -> np.ndarray:
        """The output of a single-output source model on a batch (the reference)."""
        return single_output(self.predict_outputs(data, batch_size), [spec.name for spec in self.outputs])

    def with_outputs(self) -> ModelBundle:
        """A copy whose `outputs` are read from one run of the model, unless they are known already."""
        if self.outputs:
            return self
        sample = {spec.name: np.zeros((self.static_batch or 1, *[d or 1 for d in spec.shape[1:]]), spec.dtype)
                  for spec in self.inputs}
        if self.eval_data is not None:  # bind only the one sample that runs
            sample = bind_feed(self.inputs, slice_feed(self.eval_data.inputs, 0, self.static_batch or 1), "input")
        names = OUTPUT_NAMES.get(self.framework)(self.model, sample) if self.framework in OUTPUT_NAMES else ()
        outputs = PREDICTORS.get(self.framework)(self.model, sample)
        specs = tuple(
            TensorSpec(names[i] if i < len(names) else f"output_{i}", (None, *np.shape(out)[1:]),
                       dtype_name(np.asarray(out).dtype), "NC" if np.ndim(out) == 2 else layout_for(np.ndim(out)))
            for i, out in enumerate(outputs))
        return replace(self, outputs=specs)

    def with_data(self, eval_data: Dataset | None = None, calibration_data: Dataset | None = None,
                  train_data: Dataset | None = None) -> ModelBundle:
        """A copy with evaluation, calibration and/or training data replaced (each checked against the inputs)."""
        checked = {}
        for field, what, data in (("eval_data", "evaluation data", eval_data),
                                  ("calibration_data", "calibration data", calibration_data),
                                  ("train_data", "training data", train_data)):
            if data is not None:
                checked[field] = replace(data, inputs=bind_feed(self.inputs, data.inputs, what))
        return replace(self, **checked)
