"""Models with several named inputs (int64 token ids and masks, float images) and several outputs, converted here
with the real converters and run by every runtime: LiteRT, ExecuTorch, the on-device script and TF.js in Node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device_runtime import RUNTIMES
from device_runtime.device_scripts import edge_bench
from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.harness import resolve_request, run_benchmark
from device_runtime.inputs import synthetic_inputs
from pipeline.core.errors import DataError

QUICK = Protocol(warmup_runs=2, min_runs=10, min_duration_s=0.1)
SEQUENCE = 16


def text_encoder():
    """input_ids, attention_mask (int64, [B, 16]) -> Embedding -> Linear + GELU -> masked mean -> L2-normalized [B, 32]."""
    import torch

    class TextEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(100, 32)
            self.dense = torch.nn.Linear(32, 32)

        def forward(self, input_ids, attention_mask):
            hidden = torch.nn.functional.gelu(self.dense(self.embedding(input_ids)))
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-6)
            return torch.nn.functional.normalize(pooled, dim=-1)

    torch.manual_seed(0)
    return TextEncoder().eval()


def two_heads():
    """x [B, 4] -> (softmax [B, 10], regression [B, 3])."""
    import torch

    class TwoHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.classes = torch.nn.Linear(4, 10)
            self.box = torch.nn.Linear(4, 3)

        def forward(self, x):
            return torch.softmax(self.classes(x), -1), self.box(x)

    torch.manual_seed(1)
    return TwoHeads().eval()


def token_feed(count: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids and masks with padding at the end of each row (int64, as a tokenizer gives them)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 100, size=(count, SEQUENCE), dtype=np.int64)
    lengths = rng.integers(3, SEQUENCE + 1, size=count)
    mask = (np.arange(SEQUENCE)[None] < lengths[:, None]).astype(np.int64)
    return {"input_ids": ids * mask, "attention_mask": mask}


def torch_outputs(model, feed) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        result = model(*(torch.from_numpy(array) for array in feed.values()))
    return [t.numpy() for t in (result if isinstance(result, tuple) else (result,))]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    """Both torch models as .tflite (litert_torch) and .pte (torch.export + XNNPACK), batch 1."""
    import litert_torch
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    root = tmp_path_factory.mktemp("multi-io")
    examples = {"encoder": (text_encoder(), tuple(torch.from_numpy(a[:1]) for a in token_feed(1).values())),
                "heads": (two_heads(), (torch.randn(1, 4),))}
    paths = {}
    for name, (model, args) in examples.items():
        paths[f"{name}.tflite"] = root / f"{name}.tflite"
        litert_torch.convert(model, args).export(str(paths[f"{name}.tflite"]))
        program = to_edge_transform_and_lower(torch.export.export(model, args), partitioner=[XnnpackPartitioner()])
        paths[f"{name}.pte"] = root / f"{name}.pte"
        paths[f"{name}.pte"].write_bytes(program.to_executorch().buffer)
    return paths


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.mark.parametrize("suffix,runtime,dtype", [(".tflite", "litert", "int32"), (".pte", "executorch", "int64")])
def test_text_encoder_matches_torch_in_litert_and_executorch(converted, suffix, runtime, dtype):
    feed = token_feed()
    expected = torch_outputs(text_encoder(), feed)[0]
    session = RUNTIMES.get(runtime).load(converted[f"encoder{suffix}"], "xnnpack", threads=1)
    try:
        outputs = session.run_outputs(feed)
        assert len(outputs) == 1 and outputs[0].shape == (8, 32) and outputs[0].dtype == np.float32
        assert cosine(outputs[0], expected).min() > 0.9999
        np.testing.assert_allclose(outputs[0], expected, atol=1e-5)
        np.testing.assert_array_equal(session.run(list(feed.values())), outputs[0])  # a list is positional
        signature = session.io_signature()
        assert [t["dtype"] for t in signature["inputs"]] == [dtype, dtype]
        assert [t["shape"] for t in signature["inputs"]] == [[1, SEQUENCE]] * 2
        assert signature["outputs"] == [{"name": "output_0" if runtime == "litert" else None, "shape": [1, 32],
                                         "dtype": "float32"}]
    finally:
        session.close()


def test_ids_that_do_not_fit_int32_are_refused_naming_the_input(converted):
    feed = token_feed(2)
    session = RUNTIMES.get("litert").load(converted["encoder.tflite"], "xnnpack")
    try:
        with pytest.raises(DataError, match=r"input 'input_ids' holds values in \[2147483648, .*outside the range of "
                                            r"int32 .*the artifact's inputs are args_0: \[1, 16\] int32"):
            session.run_outputs({**feed, "input_ids": feed["input_ids"] + 2**31})
        with pytest.raises(DataError, match="input 'attention_mask' holds floats but the model takes int32"):
            session.run_outputs({**feed, "attention_mask": feed["attention_mask"].astype(np.float32)})
        with pytest.raises(DataError, match=r"the feed has 1 input\(s\) .* but the model takes 2"):
            session.run_outputs(feed["input_ids"])
    finally:
        session.close()


@pytest.mark.parametrize("suffix,runtime", [(".tflite", "litert"), (".pte", "executorch")])
def test_a_two_output_model_returns_both_outputs(converted, suffix, runtime):
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    expected = torch_outputs(two_heads(), {"x": x})
    session = RUNTIMES.get(runtime).load(converted[f"heads{suffix}"], "xnnpack")
    try:
        outputs = session.run_outputs({"x": x})
        assert [o.shape for o in outputs] == [(5, 10), (5, 3)]
        for output, reference in zip(outputs, expected, strict=True):
            np.testing.assert_allclose(output, reference, atol=1e-5)
        with pytest.raises(DataError, match="has 2 outputs"):
            session.run(x)
        benchmark = session.benchmark(x, np.zeros(5, np.int64), QUICK)
        assert benchmark["accuracy"] is None and benchmark["samples"] == 5  # no accuracy for several outputs
    finally:
        session.close()


def write_artifact(folder: Path, model_files: list[Path], target: str, input_names: list[str], arrays: dict) -> Path:
    """An artifact directory as the export writes it: the model's files (the first is the model), a manifest
    listing the source's inputs and a multi-input eval.npz."""
    folder.mkdir(parents=True)
    for path in model_files:
        (folder / path.name).write_bytes(path.read_bytes())
    np.savez(folder / "eval.npz", **arrays)
    manifest = {"target": target, "model_file": model_files[0].name, "source": {"path": "test"}, "stages": [],
                "size_bytes": sum(path.stat().st_size for path in model_files),
                "files": [{"name": path.name} for path in model_files], "eval_data": {"file": "eval.npz"},
                "input_signature": [{"name": name, "shape": [None, *arrays[name].shape[1:]],
                                     "dtype": arrays[name].dtype.name} for name in input_names]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("suffix,target", [(".tflite", "tflite"), (".pte", "executorch")])
def test_edge_bench_runs_an_artifact_with_a_multi_input_eval_npz(converted, tmp_path, capsys, suffix, target):
    feed = token_feed(6)
    # saved in another order than the model's: the manifest's input_signature orders them
    arrays = {"attention_mask": feed["attention_mask"], "input_ids": feed["input_ids"]}
    artifact = write_artifact(tmp_path / "artifact", [converted[f"encoder{suffix}"]], target, list(feed), arrays)
    out = tmp_path / "result.json"
    common = ["--device-name", "board", "--threads", "1", "--min-runs", "10", "--min-seconds", "0.05", "--out", str(out)]
    assert edge_bench.main([str(artifact), *common]) == 0
    record = json.loads(out.read_text())
    assert record["result"]["samples"] == 6 and record["result"]["runs"] >= 10 and record["result"]["accuracy"] is None
    assert record["delegate_used"] == "xnnpack"
    np.savez(artifact / "eval.npz", input_ids=feed["input_ids"])  # one input missing
    assert edge_bench.main([str(artifact), *common]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]  # ExecuTorch logs too
    assert len(errors) == 1 and errors[0].startswith(f"error: eval.npz does not fit encoder{suffix}: the feed has 1 input(s)")
    program = edge_bench.load_program(artifact / f"encoder{suffix}", 1, "xnnpack")
    try:
        np.testing.assert_allclose(edge_bench.run_batch(program, feed)[0], torch_outputs(text_encoder(), feed)[0],
                                   atol=1e-5)
    finally:
        program.close()


def test_synthetic_inputs_for_integer_inputs_are_integers(converted, tmp_path):
    session = RUNTIMES.get("litert").load(converted["encoder.tflite"], "xnnpack")
    try:
        signatures = session.input_signatures()
        assert [(s.name, s.dtype, s.shape) for s in signatures] == [("args_0", "int32", (1, 16)), ("args_1", "int32", (1, 16))]
        feed = synthetic_inputs(signatures, Path("encoder.tflite"), samples=4)
        assert all(x.dtype == np.int32 and x.shape == (4, 16) and x.min() >= 0 and x.max() < 100 for x in feed.values())
        assert session.run_outputs(feed)[0].shape == (4, 32)
    finally:
        session.close()
    named = [signatures[0].__class__("attention_mask", (1, 16), "int64"), signatures[0].__class__("flags", (1, 2), "bool")]
    masks = synthetic_inputs(named, Path("m.tflite"), samples=3)
    assert masks["attention_mask"].dtype == np.int64 and (masks["attention_mask"] == 1).all() and masks["flags"].all()
    m = run_benchmark(resolve_request(converted["encoder.pte"], None, None, "host", 1, QUICK))
    assert m.status == "ok", m.error
    described = m.result["input_signature"]
    assert [s["dtype"] for s in described] == ["int64", "int64"] and "token ids" in described[0]["synthetic_values"]


def test_the_worker_runs_a_multi_input_artifact_and_a_users_npz(converted, tmp_path):
    feed = token_feed(6)
    artifact = write_artifact(tmp_path / "artifact", [converted["encoder.tflite"]], "tflite", list(feed), feed)
    m = run_benchmark(resolve_request(artifact, None, None, "host", 1, QUICK))
    assert m.status == "ok", m.error
    assert m.result["samples"] == 6 and m.context["inputs"] == "eval.npz"
    np.savez(tmp_path / "users.npz", input_ids=feed["input_ids"], attention_mask=feed["attention_mask"])
    m = run_benchmark(resolve_request(converted["encoder.tflite"], None, None, "host", 1, QUICK, inputs=tmp_path / "users.npz"))
    assert m.status == "ok", m.error
    np.savez(tmp_path / "wrong.npz", input_ids=feed["input_ids"][:, :8], attention_mask=feed["attention_mask"][:, :8])
    m = run_benchmark(resolve_request(converted["encoder.tflite"], None, None, "host", 1, QUICK, inputs=tmp_path / "wrong.npz"))
    assert m.status == "failed" and "wrong.npz has samples of shape [8] for input 'input_ids'" in m.error


SWIFTSHADER = Path("/usr/lib/chromium/vk_swiftshader_icd.json")


@pytest.mark.skipif(not SWIFTSHADER.is_file(), reason="no SwiftShader Vulkan driver (Debian's chromium package)")
def test_the_gpu_program_runs_several_inputs_and_outputs(converted):
    """LiteRT's GPU accelerator on SwiftShader (a software Vulkan device) agrees with the interpreter."""
    script = f"""
import numpy as np
from device_runtime.device_scripts import edge_bench
for name, feed in (("encoder", [np.arange(32).reshape(2, 16) % 100, np.ones((2, 16), np.int64)]),
                   ("heads", np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))):
    path = __import__("pathlib").Path({str(converted["encoder.tflite"].parent)!r}) / (name + ".tflite")
    gpu, cpu = edge_bench.TFLiteGpuProgram(path, 1), edge_bench.TFLiteProgram(path, 1, "xnnpack")
    assert [t.name for t in gpu.outputs] == [t.name for t in cpu.outputs]
    for a, b in zip(edge_bench.run_batch(gpu, feed), edge_bench.run_batch(cpu, feed), strict=True):
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-4), (name, abs(a - b).max())
print("agree")
"""
    env = {**os.environ, "LD_LIBRARY_PATH": str(SWIFTSHADER.parent), "VK_ICD_FILENAMES": str(SWIFTSHADER)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                          cwd=Path(edge_bench.__file__).parents[2])
    if "No adapters found" in done.stderr:
        pytest.skip("the GPU accelerator found no Vulkan adapter")
    assert done.returncode == 0 and "agree" in done.stdout, done.stderr[-2000:]


# ---- TensorFlow: a Keras model with a float image and int64 ids, two outputs, as TFLite and TF.js

@pytest.fixture(scope="module")
def keras_two_by_two(tmp_path_factory):
    """A Keras model (image [B, 8, 8, 1] float32, ids [B, 4] int64) -> (probs [B, 10], box [B, 3]), exported as a
    batch-1 SavedModel and converted to .tflite (TFLiteConverter) and a TF.js graph model (tensorflowjs)."""
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    import keras
    import tensorflow as tf
    from tensorflowjs.converters import convert_tf_saved_model

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    ids = keras.Input((4,), name="ids", dtype="int64")
    features = keras.layers.Concatenate()([keras.layers.Flatten()(image),
                                           keras.layers.Flatten()(keras.layers.Embedding(100, 3)(ids))])
    probs = keras.layers.Dense(10, activation="softmax", name="probs")(features)
    box = keras.layers.Dense(3, name="box")(features)
    model = keras.Model([image, ids], [probs, box])
    root = tmp_path_factory.mktemp("keras-multi-io")
    model.export(str(root / "saved_model"), format="tf_saved_model", verbose=False, input_signature=[[
        tf.TensorSpec([1, 8, 8, 1], tf.float32, name="image"), tf.TensorSpec([1, 4], tf.int64, name="ids")]])
    (root / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(root / "saved_model")).convert())
    convert_tf_saved_model(str(root / "saved_model"), str(root / "tfjs"))
    rng = np.random.default_rng(0)
    feed = {"image": rng.uniform(size=(6, 8, 8, 1)).astype(np.float32), "ids": rng.integers(0, 100, (6, 4))}
    return model, feed, root


