"""Real samples for the exporters: a batch-1 example for tracing, and calibration feeds for static quantization.

Both come from the bundle's data as feeds (input name -> batch, in the model's input order, each in its input's
dtype), so a model with token ids traces and calibrates on real ids, never on random floats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import DataError, UnsupportedRouteError
from pipeline.core.tensors import Feed, describe_inputs, feed_length, slice_feed


def example_feed(bundle: ModelBundle, route: str) -> Feed:
    """One batch-1 sample per input in C order: the first real sample when the bundle has data, else zeros for
    float inputs, ones for integer inputs (a valid id and a full attention mask) and True for bool inputs.

    Raises UnsupportedRouteError naming the input when it has a dynamic dimension and there is no data to fix it
    (`route` exports fixed shapes).
    """
    data = bundle.eval_data or bundle.calibration_data
    if data is not None and len(data):
        feed = bundle.feed(data.take(1), "example input")
    else:
        open_dims = [spec for spec in bundle.inputs if any(d is None for d in spec.shape[1:])]
        if open_dims:
            fixed = ",".join(f"{spec.name}:1x{'x'.join(str(d or 128) for d in spec.shape[1:])}:{spec.dtype}"
                             for spec in bundle.inputs)
            raise UnsupportedRouteError(
                f"{route} exports fixed shapes, and input(s) {describe_inputs(open_dims)} have a dynamic dimension "
                f"(-1) with no data to read it from. Fix it with --input-spec {fixed} (the size the device will "
                "use), or pass --eval-data with samples of that size.")
        fill = {"bool": True}
        feed = {spec.name: np.full((1, *spec.shape[1:]), fill.get(spec.dtype, 0 if spec.is_float else 1), spec.dtype)
                for spec in bundle.inputs}
    return _standard_strides(feed)


def _standard_strides(feed: Feed) -> Feed:
    """Fresh C-order copies: a user's view can carry a 0 stride on a size-1 axis (x[:, None]), which lowering
    refuses (np.ascontiguousarray keeps such strides)."""
    return {name: np.array(array, order="C", copy=True) for name, array in feed.items()}


def calibration_feed(bundle: ModelBundle, count: int) -> Feed:
    """Up to `count` real calibration samples of every input, each in its input's dtype; DataError if none."""
    data = bundle.calibration_data
    if data is None or len(data) == 0:
        arrays = ", ".join(f"'{spec.name}' {[1, *(-1 if d is None else d for d in spec.shape[1:])]} {spec.dtype}"
                           for spec in bundle.inputs)
        raise DataError(
            f"int8 quantization needs calibration data: pass --calibration FILE.npz (one array per input: {arrays}; "
            "'x' names a single input), or use a model with a card (`pipeline train`), or choose --quantize "
            "dynamic-int8, which needs none."
        )
    return bundle.feed(data.take(count), "calibration data")


def per_sample(feed: Feed) -> list[Feed]:
    """The feed as batch-1 feeds, one per sample, in C order (a batch-1 program takes one at a time)."""
    return [_standard_strides(slice_feed(feed, i, i + 1)) for i in range(feed_length(feed))]


def torch_args(feed: Feed) -> tuple[Any, ...]:
    """A feed as positional torch tensors, in the model's input order (each keeps its dtype)."""
    import torch

    return tuple(torch.from_numpy(array) for array in feed.values())
