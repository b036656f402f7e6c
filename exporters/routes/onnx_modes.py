"""The ONNX target's quantization modes, one registered handler per (mode, source framework).

Every handler converts the source (torch.onnx or tf2onnx) and then: float32 as converted; fp16 through a float16
converter (float32 inputs and outputs kept); dynamic int8 through `onnxruntime.quantization.quantize_dynamic`
(int8 weights, activations quantized at run time); static int8 through `quantize_static` (QDQ, per-channel
int8 weights, activation ranges calibrated on the bundle's real samples, integer inputs such as token ids fed as
their integers; activations uint8 on x86 and int8 on Arm, see `int8_types`). Both int8 modes leave the nodes of
`keep_float` layers out (`nodes_to_exclude`). A handler returns the stages it applied.
"""

from __future__ import annotations

import platform
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exporters.base import AppliedStage
from exporters.routes.calibration import calibration_feed, per_sample
from exporters.routes.layer_names import kept_onnx_nodes
from exporters.routes.tf_to_onnx import tf_model_proto
from exporters.routes.torch_to_onnx import torch_model_proto
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import ExportError, UnsupportedRouteError, converter_errors
from pipeline.core.host import int8_features
from quantize import DynamicInt8Config, Int8StaticConfig, QuantizationConfig, explain_refusal, register_handler

TARGET = "onnx"
FRAMEWORKS = ("torch", "keras", "tensorflow")
MODES = ("none", "fp16", "dynamic-int8", "int8")
# ConvInteger, what dynamic quantization makes of a Conv, has no int8-weight kernel in ONNX Runtime's CPU
# provider: dynamic int8 quantizes the matrix products and embedding tables, as PT2E's dynamic mode does
DYNAMIC_OPS = ("MatMul", "Gemm", "Gather", "Attention", "LSTM")
QUANTIZED_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
                 "QLinearMatMul", "QLinearConv")
X86 = ("x86_64", "amd64", "i386", "i686")


@dataclass(frozen=True)
class Int8Types:
    """The element types of static int8 (activations, weights), chosen for the CPU that exports, and why."""

    activations: str  # uint8 | int8
    weights: str
    scheme: str  # U8S8 | S8S8, ONNX Runtime's names
    chosen_for: str
    reason: str


def int8_types(machine: str | None = None) -> Int8Types:
    """U8S8 on x86, S8S8 elsewhere (Arm), as ONNX Runtime's quantization guide recommends for its CPU kernels."""
    host = platform.machine().lower()
    machine = (machine or host).lower()
    if machine in X86:
        here = ""
        if machine == host:
            here = f"; int8 dot product here: {', '.join(int8_features()['int8_dot_product']) or 'none'}"  # type: ignore[arg-type]
        return Int8Types("uint8", "int8", "U8S8", machine, (
            f"x86 multiplies uint8 by int8 (VNNI vpdpbusd, AVX2 vpmaddubsw{here}), so ONNX Runtime's x86 kernels "
            "take uint8 activations and int8 ones pay a conversion (measured on an x86 host with VNNI, 1 thread: "
            "S8S8 took 1.7x U8S8's latency on the zoo MobileNet and 1.5x on MobileNetV2 1.0 224, slower than fp32 "
            "on both)"))
    return Int8Types("int8", "int8", "S8S8", machine, (
        "Arm's int8 dot product (sdot, i8mm smmla) multiplies int8 by int8, and ONNX Runtime recommends S8S8 "
        "(its QDQ default) there"))


def source_proto(bundle: ModelBundle) -> Any:
    """The source model as an ONNX ModelProto (its route's converter), without what only debugging reads: the
    converters' intermediate shapes (stale after quantization) and per-node metadata (torch.onnx's stack traces,
    a sixth of a small model's file)."""
    proto = torch_model_proto(bundle) if bundle.framework == "torch" else tf_model_proto(bundle)
    del proto.graph.value_info[:]
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    return proto


def float16_converter() -> tuple[Callable[..., Any], str]:
    """(convert_float_to_float16, its tool name): onnxconverter-common's, else ONNX Runtime's copy of it; raises
    UnsupportedRouteError when neither is installed."""
    try:
        from onnxconverter_common.float16 import convert_float_to_float16

        return convert_float_to_float16, "onnxconverter_common.float16.convert_float_to_float16 (keep_io_types)"
    except ImportError:
        pass
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        return convert_float_to_float16, "onnxruntime.transformers.float16.convert_float_to_float16 (keep_io_types)"
    except ImportError:
        raise UnsupportedRouteError("fp16 on the onnx target needs a float16 converter, and neither onnxconverter-common "
                                    "nor onnxruntime.transformers is installed: pip install onnxconverter-common, or "
                                    "choose --quantize none, dynamic-int8 or int8.") from None


def op_counts(path: Path) -> dict[str, int]:
    """How many nodes of each quantization op type the saved model holds."""
    import onnx

    counts = Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node)
    return {op: counts[op] for op in QUANTIZED_OPS if counts[op]}


class FeedReader:
    """ONNX Runtime's CalibrationDataReader over batch-1 feeds (input name -> array in the input's dtype)."""

    def __init__(self, samples: list[dict[str, Any]]) -> None:
        self._samples = iter(samples)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._samples, None)


