import json

import numpy as np
import pytest

from device_runtime import tfjs_node
from device_runtime.tfjs_node import TFJSNodeRuntime
from pipeline.core.errors import ArtifactError, DataError, RuntimeUnavailableError, UnknownNameError


@pytest.fixture(scope="module")
def float_artifact(keras_model_path, tmp_path_factory):
    from exporters.routes.tf_to_tfjs import convert_tf_to_tfjs
    from pipeline.intake import load_model
    from quantize import quantization_config

    bundle = load_model(str(keras_model_path))
    out = tmp_path_factory.mktemp("tfjs-node") / "artifact"
    convert_tf_to_tfjs(bundle, out, quantization_config("none"))
    return bundle, out / "model.json"


@pytest.mark.parametrize("backend", ["cpu", "wasm"])
def test_runner_is_installed(backend):
    availability = TFJSNodeRuntime().is_available(backend)
    assert availability.ok, availability.reason


def test_cpu_and_wasm_agree_with_each_other_and_the_source(float_artifact):
    bundle, model_json = float_artifact
    runtime = TFJSNodeRuntime()
    x = bundle.eval_data.x[:32]
    cpu = runtime.load(model_json, "cpu")
    wasm = runtime.load(model_json, "wasm", threads=1)
    assert (cpu.delegate, wasm.delegate) == ("cpu", "wasm")
    np.testing.assert_allclose(cpu.run(x), wasm.run(x), atol=1e-5)
    np.testing.assert_allclose(wasm.run(x), bundle.predict(x), atol=1e-4)
    report = wasm.last_report
    assert report["tfjs_version"] == "4.22.0" and [o["shape"] for o in report["outputs"]] == [[32, 10]]
    assert report["batch"] == 1  # exported with batch 1: run sample by sample
    assert report["timings_ms"]["first_inference"] > 0
    assert {"Placeholder", "MaxPool", "Softmax"} <= set(cpu.op_names())
    assert cpu.op_names() == sorted(set(cpu.op_names()))
    wasm.close()


def test_unknown_backend_lists_the_options(float_artifact):
    with pytest.raises(UnknownNameError, match="Unknown TF.js backend 'wsam'. Available: cpu, wasm. Did you mean 'wasm'"):
        TFJSNodeRuntime().load(float_artifact[1], "wsam")


def test_missing_model_json_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match=r"model.json does not exist; export one with `pipeline export"):
        TFJSNodeRuntime().load(tmp_path / "model.json", "cpu")


def test_corrupt_model_json_is_an_artifact_error(float_artifact, tmp_path):
    (tmp_path / "model.json").write_text(float_artifact[1].read_text()[:500])
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        TFJSNodeRuntime().load(tmp_path / "model.json", "cpu")


def test_missing_weight_shard_names_the_file(float_artifact, tmp_path):
    (tmp_path / "model.json").write_text(float_artifact[1].read_text())
    with pytest.raises(ArtifactError, match=r"stage 'load'.*group1-shard1of1.bin"):
        TFJSNodeRuntime().load(tmp_path, "wasm")


def test_truncated_weights_are_an_artifact_error(float_artifact, tmp_path):
    (tmp_path / "model.json").write_text(float_artifact[1].read_text())
    shard = float_artifact[1].parent / "group1-shard1of1.bin"
    (tmp_path / shard.name).write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="stage 'load'"):
        TFJSNodeRuntime().load(tmp_path / "model.json", "cpu")


def test_input_of_the_wrong_shape_is_a_data_error(float_artifact):
    session = TFJSNodeRuntime().load(float_artifact[1], "cpu")
    with pytest.raises(DataError, match=r"samples of shape \[8, 8, 3\] but the model takes \[8, 8, 1\]"):
        session.run(np.zeros((2, 8, 8, 3), np.float32))


def test_availability_explains_a_missing_node(monkeypatch):
    monkeypatch.setattr(tfjs_node.shutil, "which", lambda name: None)
    availability = TFJSNodeRuntime().is_available("cpu")
    assert not availability.ok
    assert "Node.js not found on PATH: install Node.js 20" in availability.reason


def test_availability_explains_a_missing_runner_install(monkeypatch, tmp_path):
    monkeypatch.setattr(tfjs_node, "RUNNER_DIR", tmp_path)
    availability = TFJSNodeRuntime().is_available("wasm")
    assert not availability.ok
    assert "TF.js runner not installed" in availability.reason and "run `make setup`" in availability.reason
    with pytest.raises(RuntimeUnavailableError, match="TF.js runner not installed"):
        TFJSNodeRuntime().load(tmp_path / "model.json", "wasm")


def test_runner_reports_errors_as_json(float_artifact, tmp_path):
    import subprocess

    done = subprocess.run(
        ["node", str(tfjs_node.RUNNER), "--model", str(float_artifact[1].parent), "--backend", "gpu",
         "--feed", str(tmp_path / "feed.json"), "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"error": "unknown backend 'gpu'; available: cpu, wasm", "stage": "args"}
