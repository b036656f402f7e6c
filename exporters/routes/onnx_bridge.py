"""Cross-framework routes with ONNX as the bridge.

PyTorch -> TF.js: torch.onnx.export -> onnx2tf (TF SavedModel) -> the TF.js converter (tf_to_tfjs).
Keras / SavedModel -> ExecuTorch: SavedModel -> tf2onnx -> onnx2fx (FX GraphModule) -> torch.export,
then the ExecuTorch lowering (torch_to_executorch). Every step's failure is an ExportError naming
the route, the step and the op it failed on.
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
from exporters.routes.tf_to_tflite import _saved_model_dir
from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
from pipeline.core.datasets import Dataset
from pipeline.core.errors import ConfigError, ExportError, PipelineError, UnsupportedRouteError
from quantize import QuantizationConfig

OPSET = 18
INPUT_LAYOUTS = ("NHWC", "NCHW")
TORCH_TO_TFJS = "PyTorch -> TF.js"
TF_TO_EXECUTORCH = "Keras/SavedModel -> ExecuTorch"
TORCH_TO_TFJS_ROUTE = (
    "torch.onnx.export (dynamo, opset 18, batch 1) -> onnx2tf (SavedModel, NHWC input) "
    "-> tensorflowjs.converters.convert_tf_saved_model"
)
TORCH_TO_TFJS_NCHW_ROUTE = TORCH_TO_TFJS_ROUTE.replace("NHWC input", "NCHW input kept")
KERAS_TO_EXECUTORCH_ROUTE = (
    "Keras model.export (SavedModel, batch 1) -> tf2onnx (opset 18) -> onnx2fx (FX GraphModule, NHWC input) "
    "-> torch.export -> to_edge_transform_and_lower (XnnpackPartitioner) -> to_executorch"
)
SAVED_MODEL_TO_EXECUTORCH_ROUTE = KERAS_TO_EXECUTORCH_ROUTE.replace("Keras model.export (SavedModel, batch 1)", "SavedModel")

# onnx2fx helpers whose shape/axes argument may be a Python list (they call .tolist() on a tensor);
# a list lets torch.export specialize the shape instead of reading a lifted buffer's values.
_SHAPE_ARG_FUNCTIONS = frozenset({"_reshape", "_expand", "_tile", "_dynamic_slice", "_squeeze_dynamic",
                                  "_unsqueeze_dynamic", "_split_with_sizes", "_constant_of_shape", "_pad_impl"})
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(exc: BaseException, pattern: str = "") -> str:
    """The first informative line of `exc` (or its first line matching `pattern`), without colours."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines()]
    lines = [line for line in lines if line and not line.endswith(":") and not line.startswith("File ")]
    chosen = next((line for line in lines if pattern and re.search(pattern, line)), lines[0] if lines else "")
    return (chosen or type(exc).__name__)[:400]


def _step_failed(route: str, step: str, where: str, detail: str, fix: str) -> ExportError:
    return ExportError(f"{route} step {step} failed{where}: {detail}. {fix}")


def _check_layout(input_layout: str) -> None:
    if input_layout not in INPUT_LAYOUTS:
        raise ConfigError(f"input_layout '{input_layout}' is not known. Options: {', '.join(INPUT_LAYOUTS)}.")


def _ops(names: Any) -> str:
    ordered = list(dict.fromkeys(n for n in names if n))
    return f" on op{'s' if len(ordered) > 1 else ''} {', '.join(ordered)}" if ordered else ""


# --- PyTorch -> TF SavedModel (-> TF.js) -------------------------------------------------------


def torch_to_onnx(bundle: ModelBundle) -> Any:
    """Step 1/3: the torch model as an in-memory ONNX ModelProto (dynamo exporter, batch 1)."""
    import torch

    # torch.onnx warns once per op it could register for torchvision, which is not installed (and not needed)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    try:
        program = torch.onnx.export(bundle.model, torch_to_executorch.example_args(bundle), dynamo=True,
                                    opset_version=OPSET, verbose=False)
    except Exception as exc:  # OnnxExporterError, torch.export's UserError, ...
        ops = re.findall(r"op='([\w.]+)'|target=torch\.ops\.(\w+\.\w+)", _ANSI.sub("", str(exc)))
        detail = _first_line(exc, r"No ONNX function|Error when translating|Unsupported")
        raise _step_failed(
            TORCH_TO_TFJS, "1/3 (torch.onnx.export)", _ops(a or b for a, b in ops),
            re.sub(r"<class '[\w.]+'>: ", "", detail),
            "Replace the op in the model, or register a translation with torch.onnx.export(custom_translation_table=...); "
            "if torch.export cannot trace forward(), remove data-dependent Python control flow.",
        ) from None
    return program.model_proto


