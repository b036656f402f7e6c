"""Named tensors: a model's input and output specs, and feeds (one array per input name) checked against them.

A model has N named inputs and M named outputs. Each has a shape (batch first; None for a dynamic dimension),
a dtype from `DTYPES` and, for images, a layout. A *feed* is a dict from input name to a batch, ordered like
the model's inputs; a single array stands for the feed of a single-input model (and so does the name `x`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.core.errors import DataError

DTYPES = ("float32", "float16", "int32", "int64", "uint8", "bool")
SHORTHAND = "x"  # the single-input name a data file may use whatever the model calls its input

Feed = dict[str, np.ndarray]


def layout_for(rank: int, channels_last: bool = True) -> str:
    """The layout a framework gives an input of `rank` dimensions (4-D: NHWC or NCHW; 2-D: NC)."""
    if rank == 4:
        return "NHWC" if channels_last else "NCHW"
    return {2: "NC"}.get(rank, f"rank{rank}")


def dtype_name(dtype: Any) -> str:
    """A dtype of numpy, torch or TensorFlow as one of `DTYPES` (or its plain name when it is none of them)."""
    name = getattr(dtype, "name", None) if not isinstance(dtype, str) else dtype
    name = str(name or dtype).removeprefix("torch.").removeprefix("tf.")
    return {"bool_": "bool", "half": "float16", "float": "float32", "long": "int64", "int": "int32"}.get(name, name)


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, shape (None = any size), dtype and layout."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    layout: str = "NHWC"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(str(data.get("name", "input")), tuple(data.get("shape", ())), str(data.get("dtype", "float32")),
                   str(data.get("layout", "NC")))

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith("float")

    def describe(self) -> str:
        """`name: [shape] dtype` with -1 for dynamic dimensions, as an error message lists it."""
        dims = ",".join("-1" if d is None else str(d) for d in self.shape)
        return f"{self.name}: [{dims}] {self.dtype}"

    def check_batch(self, x: np.ndarray, what: str) -> np.ndarray:
        """`x` as a batch of this input in its dtype; DataError naming the mismatch otherwise."""
        expected = self.shape[1:]
        actual = tuple(x.shape[1:])
        ok = x.ndim == len(self.shape) and all(e is None or e == a for e, a in zip(expected, actual, strict=False))
        if not ok:
            raise DataError(
                f"{what} has samples of shape {list(actual)} for input '{self.name}', which expects "
                f"{list(self.shape)} ({self.layout}); convert the data to the model's layout "
                f"or give the shape the model was built for (--input-spec)."
            )
        return cast_batch(x, self, what)


def cast_batch(x: np.ndarray, spec: TensorSpec, what: str) -> np.ndarray:
    """`x` in `spec.dtype`: float inputs take finite floats, integer inputs integers, boolean inputs booleans
    or 0/1 (never a silent float <-> integer conversion)."""
    kind = x.dtype.kind
    if spec.is_float:
        if kind != "f":
            raise DataError(f"{what}: input '{spec.name}' has dtype {x.dtype}; the model expects {spec.dtype} "
                            "(save float inputs, preprocessed as the model expects).")
        if kind == "f" and not np.isfinite(x).all():
            bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
            raise DataError(f"{what}: input '{spec.name}' holds {bad} NaN or infinite values; clean or drop those "
                            "samples (every value must be finite).")
        return x.astype(spec.dtype, copy=False)
    if spec.dtype == "bool":
        if kind == "b" or (kind in "iu" and np.isin(x, (0, 1)).all()):
            return x.astype(bool, copy=False)
        raise DataError(f"{what}: input '{spec.name}' has dtype {x.dtype}; the model expects bool (or 0/1 integers).")
    if kind not in "iub":
        raise DataError(f"{what}: input '{spec.name}' has dtype {x.dtype}; the model expects {spec.dtype} "
                        "(token ids, masks and indices are integers: save them as integer arrays).")
    info = np.iinfo(spec.dtype)
    if x.size and kind != "b" and (x.min() < info.min or x.max() > info.max):
        raise DataError(f"{what}: input '{spec.name}' has values outside {spec.dtype}'s range [{info.min}, {info.max}].")
    return x.astype(spec.dtype, copy=False)


def describe_inputs(specs: Sequence[TensorSpec]) -> str:
    """The model's inputs as an error message lists them."""
    return "; ".join(spec.describe() for spec in specs)


