"""ONNX target: export from PyTorch and Keras -> load in ONNX Runtime -> run on real data -> compare with the source."""

import numpy as np
import pytest

from exporters import EXPORTERS, modes_for
from exporters.routes.onnx_modes import int8_types
from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
from pipeline.core.datasets import Dataset
from pipeline.core.errors import UnsupportedRouteError
from pipeline.export import export_bundle
from pipeline.intake import load_model
from pipeline.intake.memory import bundle_from_object
from quantize import quantization_config

LENGTH = 16


@pytest.fixture(scope="module")
def bundles(model_paths):
    return {framework: load_model(str(path)) for framework, path in model_paths.items()}


def ort_session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("mode", ["none", "dynamic-int8", "int8"])
def test_export_validates_in_onnxruntime(bundles, tmp_path, framework, mode):
    bundle = bundles[framework]
    manifest = export_bundle(bundle, "onnx", quantization_config(mode), tmp_path / "onnx").manifest
    assert manifest["validation"]["passed"], manifest["validation"]["failures"]
    assert manifest["validation"]["runtime"] == "onnxruntime" and manifest["validation"]["delegate"] == "cpu"
    assert manifest["notes"]["graph"]["opset"] == 18
    delegation = manifest["delegation"]
    assert delegation["delegate"] == "cpu" and delegation["delegated_share"] == 1.0 and delegation["ops_total"] > 3
    quantized_ops = {"none": set(), "dynamic-int8": {"DynamicQuantizeMatMul"}, "int8": {"QLinearConv", "QGemm"}}[mode]
    assert quantized_ops <= set(delegation["graph_ops"])
    session = ort_session(tmp_path / "onnx" / "model.onnx")
    assert [arg.name for arg in session.get_inputs()] == list(bundle.input_names)
    x = bundle.eval_data.x[:1]
    (out,) = session.run(None, {bundle.input_names[0]: x.astype(np.float32)})
    assert out.shape == (1, 10) and int(out.argmax()) == int(bundle.predict(x).argmax())


def test_int8_types_follow_the_cpu():
    assert int8_types("x86_64").scheme == "U8S8" and int8_types("x86_64").activations == "uint8"
    assert int8_types("aarch64").scheme == "S8S8" and int8_types("arm64").activations == "int8"
    assert "vpdpbusd" in int8_types("x86_64").reason and "sdot" in int8_types("aarch64").reason


def test_int8_records_and_applies_the_hosts_types(bundles, tmp_path):
    import onnx

    manifest = export_bundle(bundles["torch"], "onnx", quantization_config("int8"), tmp_path / "int8").manifest
    assert manifest["validation"]["passed"], manifest["validation"]["failures"]
    chosen = manifest["stages"][0]["config"]["int8_types"]
    expected = int8_types()
    assert chosen["scheme"] == expected.scheme and chosen["reason"] and chosen["weights"] == "int8"
    assert expected.scheme in manifest["stages"][0]["tool"]
    graph = onnx.load(str(tmp_path / "int8" / "model.onnx")).graph
    zero_points = {init.name: init.data_type for init in graph.initializer}
    activation_types = {zero_points[node.input[2]] for node in graph.node
                        if node.op_type == "QuantizeLinear" and node.input[0] in {i.name for i in graph.input}}
    assert activation_types == {onnx.TensorProto.UINT8 if expected.activations == "uint8" else onnx.TensorProto.INT8}


def test_fp16_halves_the_file_and_keeps_float32_io(bundles, tmp_path):
    bundle = bundles["torch"]
    fp32 = export_bundle(bundle, "onnx", quantization_config("none"), tmp_path / "fp32").manifest
    fp16 = export_bundle(bundle, "onnx", quantization_config("fp16"), tmp_path / "fp16").manifest
    assert fp16["validation"]["passed"], fp16["validation"]["failures"]
    assert fp16["size_bytes"] <= 0.6 * fp32["size_bytes"]
    assert "float16" in fp16["stages"][0]["tool"]
    assert ort_session(tmp_path / "fp16" / "model.onnx").get_inputs()[0].type == "tensor(float)"