def onnx_to_tf_saved_model(model_proto: Any, out_dir: Path, input_layout: str = "NHWC") -> Path:
    """Step 2/3: onnx2tf writes a SavedModel (signature `serving_default`) into `out_dir`.

    onnx2tf turns NCHW into NHWC throughout; input_layout='NCHW' keeps the source's input layout
    (one Transpose at the input) so the artifact takes the same data as the torch model.
    """
    _check_layout(input_layout)
    from pipeline.core.keras_compat import import_keeping_keras3

    # it sets TF_USE_LEGACY_KERAS=1 at import; so would find_spec below, which imports the package first
    onnx2tf = import_keeping_keras3("onnx2tf")
    missing = [n.op_type for n in model_proto.graph.node if importlib.util.find_spec(f"onnx2tf.ops.{n.op_type}") is None]
    if missing:
        raise _step_failed(TORCH_TO_TFJS, "2/3 (onnx2tf)", _ops(missing), "onnx2tf has no converter for it",
                           "Replace the op in the model, or export to tflite (litert-torch route) instead.")

    log = io.StringIO()
    keep = [model_proto.graph.input[0].name] if input_layout == "NCHW" else None
    try:
        with contextlib.redirect_stdout(log):  # onnx2tf and tf_keras print progress and errors
            onnx2tf.convert(onnx_graph=model_proto, output_folder_path=str(out_dir), output_signaturedefs=True,
                            non_verbose=True, not_use_onnxsim=True, keep_ncw_or_nchw_or_ncdhw_input_names=keep)
    except (Exception, SystemExit) as exc:  # onnx2tf re-raises op errors and sys.exit()s on bad input
        node = getattr(exc, "onnx_op_name", None)
        node = re.sub("^wa/", "/", node) if node else None  # onnx2tf's own renaming of node names
        op = next((n.op_type for n in model_proto.graph.node if n.name.replace(":", "_") == node), None)
        errors = [line for line in _ANSI.sub("", log.getvalue()).splitlines() if line.startswith("ERROR:")]
        detail = errors[0].removeprefix("ERROR:").strip() if errors else _first_line(exc)
        raise _step_failed(TORCH_TO_TFJS, "2/3 (onnx2tf)", _ops([op or node]), detail[:400],
                           "Replace the op in the model, or export to tflite (litert-torch route) instead.") from None
    if not (out_dir / "saved_model.pb").is_file():
        raise _step_failed(TORCH_TO_TFJS, "2/3 (onnx2tf)", "", f"no saved_model.pb in {out_dir}",
                           "Run onnx2tf on the model by hand to see why.")
    return out_dir


def torch_to_tf_saved_model(bundle: ModelBundle, scratch_dir: Path, input_layout: str = "NHWC") -> Path:
    """Steps 1-2: the torch model as a TF SavedModel at `scratch_dir/saved_model` (batch 1)."""
    _check_layout(input_layout)
    return onnx_to_tf_saved_model(torch_to_onnx(bundle), scratch_dir / "saved_model", input_layout)


def artifact_layout(bundle: ModelBundle, input_layout: str) -> str:
    """The converted model's input layout: `input_layout` for images, the source's otherwise."""
    return input_layout if len(bundle.input_spec.shape) == 4 else bundle.input_spec.layout


def _in_layout(data: Dataset, layout: str) -> Dataset:
    return data if data.layout == layout else data.in_layout(layout)


def saved_model_bundle(bundle: ModelBundle, saved_model: Path, layout: str) -> ModelBundle:
    """The converted SavedModel as a 'tensorflow' bundle, its data (every split) transposed to `layout`."""
    from pipeline.intake.keras_intake import load_saved_model

    loaded, spec = load_saved_model(saved_model)
    splits = {f.name: _in_layout(value, layout) for f in fields(bundle)
              if isinstance(value := getattr(bundle, f.name), Dataset)}
    return replace(
        bundle, framework="tensorflow", model=loaded, input_spec=TensorSpec(spec.name, spec.shape, spec.dtype, layout),
        source=SourceInfo("tensorflow", "saved_model", str(saved_model), ""), **splits,
    )