def test_keras_tflite_inputs_match_by_name_and_outputs_keep_the_models_order(keras_two_by_two):
    model, feed, root = keras_two_by_two
    expected = [np.asarray(y) for y in model([feed["image"], feed["ids"]])]
    session = RUNTIMES.get("litert").load(root / "model.tflite", "xnnpack")
    try:
        assert [t.name for t in session.program.inputs] == ["ids", "image"]  # the converter sorts them by name
        outputs = session.run_outputs(feed)
        assert [o.shape for o in outputs] == [(6, 10), (6, 3)]
        for output, reference in zip(outputs, expected, strict=True):
            np.testing.assert_allclose(output, reference, atol=1e-5)
        assert [t["name"] for t in session.io_signature()["outputs"]] == ["output_0", "output_1"]
    finally:
        session.close()


@pytest.mark.parametrize("backend", ["cpu", "wasm"])
def test_tfjs_in_node_runs_named_inputs_and_returns_every_output(keras_two_by_two, backend):
    from device_runtime.tfjs_node import TFJSNodeRuntime

    model, feed, root = keras_two_by_two
    expected = [np.asarray(y) for y in model([feed["image"], feed["ids"]])]
    session = TFJSNodeRuntime().load(root / "tfjs", backend, threads=1)
    assert [(s.name, s.dtype) for s in session.input_signatures()] == [("image", "float32"), ("ids", "int32")]
    outputs = session.run_outputs({"ids": feed["ids"], "image": feed["image"]})  # matched by name, any order
    assert [o.shape for o in outputs] == [(6, 10), (6, 3)] and session.delegate_used == backend
    for output, reference in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(output, reference, atol=1e-5)
    with pytest.raises(DataError, match=r"input 'ids' holds values .* outside the range of int32"):
        session.run_outputs({**feed, "ids": feed["ids"] + 2**40})
    with pytest.raises(DataError, match="has 2 outputs"):
        session.run(feed)
    result = session.benchmark(feed, None, QUICK)
    assert result["runs"] >= QUICK.min_runs and result["samples"] == 6 and result["accuracy"] is None


