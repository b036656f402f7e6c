"""PyTorch routes with several named inputs (token ids and a mask, int64) and several outputs.

Each artifact is loaded in its own runtime's API directly (LiteRT interpreter, executorch.runtime, TF.js in Node)
and compared with the PyTorch model on real samples.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from exporters.executorch import ExecuTorchConfig, ExecuTorchExporter
from exporters.routes import torch_to_executorch
from exporters.routes.calibration import calibration_feed, example_feed, per_sample
from exporters.routes.onnx_rewrites import reduce_l2_as_sum_of_squares
from exporters.tfjs import TFJSConfig, TFJSExporter
from exporters.tflite import TFLiteConfig, TFLiteExporter
from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
from pipeline.core.datasets import Dataset
from pipeline.core.errors import DataError, UnsupportedRouteError
from pipeline.intake.memory import bundle_from_object
from quantize import quantization_config

LENGTH = 16
CALIBRATION = 32
NODE_MODULES = Path(__file__).resolve().parents[2] / "device_runtime" / "tfjs_node" / "node_modules"


def token_data(count, seed):
    """Token ids (1..99, 0 after each sequence's end) and the matching attention mask, both int64."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, LENGTH + 1, count)
    mask = (np.arange(LENGTH)[None] < lengths[:, None]).astype(np.int64)
    return rng.integers(1, 100, (count, LENGTH)).astype(np.int64) * mask, mask


def text_encoder(two_outputs):
    """Token + position embeddings -> Linear/GELU/Linear -> masked mean -> L2-normalized [B, 32] (+ a [B, 4] head)."""
    import torch
    import torch.nn.functional as F

    class TextEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = torch.nn.Embedding(100, 32)
            self.positions = torch.nn.Embedding(LENGTH + 1, 32)  # position 0 kept for padding, as RoBERTa does
            self.up, self.down = torch.nn.Linear(32, 64), torch.nn.Linear(64, 32)
            self.head = torch.nn.Linear(32, 4) if two_outputs else None

        def forward(self, input_ids, attention_mask):
            # integer arithmetic on a scalar (arange + 1): a quantizer must keep it integer
            h = self.tokens(input_ids) + self.positions(torch.arange(input_ids.shape[1]) + 1)
            h = self.down(F.gelu(self.up(h)))
            weights = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            embedding = F.normalize(pooled, dim=-1)
            return (embedding, self.head(pooled)) if two_outputs else embedding

    torch.manual_seed(0)
    return TextEncoder().eval()


def tiny_bert():
    """A one-layer BERT (the ops of all-MiniLM-L6-v2) returning its mean-pooled, L2-normalized embedding."""
    import torch
    import torch.nn.functional as F
    import transformers

    class BertEmbedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=64)
            self.bert = transformers.BertModel(config)

        def forward(self, input_ids, attention_mask):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(h.dtype)
            return F.normalize((h * weights).sum(1) / weights.sum(1).clamp(min=1.0), dim=-1)

    torch.manual_seed(0)
    return BertEmbedding().eval()


def bundle_for(model):
    """The model as the pipeline sees it (inputs input_0, input_1: int64 [B, 16]) with eval and calibration data."""
    import torch

    ids, mask = token_data(1, seed=0)
    bundle = bundle_from_object(model, example_inputs=(torch.from_numpy(ids), torch.from_numpy(mask)))
    eval_ids, eval_mask = token_data(24, seed=1)
    calibration_ids, calibration_mask = token_data(CALIBRATION, seed=2)
    return bundle.with_data(eval_data=Dataset("t", {"input_0": eval_ids, "input_1": eval_mask}, None, "NC"),
                            calibration_data=Dataset("t", {"input_0": calibration_ids, "input_1": calibration_mask},
                                                     None, "NC"))


def reference(bundle):
    return bundle.predict_outputs(bundle.eval_data)


def run_pte(path, bundle):
    """Every output of a `.pte`, one batch-1 sample at a time, through executorch.runtime."""
    import torch
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(path)).load_method("forward")
    runs = [method.execute([torch.from_numpy(a) for a in sample.values()]) for sample in per_sample(bundle.eval_data.inputs)]
    return [np.concatenate([run[i].numpy() for run in runs]) for i in range(len(runs[0]))]