def convert_torch_to_tfjs(
    bundle: ModelBundle,
    out_dir: Path,
    quantization: QuantizationConfig,
    shard_size_bytes: int = 4 * 1024 * 1024,
    input_layout: str = "NHWC",
) -> tuple[AppliedStage, ...]:
    """All three steps: write `model.json` + shards into `out_dir`; returns the quantization stage (if any)."""
    tf_to_tfjs.quantization_dtype_map(quantization)  # refuse an impossible mode before converting
    with tempfile.TemporaryDirectory(prefix="onnx-bridge-") as scratch:
        saved = torch_to_tf_saved_model(bundle, Path(scratch), input_layout)
        tf_bundle = saved_model_bundle(bundle, saved, artifact_layout(bundle, input_layout))
        try:
            return tf_to_tfjs.convert_tf_to_tfjs(tf_bundle, out_dir, quantization, shard_size_bytes)
        except ExportError as exc:
            raise ExportError(f"{TORCH_TO_TFJS} step 3/3 (TF.js converter) failed: {exc}") from None


# --- Keras / SavedModel -> torch module (-> ExecuTorch) ------------------------------------------


def saved_model_to_onnx(saved_model: Path, spec: TensorSpec) -> Any:
    """Step 2/5: tf2onnx on the SavedModel's `serving_default` signature (batch 1); ExportError on TF ops ONNX lacks."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    loaded = tf.saved_model.load(str(saved_model))  # keep a reference: the signature needs its variables
    signature = loaded.signatures["serving_default"]
    name = next(iter(signature.structured_input_signature[1]))
    function = tf.function(lambda x: next(iter(signature(**{name: x}).values())))
    try:
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=[tf.TensorSpec([1, *spec.shape[1:]], tf.float32, name=name)], opset=OPSET
        )
    except Exception as exc:
        raise _step_failed(TF_TO_EXECUTORCH, "2/5 (tf2onnx)", "", _first_line(exc),
                           "Simplify the model's TF graph, or export to tflite/tfjs, which take TF ops directly.") from None
    # tf2onnx leaves ops it cannot convert in the graph under their TF names (continue_on_error)
    unconverted = [n.op_type for n in proto.graph.node if not onnx.defs.has(n.op_type, n.domain)]
    if unconverted:
        raise _step_failed(TF_TO_EXECUTORCH, "2/5 (tf2onnx)", _ops(unconverted), "TF op(s) with no ONNX equivalent",
                           "Replace them in the model, or export to tflite/tfjs, which take TF ops directly.")
    return proto


def inline_shape_constants(module: Any) -> Any:
    """Turn small integer buffers that only feed shape arguments into Python lists (for torch.export)."""
    for node in list(module.graph.nodes):
        if node.op != "get_attr":
            continue
        value = getattr(module, node.target)
        if not hasattr(value, "is_floating_point") or value.is_floating_point() or value.numel() > 64 or not all(
            user.op == "call_function" and getattr(user.target, "__name__", "") in _SHAPE_ARG_FUNCTIONS
            for user in node.users
        ):
            continue
        for user in list(node.users):
            user.args = tuple(value.tolist() if arg is node else arg for arg in user.args)
            user.kwargs = {k: value.tolist() if arg is node else arg for k, arg in user.kwargs.items()}
        module.graph.erase_node(node)
        delattr(module, node.target)
    module.graph.lint()
    module.recompile()
    return module


def gemm_to_linear(module: Any) -> Any:
    """Rewrite onnx2fx's Gemm (matmul, scale, add) on a constant weight as F.linear.

    XNNPACK then sees a fully-connected layer, and PT2E quantizes it (dynamic int8 only matches linear).
    """
    import torch

    for node in list(module.graph.nodes):
        if node.op != "call_function" or getattr(node.target, "__name__", "") != "_gemm":
            continue
        a, b, c, alpha, beta, trans_a, trans_b = node.args
        constant = all(getattr(t, "op", "") == "get_attr" for t in (b, *([c] if c is not None else [])))
        if alpha != 1.0 or beta != 1.0 or trans_a or not constant or len(b.users) != 1:
            continue
        if c is not None and getattr(module, c.target).dim() != 1:  # linear's bias is [out]
            continue
        weight = getattr(module, b.target)
        module.register_buffer(b.target, weight if trans_b else weight.t().contiguous())  # linear takes [out, in]
        with module.graph.inserting_before(node):
            linear = module.graph.call_function(torch.nn.functional.linear, (a, b, c))
        node.replace_all_uses_with(linear)
        module.graph.erase_node(node)
    module.recompile()
    return module


def scalar_clamp_bounds(module: Any) -> Any:
    """Turn one-element constant clamp bounds (ONNX Clip's min/max inputs, e.g. ReLU6) into Python floats.

    With tensor bounds torch.export emits aten.clamp.Tensor, which XNNPACK does not take; float bounds
    give aten.clamp.default (or hardtanh), which it does.
    """
    import torch

    folded = set()
    for node in list(module.graph.nodes):
        if node.op != "call_function" or node.target is not torch.clamp:
            continue
        kwargs = dict(node.kwargs)
        for key in ("min", "max"):
            bound = kwargs.get(key)
            if getattr(bound, "op", "") == "get_attr" and getattr(module, bound.target).numel() == 1:
                kwargs[key] = float(getattr(module, bound.target).item())
                folded.add(bound)
        node.kwargs = kwargs
    still_read = {node.target for node in module.graph.nodes if node.op == "get_attr" and node.users}
    for bound in folded:
        if not bound.users:
            module.graph.erase_node(bound)
            if bound.target not in still_read and hasattr(module, bound.target):
                delattr(module, bound.target)
    module.recompile()
    return module


def channels_first_global_mean(module: Any) -> Any:
    """Rewrite transpose(NCHW -> NHWC) + mean over axes [1, 2] as a mean over NCHW's last two axes.

    That is how Keras' GlobalAveragePooling2D arrives through tf2onnx and onnx2fx. XNNPACK only takes a
    4-D mean over the last two axes with keepdim, so the original stays on portable kernels.
    """
    import torch

    for node in list(module.graph.nodes):
        if node.op != "call_function" or getattr(node.target, "__name__", "") != "_reduce_mean":
            continue
        source, axes, keepdims = node.args[0], node.args[1], node.args[2]
        if not (isinstance(axes, (list, tuple)) and sorted(axes) == [1, 2]
                and getattr(source, "target", None) is torch.permute and list(source.args[1]) == [0, 2, 3, 1]):
            continue
        with module.graph.inserting_before(node):
            pooled = module.graph.call_function(torch.mean, (source.args[0], [2, 3]), {"keepdim": True})
            result = (module.graph.call_function(torch.permute, (pooled, [0, 2, 3, 1])) if keepdims
                      else module.graph.call_function(torch.flatten, (pooled, 1)))
        node.replace_all_uses_with(result)
        module.graph.erase_node(node)
        if not source.users:
            module.graph.erase_node(source)
    module.recompile()
    return module


def onnx_to_torch_module(model_proto: Any) -> Any:
    """Step 3/5: onnx2fx turns the ONNX graph into a torch.fx.GraphModule (eval mode, shapes inlined, Gemm as linear)."""
    import onnx2fx

    try:
        module = onnx2fx.convert(model_proto)
    except Exception as exc:  # UnsupportedOpError, ConversionError (both carry op_type)
        raise _step_failed(TF_TO_EXECUTORCH, "3/5 (onnx2fx)", _ops([getattr(exc, "op_type", None)]), _first_line(exc),
                           "Replace the op in the model, register a handler with onnx2fx.register_op, "
                           "or export to tflite/tfjs.") from None
    for rewrite in (inline_shape_constants, gemm_to_linear, scalar_clamp_bounds, channels_first_global_mean):
        module = rewrite(module)
    return module.eval()


def keras_to_torch_module(bundle: ModelBundle, scratch_dir: Path) -> Any:
    """Steps 1-4: a Keras model or SavedModel as a torch.export-able GraphModule (same input layout, batch 1)."""
    try:
        saved = _saved_model_dir(bundle, scratch_dir)
    except Exception as exc:  # Keras raises many types for layers it cannot trace
        raise _step_failed(TF_TO_EXECUTORCH, "1/5 (Keras model.export)", "", _first_line(exc),
                           "Make the model exportable with model.export(format='tf_saved_model').") from None
    module = onnx_to_torch_module(saved_model_to_onnx(saved, bundle.input_spec))
    try:
        torch_to_executorch.export_program(module, torch_to_executorch.example_args(bundle))
    except PipelineError as exc:
        raise ExportError(f"{TF_TO_EXECUTORCH} step 4/5 (torch.export) failed: {exc}") from None
    return module


def convert_keras_to_executorch(
    bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig, delegate: str
) -> tuple[tuple[AppliedStage, ...], dict[str, Any]]:
    """All five steps: write `model_file`; returns the stages applied and the delegation report."""
    if quantization.mode not in torch_to_executorch.SUPPORTED_MODES:
        raise UnsupportedRouteError(
            f"Quantization '{quantization.mode}' is not supported on the ExecuTorch route. "
            f"Options: {', '.join(torch_to_executorch.SUPPORTED_MODES)}."
        )
    with tempfile.TemporaryDirectory(prefix="onnx-bridge-") as scratch:
        module = keras_to_torch_module(bundle, Path(scratch))
    torch_bundle = replace(bundle, framework="torch", model=module)
    try:
        return torch_to_executorch.convert_torch_to_executorch(torch_bundle, model_file, quantization, delegate)
    except ExportError as exc:
        raise ExportError(f"{TF_TO_EXECUTORCH} step 5/5 (ExecuTorch lowering) failed: {exc}") from None