@pytest.mark.slow
@pytest.mark.parametrize("framework,limit", [("torch", 0.45), ("keras", 0.62)])
def test_mobilenet_int8_is_well_under_float(mobilenet_paths, tmp_path, framework, limit):
    """About 0.44x (torch) and 0.58x (Keras), not 0.25x: 87k weights carry per-channel scales, int32 biases and
    the graph's value names (tf2onnx's are long, and each quantized value repeats them three times)."""
    bundle = load_model(str(mobilenet_paths[framework]))
    fp32 = export_bundle(bundle, "onnx", quantization_config("none"), tmp_path / "fp32").manifest
    int8 = export_bundle(bundle, "onnx", quantization_config("int8"), tmp_path / "int8").manifest
    assert int8["validation"]["passed"], int8["validation"]["failures"]
    assert int8["stages"][0]["effect"]["weights"] == "int8 per-channel"
    assert int8["size_bytes"] / fp32["size_bytes"] <= limit


def text_bundle():
    """A two-input text encoder (int64 token ids and mask [B, 16]) -> L2-normalized [B, 32], with real-style data."""
    import torch
    import torch.nn.functional as F

    class TextEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = torch.nn.Embedding(100, 32)
            self.up, self.down = torch.nn.Linear(32, 64), torch.nn.Linear(64, 32)

        def forward(self, input_ids, attention_mask):
            h = self.down(F.gelu(self.up(self.tokens(input_ids))))
            weights = attention_mask.unsqueeze(-1).to(h.dtype)
            return F.normalize((h * weights).sum(1) / weights.sum(1).clamp(min=1.0), dim=-1)

    def tokens(count, seed):
        rng = np.random.default_rng(seed)
        mask = (np.arange(LENGTH)[None] < rng.integers(4, LENGTH + 1, count)[:, None]).astype(np.int64)
        return {"input_0": rng.integers(1, 100, (count, LENGTH)).astype(np.int64) * mask, "input_1": mask}

    torch.manual_seed(0)
    example = tokens(1, 0)
    bundle = bundle_from_object(TextEncoder().eval(), example_inputs=tuple(torch.from_numpy(a) for a in example.values()))
    return bundle.with_data(eval_data=Dataset("t", tokens(24, 1), None, "NC"),
                            calibration_data=Dataset("t", tokens(32, 2), None, "NC"))


@pytest.mark.parametrize("mode", ["none", "dynamic-int8", "int8"])
def test_two_input_int64_text_encoder(tmp_path, mode):
    bundle = text_bundle()
    manifest = export_bundle(bundle, "onnx", quantization_config(mode), tmp_path / "enc").manifest
    assert manifest["validation"]["passed"], manifest["validation"]["failures"]
    session = ort_session(tmp_path / "enc" / "model.onnx")
    assert [(a.name, a.type) for a in session.get_inputs()] == [("input_0", "tensor(int64)"), ("input_1", "tensor(int64)")]
    assert [a.name for a in session.get_outputs()] == ["output_0"]
    sample = {name: array[:1] for name, array in bundle.eval_data.inputs.items()}
    (embedding,) = session.run(None, sample)
    reference = bundle.predict_outputs(bundle.eval_data.take(1))[0]
    assert float(np.dot(embedding[0], reference[0])) > 0.98


def test_modes_and_refusals_come_from_the_registry(tmp_path):
    assert "onnx" in EXPORTERS.names()
    for framework in ("torch", "keras", "tensorflow"):
        assert modes_for(framework, "onnx") == ("none", "fp16", "dynamic-int8", "int8")
    bundle = ModelBundle("torch", object(), TensorSpec("x", (None, 4), layout="NC"), SourceInfo("torch", "test", "m", ""))
    with pytest.raises(UnsupportedRouteError, match="'qat-int8' cannot be expressed for target onnx.*post-training"):
        export_bundle(bundle, "onnx", quantization_config("qat-int8"), tmp_path / "out", run_validation=False)
    assert not (tmp_path / "out").exists()