def run_tflite(path, bundle):
    """Every output of a `.tflite` (dequantized), one sample at a time, through the LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    runs = []
    for sample in per_sample(bundle.eval_data.inputs):
        feed = {f"args_{i}": array.astype(inputs[f"args_{i}"]["dtype"]) for i, array in enumerate(sample.values())}
        result = runner(**feed)
        runs.append([dequantized(result[name], outputs[name]) for name in sorted(result)])
    return [np.concatenate([run[i] for run in runs]) for i in range(len(runs[0]))]


def dequantized(array, detail):
    scale, zero_point = detail["quantization"]
    return (array.astype(np.float32) - zero_point) * scale if array.dtype in (np.int8, np.uint8) else array


def min_cosine(a, b):
    return float(np.min((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)))


def check_outputs(outputs, expected, mode):
    assert [o.shape for o in outputs] == [e.shape for e in expected]
    for got, want in zip(outputs, expected, strict=True):
        if mode == "none":
            np.testing.assert_allclose(got, want, atol=1e-5)
        else:  # static int8 also stores the embedding tables in 8 bits (ExecuTorch), so it may lose a little more
            assert min_cosine(got, want) >= (0.98 if mode == "int8" else 0.99), (mode, min_cosine(got, want))


@pytest.fixture(scope="module")
def encoder_bundle():
    return bundle_for(text_encoder(two_outputs=True))


def export(exporter, config, bundle, mode, out_dir):
    out_dir.mkdir(parents=True)
    options = {"calibration_samples": CALIBRATION} if mode == "int8" else {}
    return exporter.export(bundle, out_dir, quantization_config(mode, **options), config)


@pytest.fixture(scope="module")
def encoder_export(encoder_bundle, tmp_path_factory):
    """The text encoder's artifact for (target, mode): (its folder, the ExportOutput), exported on first use."""
    exporters = {"executorch": (ExecuTorchExporter(), ExecuTorchConfig()), "tflite": (TFLiteExporter(), TFLiteConfig())}
    made = {}

    def get(target, mode):
        if (target, mode) not in made:
            out_dir = tmp_path_factory.mktemp(f"{target}-{mode}") / "out"
            made[target, mode] = (out_dir, export(*exporters[target], encoder_bundle, mode, out_dir))
        return made[target, mode]

    return get


def size_bytes(encoder_export, target, mode):
    out_dir, output = encoder_export(target, mode)
    return (out_dir / output.model_file).stat().st_size


# --- example inputs and calibration feeds -------------------------------------------------------------------------


def test_example_args_are_one_real_sample_per_input(encoder_bundle):
    import torch

    args = torch_to_executorch.example_args(encoder_bundle)
    assert [(a.dtype, tuple(a.shape)) for a in args] == [(torch.int64, (1, LENGTH))] * 2
    np.testing.assert_array_equal(args[0].numpy(), encoder_bundle.eval_data.inputs["input_0"][:1])
    assert all(a.is_contiguous() and 0 not in a.stride() for a in args)


def test_example_without_data_uses_valid_ids_and_true_masks():
    specs = (TensorSpec("input_ids", (None, 8), "int64", "NC"), TensorSpec("keep", (None, 8), "bool", "NC"),
             TensorSpec("scale", (None, 2), "float32", "NC"))
    bundle = ModelBundle("torch", None, specs, SourceInfo("torch", "factory", "tests:m", ""))
    feed = example_feed(bundle, "a route")
    assert {name: (a.dtype.name, a.shape) for name, a in feed.items()} == {
        "input_ids": ("int64", (1, 8)), "keep": ("bool", (1, 8)), "scale": ("float32", (1, 2))}
    assert (feed["input_ids"] == 1).all() and feed["keep"].all() and (feed["scale"] == 0).all()


def test_a_dynamic_dimension_without_data_names_the_input_and_the_fix(tmp_path):
    specs = (TensorSpec("input_ids", (None, None), "int64", "NC"), TensorSpec("attention_mask", (None, None), "int64", "NC"))
    bundle = ModelBundle("torch", text_encoder(False), specs, SourceInfo("torch", "pt2", "encoder.pt2", ""))
    with pytest.raises(UnsupportedRouteError, match=r"input_ids: \[-1,-1\] int64.*--input-spec "
                       r"input_ids:1x128:int64,attention_mask:1x128:int64"):
        torch_to_executorch.convert_torch_to_executorch(bundle, tmp_path / "m.pte", quantization_config("none"), "xnnpack")
    assert not (tmp_path / "m.pte").exists()


