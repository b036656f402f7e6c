"""PyTorch -> ONNX: torch.onnx.export (dynamo exporter, batch 1), inputs named as the model's, outputs output_0, ...

A failed export is an ExportError naming the route, the step and the op it failed on.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from exporters.routes import torch_to_executorch
from exporters.routes.onnx_common import OPSET, first_line, on_ops, step_failed, strip_colours
from exporters.routes.tf_source import output_keys
from pipeline.core.bundle import ModelBundle
from pipeline.core.errors import PipelineError, converter_errors
from pipeline.core.tensors import as_outputs

TORCH_TO_ONNX = "PyTorch -> ONNX"
ROUTE = f"torch.onnx.export (dynamo, opset {OPSET}, batch 1; input names kept, outputs output_0, ...)"


def torch_model_proto(bundle: ModelBundle) -> Any:
    """The torch model as an in-memory ONNX ModelProto; ExportError naming the op torch.onnx cannot translate."""
    import torch

    # torch.onnx warns once per op it could register for torchvision, which is not installed (and not needed)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)

    def failed(exc: Exception) -> PipelineError:
        ops = re.findall(r"op='([\w.]+)'|target=torch\.ops\.(\w+\.\w+)", strip_colours(str(exc)))
        return step_failed(
            TORCH_TO_ONNX, "1/1 (torch.onnx.export)", on_ops(a or b for a, b in ops),
            re.sub(r"<class '[\w.]+'>: ", "", first_line(exc, r"No ONNX function|Error when translating|Unsupported")),
            "Replace the op in the model, or register a translation with torch.onnx.export(custom_translation_table=...); "
            "if torch.export cannot trace forward(), remove data-dependent Python control flow.",
        )

    args = torch_to_executorch.example_args(bundle, ROUTE)
    with torch.no_grad():
        count = len(as_outputs(bundle.model(*args)))
    with converter_errors(failed, "torch.onnx.export"):
        program = torch.onnx.export(bundle.model, args, dynamo=True, opset_version=OPSET, verbose=False,
                                    input_names=list(bundle.input_names), output_names=output_keys(count))
    return program.model_proto
