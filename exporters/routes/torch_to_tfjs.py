"""PyTorch -> TF.js with ONNX as the bridge: torch.onnx.export -> onnx2tf (TF SavedModel) -> the TF.js converter.

Every step's failure is an ExportError naming the route, the step and the op it failed on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import re
import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from exporters.base import AppliedStage
from exporters.routes import tf_to_tfjs, torch_to_executorch
from exporters.routes.onnx_common import OPSET, first_line, on_ops, step_failed, strip_colours
from exporters.routes.onnx_rewrites import ONNX_TO_TF_REWRITES
from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
from pipeline.core.datasets import Dataset
from pipeline.core.errors import ConfigError, ExportError, PipelineError, converter_errors
from pipeline.core.tensors import as_outputs
from quantize import QuantizationConfig, handler_for, register_handler

INPUT_LAYOUTS = ("NHWC", "NCHW")
TORCH_TO_TFJS = "PyTorch -> TF.js"
TARGET = "tfjs"
TORCH_TO_TFJS_ROUTE = (
    "torch.onnx.export (dynamo, opset 18, batch 1) -> onnx2tf (SavedModel, NHWC input) "
    "-> tensorflowjs.converters.convert_tf_saved_model"
)
TORCH_TO_TFJS_NCHW_ROUTE = TORCH_TO_TFJS_ROUTE.replace("NHWC input", "NCHW input kept")


def _check_layout(input_layout: str) -> None:
    if input_layout not in INPUT_LAYOUTS:
        raise ConfigError(f"input_layout '{input_layout}' is not known. Options: {', '.join(INPUT_LAYOUTS)}.")


def _output_names(module: Any, args: tuple[Any, ...]) -> list[str]:
    """output_0, output_1, ... zero-padded so that sorting them by name (the SavedModel signature's order)
    keeps the torch model's order."""
    import torch

    with torch.no_grad():
        count = len(as_outputs(module(*args)))
    return [f"output_{i:0{len(str(count - 1))}d}" for i in range(count)]


def torch_to_onnx(bundle: ModelBundle) -> Any:
    """Step 1/3: the torch model as an in-memory ONNX ModelProto (dynamo exporter, batch 1); its inputs carry the
    model's input names, its outputs output_0, output_1, ... in the model's order."""
    import torch

    # torch.onnx warns once per op it could register for torchvision, which is not installed (and not needed)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    def failed(exc: Exception) -> PipelineError:  # OnnxExporterError, torch.export's UserError, ...
        ops = re.findall(r"op='([\w.]+)'|target=torch\.ops\.(\w+\.\w+)", strip_colours(str(exc)))
        detail = first_line(exc, r"No ONNX function|Error when translating|Unsupported")
        return step_failed(
            TORCH_TO_TFJS, "1/3 (torch.onnx.export)", on_ops(a or b for a, b in ops),
            re.sub(r"<class '[\w.]+'>: ", "", detail),
            "Replace the op in the model, or register a translation with torch.onnx.export(custom_translation_table=...); "
            "if torch.export cannot trace forward(), remove data-dependent Python control flow.",
        )

    args = torch_to_executorch.example_args(bundle, TORCH_TO_TFJS_NCHW_ROUTE)
    with converter_errors(failed, "torch.onnx.export"):
        program = torch.onnx.export(bundle.model, args, dynamo=True, opset_version=OPSET, verbose=False,
                                    input_names=list(bundle.input_names),
                                    output_names=_output_names(bundle.model, args))
    return program.model_proto


# onnx2tf's ERROR lines that only point at its docs, or at the trace log printed between them
_ONNX2TF_ADVICE = re.compile(r"trace log is below|input_onnx_file_path|onnx_op_name|Read this and deal|"
                             r"Alternatively, if the input|If the input OP|Also, for models|^\s*$")


def _onnx2tf_detail(exc: BaseException, log: str) -> str:
    """What onnx2tf said went wrong: its first ERROR line that is not advice, else the exception's own reason."""
    errors = [line.removeprefix("ERROR:").strip() for line in strip_colours(log).splitlines() if line.startswith("ERROR:")]
    errors = [line for line in errors if not _ONNX2TF_ADVICE.search(line)]
    if errors:
        return errors[0][:400]
    # a TF op's failure reads 'Exception encountered when calling layer "tf.norm" ...' and then the reason
    layer = re.search(r'calling layer "([\w.]+)"', str(exc))
    reason = first_line(exc, r"^(?!Exception encountered)")
    return f"{layer.group(1)}: {reason}" if layer and layer.group(1) not in reason else reason


def onnx_to_tf_saved_model(model_proto: Any, out_dir: Path, input_layout: str = "NHWC") -> Path:
    """Step 2/3: onnx2tf writes a SavedModel (signature `serving_default`) into `out_dir`.

    onnx2tf turns NCHW into NHWC throughout; input_layout='NCHW' keeps the source's input layout
    (one Transpose at the input) so the artifact takes the same data as the torch model.
    """
    _check_layout(input_layout)
    from pipeline.core.keras_compat import import_keeping_keras3

    # it sets TF_USE_LEGACY_KERAS=1 at import; so would find_spec below, which imports the package first
    onnx2tf = import_keeping_keras3("onnx2tf")
    for rewrite in ONNX_TO_TF_REWRITES:
        model_proto = rewrite(model_proto)
    missing = [n.op_type for n in model_proto.graph.node if importlib.util.find_spec(f"onnx2tf.ops.{n.op_type}") is None]
    if missing:
        raise step_failed(TORCH_TO_TFJS, "2/3 (onnx2tf)", on_ops(missing), "onnx2tf has no converter for it",
                          "Replace the op in the model, or export to tflite (litert-torch route) instead.")

    log = io.StringIO()
    # onnx2tf moves every 3-D to 5-D input to channels-last unless told to keep it
    keep = [i.name for i in model_proto.graph.input if 3 <= len(i.type.tensor_type.shape.dim) <= 5] \
        if input_layout == "NCHW" else None
    keep = keep or None
    try:
        with contextlib.redirect_stdout(log):  # onnx2tf and tf_keras print progress and errors
            onnx2tf.convert(onnx_graph=model_proto, output_folder_path=str(out_dir), output_signaturedefs=True,
                            non_verbose=True, not_use_onnxsim=True, keep_ncw_or_nchw_or_ncdhw_input_names=keep)
    except (Exception, SystemExit) as exc:  # onnx2tf re-raises op errors and sys.exit()s on bad input
        node = getattr(exc, "onnx_op_name", None)
        node = re.sub("^wa/", "/", node) if node else None  # onnx2tf's own renaming of node names
        op = next((n.op_type for n in model_proto.graph.node if n.name.replace(":", "_") == node), None)
        raise step_failed(TORCH_TO_TFJS, "2/3 (onnx2tf)", on_ops([op or node]), _onnx2tf_detail(exc, log.getvalue()),
                          "Replace the op in the model, or export to tflite (litert-torch route) instead.") from None
    if not (out_dir / "saved_model.pb").is_file():
        raise step_failed(TORCH_TO_TFJS, "2/3 (onnx2tf)", "", f"no saved_model.pb in {out_dir}",
                          "Run onnx2tf on the model by hand to see why.")
    return out_dir


def torch_to_tf_saved_model(bundle: ModelBundle, scratch_dir: Path, input_layout: str = "NHWC") -> Path:
    """Steps 1-2: the torch model as a TF SavedModel at `scratch_dir/saved_model` (batch 1)."""
    _check_layout(input_layout)
    return onnx_to_tf_saved_model(torch_to_onnx(bundle), scratch_dir / "saved_model", input_layout)


def artifact_layout(bundle: ModelBundle, input_layout: str) -> str:
    """The converted model's input layout: `input_layout` for images, the source's otherwise."""
    images = [spec for spec in bundle.inputs if len(spec.shape) == 4]
    return input_layout if images else bundle.inputs[0].layout


def _in_layout(data: Dataset, layout: str) -> Dataset:
    return data if data.layout == layout else data.in_layout(layout)


def saved_model_bundle(bundle: ModelBundle, saved_model: Path, layout: str) -> ModelBundle:
    """The converted SavedModel as a 'tensorflow' bundle, its data (every split) transposed to `layout`."""
    from pipeline.intake.keras_intake import load_saved_model

    loaded, specs = load_saved_model(saved_model)
    order = {name: i for i, name in enumerate(bundle.input_names)}  # the signature's own order is arbitrary
    specs = tuple(sorted(specs, key=lambda s: order.get(s.name, len(order))))
    splits = {f.name: _in_layout(value, layout) for f in fields(bundle)
              if isinstance(value := getattr(bundle, f.name), Dataset)}
    return replace(
        bundle, framework="tensorflow", model=loaded,
        inputs=tuple(TensorSpec(s.name, s.shape, s.dtype, layout if len(s.shape) == 4 else s.layout) for s in specs),
        source=SourceInfo("tensorflow", "saved_model", str(saved_model), ""), **splits,
    )


def convert_torch_to_tfjs(
    bundle: ModelBundle,
    out_dir: Path,
    quantization: QuantizationConfig,
    shard_size_bytes: int = 4 * 1024 * 1024,
    input_layout: str = "NHWC",
) -> tuple[AppliedStage, ...]:
    """All three steps: write `model.json` + shards into `out_dir`; returns the quantization stage (if any).

    An impossible mode is refused (UnsupportedRouteError) before anything is converted.
    """
    handler_for(quantization.mode, bundle.framework, TARGET)  # refuse an impossible mode before converting
    with tempfile.TemporaryDirectory(prefix="onnx-bridge-") as scratch:
        saved = torch_to_tf_saved_model(bundle, Path(scratch), input_layout)
        tf_bundle = saved_model_bundle(bundle, saved, artifact_layout(bundle, input_layout))
        try:
            return tf_to_tfjs.convert_tf_to_tfjs(tf_bundle, out_dir, quantization, shard_size_bytes)
        except ExportError as exc:
            raise ExportError(f"{TORCH_TO_TFJS} step 3/3 (TF.js converter) failed: {exc}") from None


def _nchw(
    bundle: ModelBundle, out_dir: Path, quantization: QuantizationConfig, shard_size_bytes: int = 4 * 1024 * 1024
) -> tuple[AppliedStage, ...]:
    """The handler of every mode: the artifact keeps the source's NCHW input, so it takes the same data."""
    return convert_torch_to_tfjs(bundle, out_dir, quantization, shard_size_bytes, "NCHW")


for _mode in tf_to_tfjs.QUANTIZATION_DTYPE_MAPS:  # whatever the TF.js converter takes, after the bridge
    register_handler(_mode, "torch", TARGET, _nchw)