def test_data_fixes_a_dynamic_dimension(encoder_bundle, tmp_path):
    dynamic = ModelBundle("torch", text_encoder(False), tuple(TensorSpec(s.name, (None, None), s.dtype, s.layout)
                                                              for s in encoder_bundle.inputs),
                          SourceInfo("torch", "pt2", "encoder.pt2", ""), eval_data=encoder_bundle.eval_data)
    torch_to_executorch.convert_torch_to_executorch(dynamic, tmp_path / "m.pte", quantization_config("none"), "xnnpack")
    np.testing.assert_allclose(run_pte(tmp_path / "m.pte", dynamic)[0], reference(dynamic)[0], atol=1e-5)


def test_calibration_feeds_are_the_real_ids(encoder_bundle):
    feed = calibration_feed(encoder_bundle, 5)
    assert list(feed) == ["input_0", "input_1"] and all(a.dtype == np.int64 and a.shape == (5, LENGTH) for a in feed.values())
    np.testing.assert_array_equal(feed["input_1"], encoder_bundle.calibration_data.inputs["input_1"][:5])
    samples = per_sample(feed)
    assert len(samples) == 5 and samples[2]["input_0"].shape == (1, LENGTH)
    np.testing.assert_array_equal(samples[2]["input_0"][0], feed["input_0"][2])


def test_int8_without_calibration_data_lists_every_input(encoder_bundle):
    from dataclasses import replace

    with pytest.raises(DataError, match=r"one array per input: 'input_0' \[1, 16\] int64, 'input_1' \[1, 16\] int64"):
        calibration_feed(replace(encoder_bundle, calibration_data=None), 10)


# --- ExecuTorch ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["none", "dynamic-int8", "int8"])
def test_executorch_keeps_both_outputs_and_agrees(encoder_bundle, encoder_export, mode):
    out_dir, output = encoder_export("executorch", mode)
    check_outputs(run_pte(out_dir / output.model_file, encoder_bundle), reference(encoder_bundle), mode)
    report = output.delegation
    assert report.delegate == "xnnpack" and 0 < report.ops_delegated < report.ops_total
    assert "aten_embedding_default" in report.ops_not_delegated  # XNNPACK takes no embedding lookup
    if mode != "none":
        assert output.stages[0].tool == torch_to_executorch.PT2E_TOOL


def test_executorch_int8_is_smaller(encoder_export):
    assert size_bytes(encoder_export, "executorch", "int8") < 0.8 * size_bytes(encoder_export, "executorch", "none")


# --- TFLite -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["none", "dynamic-int8", "int8"])
def test_tflite_keeps_both_outputs_and_records_the_int32_inputs(encoder_bundle, encoder_export, mode):
    out_dir, output = encoder_export("tflite", mode)
    check_outputs(run_tflite(out_dir / output.model_file, encoder_bundle), reference(encoder_bundle), mode)
    assert output.notes == {"input_casts": {"input_0": "int64->int32", "input_1": "int64->int32"}}


def test_tflite_int8_is_smaller(encoder_export):
    fp32 = size_bytes(encoder_export, "tflite", "none")
    assert size_bytes(encoder_export, "tflite", "int8") < 0.8 * fp32
    assert size_bytes(encoder_export, "tflite", "dynamic-int8") < 0.8 * fp32


# --- TF.js (torch.onnx -> onnx2tf -> TF.js converter) ---------------------------------------------------------------

_RUN_TFJS = """
const fs = require('fs'), path = require('path');
const tf = require(path.join(process.argv[1], '@tensorflow/tfjs'));
const wasm = require(path.join(process.argv[1], '@tensorflow/tfjs-backend-wasm'));
const [dir, feedFile] = process.argv.slice(2);
(async () => {
  wasm.setWasmPaths(path.join(process.argv[1], '@tensorflow/tfjs-backend-wasm', 'dist') + path.sep);
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not start');
  const model = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const specs = [], shards = [];
  for (const group of model.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) shards.push(fs.readFileSync(path.join(dir, p)));
  }
  const data = Buffer.concat(shards);
  const graph = await tf.loadGraphModel({load: async () => ({modelTopology: model.modelTopology, weightSpecs: specs,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength), format: model.format})});
  const inputs = {};
  for (const [name, v] of Object.entries(JSON.parse(fs.readFileSync(feedFile, 'utf8')))) {
    inputs[name] = tf.tensor(v.data, v.shape, 'int32');
  }
  const names = Object.keys(model.signature.outputs).sort().map((n) => model.signature.outputs[n].name);
  const outputs = [].concat(graph.execute(inputs, names));
  fs.writeSync(1, JSON.stringify(outputs.map((t) => ({shape: t.shape, data: Array.from(t.dataSync())}))) + '\\n');
})().catch((e) => { fs.writeSync(2, String(e.stack || e) + '\\n'); process.exit(1); });
"""