def test_tfjs_synthetic_inputs_and_serve_bench_plan(keras_two_by_two, tmp_path):
    from device_runtime.tfjs_node import TFJSNodeRuntime
    from pipeline.serve_bench import BenchServer, open_artifacts

    _, feed, root = keras_two_by_two
    session = TFJSNodeRuntime().load(root / "tfjs", "wasm")
    synthetic = synthetic_inputs(session.input_signatures(), root / "tfjs", samples=3)
    assert synthetic["ids"].dtype == np.int32 and synthetic["image"].dtype == np.float32
    assert [o.shape for o in session.run_outputs(synthetic)] == [(3, 10), (3, 3)]
    files = [root / "tfjs" / "model.json", *sorted((root / "tfjs").glob("*.bin"))]
    artifact = write_artifact(tmp_path / "served", files, "tfjs", ["image", "ids"], feed)
    server = BenchServer(open_artifacts([artifact]), lambda m: 0, QUICK)
    plan = json.loads(server.plan)["artifacts"][0]
    assert plan["samples"] == 6 and plan["outputs"] == ["output_0", "output_1"]
    assert [(i["name"], i["dtype"], i["shape"]) for i in plan["inputs"]] == [("image", "float32", [6, 8, 8, 1]),
                                                                           ("ids", "int32", [6, 4])]
    body, _ = server.resolve(plan["inputs"][1]["url"])
    np.testing.assert_array_equal(np.frombuffer(body, "<i4").reshape(6, 4), feed["ids"])


@pytest.mark.browser
def test_tfjs_in_chromium_agrees_with_node(keras_two_by_two):
    from device_runtime.tfjs_browser import TFJSBrowserRuntime
    from device_runtime.tfjs_node import TFJSNodeRuntime

    _, feed, root = keras_two_by_two
    node = TFJSNodeRuntime().load(root / "tfjs", "cpu").run_outputs(feed)
    session = TFJSBrowserRuntime().load(root / "tfjs", "wasm", threads=1)
    try:
        outputs = session.run_outputs(feed)
        for output, reference in zip(outputs, node, strict=True):
            np.testing.assert_allclose(output, reference, atol=1e-5)
        result = session.benchmark(feed, None, QUICK)
        assert result["runs"] >= QUICK.min_runs and result["accuracy"] is None
    finally:
        session.close()