def bind_feed(specs: Sequence[TensorSpec], data: Any, what: str) -> Feed:
    """`data` (an array for a single-input model, or a mapping of input name -> array; `x` stands for the
    single input) as a feed in the model's input order, each array checked and cast against its spec.

    Raises DataError listing what the model expects when a name is missing or unknown, a shape or dtype does
    not fit, or the arrays disagree on the number of samples.
    """
    expected = describe_inputs(specs)
    if not isinstance(data, Mapping):
        if len(specs) != 1:
            raise DataError(f"{what}: the model has {len(specs)} inputs ({expected}); pass one array per input "
                            "name (a dict, or an .npz with one array per name).")
        data = {specs[0].name: data}
    arrays = dict(data)
    if len(specs) == 1 and specs[0].name not in arrays and SHORTHAND in arrays:
        arrays[specs[0].name] = arrays.pop(SHORTHAND)
    names = [spec.name for spec in specs]
    missing = [name for name in names if name not in arrays]
    unknown = sorted(set(arrays) - set(names))
    if missing or unknown:
        found = ", ".join(sorted(arrays)) or "none"
        raise DataError(f"{what} has arrays {found} but the model's inputs are {expected}"
                        + (f" (missing: {', '.join(missing)})" if missing else "")
                        + (f" (unknown: {', '.join(unknown)})" if unknown else "")
                        + "; save one array per input name.")
    feed = {spec.name: spec.check_batch(np.asarray(arrays[spec.name]), what) for spec in specs}
    lengths = {name: len(array) for name, array in feed.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{what}: the inputs hold different numbers of samples ({lengths}); give each the same.")
    return feed


def feed_length(feed: Mapping[str, np.ndarray]) -> int:
    """How many samples a feed holds."""
    return len(next(iter(feed.values()))) if feed else 0


def slice_feed(feed: Mapping[str, np.ndarray], start: int, stop: int) -> Feed:
    """Samples `start:stop` of every input."""
    return {name: array[start:stop] for name, array in feed.items()}


def pad_feed(feed: Mapping[str, np.ndarray], size: int) -> Feed:
    """The feed padded to `size` samples by repeating its last sample (for a model with a static batch)."""
    return {name: np.concatenate([array, np.repeat(array[-1:], size - len(array), axis=0)]) if len(array) < size
            else array for name, array in feed.items()}


def as_outputs(result: Any) -> list[np.ndarray]:
    """A model call's result (an array, a tuple/list, a dict or a model-output object) as a list of arrays."""
    if isinstance(result, Mapping):
        return [np.asarray(value) for value in result.values()]
    if isinstance(result, (list, tuple)):
        return [np.asarray(value) for value in result]
    values = getattr(result, "values", None)  # e.g. a transformers ModelOutput
    if callable(values) and not hasattr(result, "shape"):
        return [np.asarray(value) for value in values()]
    return [np.asarray(result)]


def output_names(result: Any) -> tuple[str, ...]:
    """The names `as_outputs` would give a call's result its order by: a dict's or model-output's keys, else ()."""
    if isinstance(result, Mapping):
        return tuple(str(key) for key in result)
    keys = getattr(result, "keys", None)
    if callable(keys) and not hasattr(result, "shape"):
        return tuple(str(key) for key in keys())
    return ()


def single_output(outputs: Sequence[np.ndarray], names: Sequence[str] = ()) -> np.ndarray:
    """The only output of a single-output model; DataError naming them for a model with several."""
    if len(outputs) != 1:
        listed = ", ".join(names) if names else f"{len(outputs)} outputs"
        raise DataError(f"The model has {len(outputs)} outputs ({listed}); ask for all of them (`run_outputs`).")
    return outputs[0]


def parse_input_specs(text: str) -> tuple[TensorSpec, ...]:
    """`--input-spec name:shape:dtype[,name:shape:dtype...]`, a shape as 1x128 (-1 for a dynamic dimension).

    Raises DataError with the expected form for anything else.
    """
    form = "name:shape:dtype[,...], e.g. input_ids:1x128:int64,attention_mask:1x128:int64 (shape as 1x3x64x64, -1 dynamic)"
    specs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        fields = part.split(":")
        if len(fields) not in (2, 3) or not fields[0]:
            raise DataError(f"--input-spec '{part}' is not {form}.")
        name, shape_text, dtype = fields[0], fields[1], fields[2] if len(fields) == 3 else "float32"
        try:
            shape = tuple(None if d.strip() == "-1" else int(d) for d in shape_text.lower().split("x"))
        except ValueError:
            raise DataError(f"--input-spec '{part}': shape '{shape_text}' is not {form}.") from None
        if dtype not in DTYPES:
            raise DataError(f"--input-spec '{part}': dtype '{dtype}' is not one of {', '.join(DTYPES)}.")
        if len(shape) < 2 or any(d is not None and d < 1 for d in shape):
            raise DataError(f"--input-spec '{part}': a shape is batch first, then positive dimensions.")
        specs.append(TensorSpec(name, shape, dtype, layout_for(len(shape), channels_last=False) if dtype.startswith("float") else "NC"))
    if not specs:
        raise DataError(f"--input-spec is empty; give {form}.")
    if len({spec.name for spec in specs}) != len(specs):
        raise DataError(f"--input-spec names an input twice: {text}.")
    return tuple(specs)