def run_tfjs(model_dir, bundle, tmp_path):
    """Every output of a TF.js graph model on the first eval samples, one at a time, in Node.js (wasm backend, as
    validation runs it)."""
    if shutil.which("node") is None or not (NODE_MODULES / "@tensorflow" / "tfjs-backend-wasm").is_dir():
        pytest.skip("Node.js with @tensorflow/tfjs (make setup) is needed to run a TF.js model")
    signature = json.loads((model_dir / "model.json").read_text())["signature"]
    keys = {key.split(":")[0]: key for key in signature["inputs"]}  # a graph tensor name ends in ':0'
    assert set(keys) == set(bundle.input_names)  # the artifact's inputs carry the model's names
    runs = []
    for sample in per_sample(bundle.eval_data.take(4).inputs):
        feed = {keys[name]: {"data": a.ravel().tolist(), "shape": list(a.shape)} for name, a in sample.items()}
        (tmp_path / "feed.json").write_text(json.dumps(feed))
        done = subprocess.run(["node", "-e", _RUN_TFJS, str(NODE_MODULES), str(model_dir), str(tmp_path / "feed.json")],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append([np.reshape(o["data"], o["shape"]) for o in json.loads(done.stdout.splitlines()[-1])])
    return [np.concatenate([run[i] for run in runs]) for i in range(len(runs[0]))]


def test_tfjs_keeps_both_outputs_and_agrees(encoder_bundle, tmp_path):
    output = export(TFJSExporter(), TFJSConfig(), encoder_bundle, "none", tmp_path / "tfjs")
    outputs = run_tfjs(tmp_path / "tfjs", encoder_bundle, tmp_path)
    check_outputs(outputs, [o[:4] for o in reference(encoder_bundle)], "none")
    assert output.model_file == "model.json"


def test_l2_normalize_reaches_onnx2tf_as_a_sum_of_squares():
    """onnx2tf 1.28 fails on ReduceL2 (F.normalize); the rewrite computes the same values."""
    import onnx.reference
    import torch
    import torch.nn.functional as F

    class Normalize(torch.nn.Module):
        def forward(self, x):
            return F.normalize(x, dim=-1)

    x = np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32)
    proto = torch.onnx.export(Normalize().eval(), (torch.from_numpy(x),), dynamo=True, verbose=False).model_proto
    assert "ReduceL2" in {n.op_type for n in proto.graph.node}
    rewritten = reduce_l2_as_sum_of_squares(proto)
    assert "ReduceL2" not in {n.op_type for n in rewritten.graph.node}
    (result,) = onnx.reference.ReferenceEvaluator(rewritten).run(None, {rewritten.graph.input[0].name: x})
    np.testing.assert_allclose(result, x / np.linalg.norm(x, axis=-1, keepdims=True), atol=1e-6)


# --- a BERT-like encoder (embeddings, layer norm, GELU/erf, softmax, masks) -----------------------------------------


@pytest.fixture(scope="module")
def bert_bundle():
    return bundle_for(tiny_bert())


@pytest.mark.slow
@pytest.mark.parametrize("target,mode", [("executorch", "int8"), ("tflite", "int8"), ("executorch", "none")])
def test_bert_like_encoder_quantizes_and_agrees(bert_bundle, tmp_path, target, mode):
    exporter, config, run = {"executorch": (ExecuTorchExporter(), ExecuTorchConfig(), run_pte),
                             "tflite": (TFLiteExporter(), TFLiteConfig(), run_tflite)}[target]
    output = export(exporter, config, bert_bundle, mode, tmp_path / "out")
    check_outputs(run(tmp_path / "out" / output.model_file, bert_bundle), reference(bert_bundle), mode)


@pytest.mark.slow
def test_bert_like_encoder_reaches_tfjs(bert_bundle, tmp_path):
    """Layer norm reaches TF.js as plain ops (with oneDNN on, TF's grappler would fuse it into _MklLayerNorm)."""
    export(TFJSExporter(), TFJSConfig(), bert_bundle, "none", tmp_path / "tfjs")
    topology = json.loads((tmp_path / "tfjs" / "model.json").read_text())["modelTopology"]
    assert not [n["op"] for n in topology["node"] if n["op"].startswith("_Mkl")]
    check_outputs(run_tfjs(tmp_path / "tfjs", bert_bundle, tmp_path), [o[:4] for o in reference(bert_bundle)], "none")
