"""Keras model or TensorFlow SavedModel -> TF.js graph model through the tensorflowjs converter.

One registered handler per mode the converter can express: its `quantization_dtype_map`.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from functools import partial
from pathlib import Path
from typing import Any

from exporters.base import AppliedStage
from exporters.routes.tf_to_tflite import _saved_model_dir
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, converter_errors, first_line, tensorflow_errors
from quantize import QuantizationConfig, handler_for, register_handler

KERAS_ROUTE = "Keras model.export (SavedModel, batch 1) -> tensorflowjs.converters.convert_tf_saved_model"
SAVED_MODEL_ROUTE = "SavedModel -> tensorflowjs.converters.convert_tf_saved_model"
TOOL = "tensorflowjs.converters.convert_tf_saved_model"
MODEL_JSON = "model.json"
TARGET = "tfjs"

# Mode -> the converter's `quantization_dtype_map` (True: every float32 weight, like the bare
# --quantize_float16/--quantize_uint8/--quantize_uint16 flags). Weights only; compute stays float32.
QUANTIZATION_DTYPE_MAPS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "fp16": {"float16": True},
    "uint8": {"uint8": True},
    "uint16": {"uint16": True},
}


def unsupported_ops(message: str) -> list[str]:
    """Op names from the converter's 'Unsupported Ops in the model ...' error (in order, no repeats)."""
    names: list[str] = []
    for listed in re.findall(r"Unsupported Ops in the model[^\n]*\n([^\n]*)", message):
        names += [name.strip() for name in listed.split(",")]
    return list(dict.fromkeys(name for name in names if name))


def converter_failure(exc: Exception, model_path: str) -> ExportError:
    """An ExportError naming the ops TF.js lacks kernels for (or the converter's first message line)."""
    ops = unsupported_ops(str(exc))
    if ops:
        return ExportError(
            f"The TF.js converter cannot convert {model_path}: op(s) {', '.join(ops)} have no TF.js "
            "kernels. Replace them in the model, or export to another target (`pipeline routes`)."
        )
    return ExportError(f"The TF.js converter failed on {model_path}: {first_line(exc)}")


def _write_tfjs(
    bundle: ModelBundle,
    out_dir: Path,
    quantization: QuantizationConfig,
    shard_size_bytes: int = 4 * 1024 * 1024,
    *,
    dtype_map: dict[str, Any] | None,
) -> tuple[AppliedStage, ...]:
    """The handler of every mode, bound to its `dtype_map`: write `model.json` and its weight shards into `out_dir`."""
    # tensorflowjs imports tensorflow_decision_forests, whose welcome banner imports IPython
    # (not installed) whenever stdout is not a terminal (pytest, Streamlit, pipes).
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    with warnings.catch_warnings():  # tensorflow_hub's import-time pkg_resources notice
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        from tensorflowjs.converters import convert_tf_saved_model

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tfjs-export-") as scratch:
        saved_model = _saved_model_dir(bundle, Path(scratch))
        with converter_errors(lambda exc: converter_failure(exc, bundle.source.path), "The TF.js conversion",
                              *tensorflow_errors()):
            convert_tf_saved_model(
                str(saved_model), str(out_dir),
                quantization_dtype_map=dtype_map, weight_shard_size_bytes=shard_size_bytes,
            )
    if not (out_dir / MODEL_JSON).is_file():  # it prints and returns when it cannot freeze the graph
        raise ExportError(f"The TF.js converter wrote no {MODEL_JSON} for {bundle.source.path}; the graph could not be frozen.")
    if quantization.mode == "none":
        return ()
    return (AppliedStage("quantize", {**quantization.to_json(), "quantization_dtype_map": dtype_map}, TOOL),)


def convert_tf_to_tfjs(
    bundle: ModelBundle,
    out_dir: Path,
    quantization: QuantizationConfig,
    shard_size_bytes: int = 4 * 1024 * 1024,
) -> tuple[AppliedStage, ...]:
    """Write `model.json` and its `group*-shard*.bin` weight files into `out_dir` with the mode's handler.

    Returns the quantization stage applied (if any); an impossible mode is refused before converting.
    """
    return handler_for(quantization.mode, bundle.framework, TARGET)(bundle, out_dir, quantization, shard_size_bytes)


for _framework in ("keras", "tensorflow"):
    for _mode, _dtype_map in QUANTIZATION_DTYPE_MAPS.items():
        register_handler(_mode, _framework, TARGET, partial(_write_tfjs, dtype_map=_dtype_map))
