"""Keras model or TensorFlow SavedModel -> TF.js graph model through the tensorflowjs converter.

A Keras model goes as its frozen serving function (`tf_source`: one named input per model input, batch 1, every
output); a SavedModel as it is (the converter freezes its `serving_default` signature and keeps its dynamic
dimensions). One registered handler per mode the converter can express: its `quantization_dtype_map`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from functools import partial
from pathlib import Path
from typing import Any

from exporters.base import AppliedStage
from exporters.routes.tf_source import check_weight_bytes, frozen_function, save_frozen, source_parameter_bytes
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, converter_errors, first_line, tensorflow_errors
from quantize import QuantizationConfig, handler_for, register_handler

KERAS_ROUTE = ("Keras model -> tf.function (one TensorSpec per input, batch 1) -> variables frozen -> SavedModel -> "
               "tensorflowjs.converters.convert_tf_saved_model")
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


def _saved_model(bundle: ModelBundle, scratch: Path) -> tuple[Path, Any]:
    """The SavedModel to convert (the source itself, or the Keras model's frozen serving function) and its
    `serving_default` signature."""
    import tensorflow as tf

    if bundle.framework == "tensorflow":
        return Path(bundle.source.path), bundle.model.signatures["serving_default"]
    path = save_frozen(frozen_function(bundle, KERAS_ROUTE), scratch / "saved_model")
    return path, tf.saved_model.load(str(path)).signatures["serving_default"]


def restore_signature_names(model_json: Path, signature: Any) -> None:
    """Key model.json's signature by the SavedModel's input and output names.

    The converter recovers a name by matching dtype and shape, so inputs alike (input_ids and attention_mask,
    both [1, 128] int64) or outputs alike keep their graph tensor names (`input_ids:0`, `Identity_1:0`).
    """
    # the signature function's tensors come in tf.nest order: its keyword inputs, then its outputs, sorted by name
    by_tensor = dict(zip((t.name for t in signature.inputs), sorted(signature.structured_input_signature[1]), strict=False))
    by_tensor |= dict(zip((t.name for t in signature.outputs), sorted(signature.structured_outputs), strict=False))
    model = json.loads(model_json.read_text())
    named = model.get("signature", {})
    for part in ("inputs", "outputs"):
        if part in named:
            named[part] = {by_tensor.get(entry.get("name"), key): entry for key, entry in named[part].items()}
    model_json.write_text(json.dumps(model))


def weight_notes(bundle: ModelBundle, out_dir: Path, mode: str) -> dict[str, Any]:
    """The manifest notes comparing the weight shards' bytes with the source's parameter bytes; ExportError when
    the weights did not make it into the shards."""
    shard_bytes = sum(path.stat().st_size for path in out_dir.glob("group*-shard*.bin"))
    return check_weight_bytes(source_parameter_bytes(bundle), shard_bytes, mode, f"TF.js graph model in {out_dir}")


def _write_tfjs(
    bundle: ModelBundle,
    out_dir: Path,
    quantization: QuantizationConfig,
    shard_size_bytes: int = 4 * 1024 * 1024,
    *,
    dtype_map: dict[str, Any] | None,
) -> tuple[AppliedStage, ...]:
    """The handler of every mode, bound to its `dtype_map`: write `model.json` and its weight shards into `out_dir`.

    A SavedModel whose conversion meets an `_Mkl*` op (oneDNN's fusions, which TF.js lacks) is converted again
    in a child process with oneDNN off."""
    try:
        return _convert(bundle, out_dir, quantization, shard_size_bytes, dtype_map)
    except ExportError as exc:
        saved_model = Path(bundle.source.path) if bundle.framework == "tensorflow" else None
        if "_Mkl" not in str(exc) or saved_model is None or os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
            raise
        return _convert_without_onednn(saved_model, out_dir, quantization, shard_size_bytes)


def _convert(bundle: ModelBundle, out_dir: Path, quantization: QuantizationConfig, shard_size_bytes: int,
             dtype_map: dict[str, Any] | None) -> tuple[AppliedStage, ...]:
    # tensorflowjs imports tensorflow_decision_forests, whose welcome banner imports IPython
    # (not installed) whenever stdout is not a terminal (pytest, Streamlit, pipes).
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    with warnings.catch_warnings():  # tensorflow_hub's import-time pkg_resources notice
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        from tensorflowjs.converters import convert_tf_saved_model

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tfjs-export-") as scratch, converter_errors(
            lambda exc: converter_failure(exc, bundle.source.path), "The TF.js conversion", *tensorflow_errors()):
        saved_model, signature = _saved_model(bundle, Path(scratch))
        convert_tf_saved_model(
            str(saved_model), str(out_dir), quantization_dtype_map=dtype_map, weight_shard_size_bytes=shard_size_bytes,
        )
    if not (out_dir / MODEL_JSON).is_file():  # it prints and returns when it cannot freeze the graph
        raise ExportError(f"The TF.js converter wrote no {MODEL_JSON} for {bundle.source.path}; the graph could not be frozen.")
    restore_signature_names(out_dir / MODEL_JSON, signature)
    if quantization.mode == "none":
        return ()
    return (AppliedStage("quantize", {**quantization.to_json(), "quantization_dtype_map": dtype_map}, TOOL),)


_CHILD_CONVERSION = """
import json, sys
from pathlib import Path
from exporters.routes.tf_to_tfjs import convert_tf_to_tfjs
from pipeline.core.errors import PipelineError
from pipeline.intake import load_model
from quantize import quantization_config
saved, out_dir, mode, options, shard = json.loads(sys.argv[1])
try:
    stages = convert_tf_to_tfjs(load_model(saved), Path(out_dir), quantization_config(mode, **options), shard)
    print(json.dumps({"stages": [stage.to_json() for stage in stages]}))
except PipelineError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def _convert_without_onednn(saved: Path, out_dir: Path, quantization: QuantizationConfig,
                         shard_size_bytes: int) -> tuple[AppliedStage, ...]:
    """The conversion again, in a fresh process with TensorFlow's oneDNN ops off.

    With oneDNN on (the default on x86 Linux), the converter's grappler pass fuses layer norm into
    _MklLayerNorm, a kernel TF.js lacks; TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, at import.
    """
    import json
    import os
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])  # where `exporters` is imported from, for the child
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TFDF_DISABLE_WELCOME_MESSAGE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    options = {k: v for k, v in quantization.to_json().items() if k != "mode"}
    request = json.dumps([str(saved), str(out_dir), quantization.mode, options, shard_size_bytes])
    done = subprocess.run([sys.executable, "-c", _CHILD_CONVERSION, request], env=env, capture_output=True, text=True,
                          check=False)
    sys.stderr.write(done.stderr)  # the framework log, where the console sends it
    answer = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else None
    if answer is None:
        raise RuntimeError(f"The TF.js converter process (oneDNN off) exited {done.returncode}: "
                           f"{done.stderr.strip().splitlines()[-1:] or 'no output'}")
    if "error" in answer:
        raise ExportError(answer["error"])
    return tuple(AppliedStage(s["name"], s["config"], s["tool"], s.get("effect", {})) for s in answer["stages"])


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