def _quantizer_errors(tool: str) -> Any:
    return converter_errors(lambda exc: ExportError(f"{tool} failed: {str(exc)[:600]}"), tool)


def prepared_source(bundle: ModelBundle, scratch: Path) -> Path:
    """The float model in `scratch`, pre-processed for the quantizer (`quant_pre_process`: shapes inferred afresh by ONNX;
    ONNX Runtime's graph optimizations left to load time, so the file stays standard ONNX); the converters' stale
    intermediate shapes otherwise stop it."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, prepared = scratch / "float.onnx", scratch / "prepared.onnx"
    onnx.save(source_proto(bundle), str(source))
    with _quantizer_errors("onnxruntime.quantization.quant_pre_process"):
        quant_pre_process(source, prepared, skip_optimization=True, skip_symbolic_shape=True)  # shapes are static
    return prepared


def excluded_nodes(source: Path, quantization: QuantizationConfig) -> tuple[list[str], list[str]]:
    """(the node names of `source` that `quantization.keep_float` selects, the names to pass as `nodes_to_exclude`);
    ConfigError for a name that selects no node. `quantize_dynamic` first splits each Gemm into '<name>_MatMul' and
    '<name>_Add' and then matches names, so a kept Gemm is excluded under both names."""
    import onnx

    names = getattr(quantization, "keep_float", ())
    if not names:
        return [], []
    graph = onnx.load(str(source), load_external_data=False).graph
    kept = kept_onnx_nodes(graph, names)
    gemms = {node.name for node in graph.node if node.op_type == "Gemm"}
    return kept, [*kept, *(f"{name}_MatMul" for name in kept if name in gemms)]


def _float(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    import onnx

    onnx.save(source_proto(bundle), str(model_file))
    return ()


def _fp16(bundle: ModelBundle, model_file: Path, quantization: QuantizationConfig) -> tuple[AppliedStage, ...]:
    import onnx

    convert, tool = float16_converter()
    proto = source_proto(bundle)
    with _quantizer_errors("The float16 converter"):
        onnx.save(convert(proto, keep_io_types=True), str(model_file))
    return (AppliedStage("quantize", quantization.to_json(), tool),)


def _dynamic_int8(bundle: ModelBundle, model_file: Path, quantization: DynamicInt8Config) -> tuple[AppliedStage, ...]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="onnx-") as scratch:
        source = prepared_source(bundle, Path(scratch))
        kept, excluded = excluded_nodes(source, quantization)
        with _quantizer_errors("onnxruntime.quantization.quantize_dynamic"):
            quantize_dynamic(source, model_file, weight_type=QuantType.QInt8, op_types_to_quantize=list(DYNAMIC_OPS),
                             nodes_to_exclude=excluded)
    effect = {"ops": op_counts(model_file), "op_types_quantized": list(DYNAMIC_OPS),
              **({"kept_float_nodes": kept} if kept else {})}
    return (AppliedStage("quantize", quantization.to_json(), "onnxruntime.quantization.quantize_dynamic (int8 weights)",
                         effect),)


def _int8(bundle: ModelBundle, model_file: Path, quantization: Int8StaticConfig) -> tuple[AppliedStage, ...]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    types = int8_types()
    quant_type = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    samples = per_sample(calibration_feed(bundle, quantization.calibration_samples))
    with tempfile.TemporaryDirectory(prefix="onnx-") as scratch:
        source = prepared_source(bundle, Path(scratch))
        kept, excluded = excluded_nodes(source, quantization)
        with _quantizer_errors("onnxruntime.quantization.quantize_static"):
            quantize_static(source, model_file, FeedReader(samples), quant_format=QuantFormat.QDQ,
                            per_channel=quantization.per_channel, activation_type=quant_type[types.activations],
                            weight_type=quant_type[types.weights], calibrate_method=CalibrationMethod.MinMax,
                            nodes_to_exclude=excluded)
    granularity = "per-channel" if quantization.per_channel else "per-tensor"
    effect = {"ops": op_counts(model_file), "calibration_samples_used": len(samples), "format": "QDQ",
              "activations": types.activations, "weights": f"{types.weights} {granularity}",
              **({"kept_float_nodes": kept} if kept else {})}
    return (AppliedStage("quantize", {**quantization.to_json(), "int8_types": asdict(types)},
                         f"onnxruntime.quantization.quantize_static (QDQ, MinMax, {types.scheme})", effect),)


for _framework in FRAMEWORKS:
    for _mode, _handler in zip(MODES, (_float, _fp16, _dynamic_int8, _int8), strict=True):
        register_handler(_mode, _framework, TARGET, _handler, keep_float=_mode in ("dynamic-int8", "int8"))
    explain_refusal("qat-int8", _framework, TARGET, "QAT needs a training loop in the source framework, and ONNX "
                    "Runtime's quantizer is post-training; choose int8 (static, calibrated)")
    explain_refusal("weight-int8", _framework, TARGET, "ONNX Runtime has no weight-only int8 mode on CPU; choose "
                    "dynamic-int8 (int8 weights, activations quantized at run time)")
    for _mode in ("uint8", "uint16"):
        explain_refusal(_mode, _framework, TARGET, "uint8/uint16 are TF.js weight formats; ONNX's 8-bit modes are "
                        "dynamic-int8 and int8")
