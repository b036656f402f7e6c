"""The Python API: in-memory Keras and PyTorch models -> export -> Artifact -> run -> bench -> results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import ConfigError, DataError, IntakeError, PipelineError, UnknownNameError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits():
    from pipeline.core.datasets import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def keras_model(digits):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")], name="tiny_digits")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(digits.train.x, digits.train.y, epochs=2, batch_size=64, verbose=0)
    return model


class TinyNet:
    """Built lazily so that importing this test module does not import torch."""

    @staticmethod
    def build():
        import torch

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv = torch.nn.Conv2d(1, 8, 3)
                self.fc = torch.nn.Linear(8 * 6 * 6, 10)

            def forward(self, x):
                return torch.softmax(self.fc(torch.relu(self.conv(x)).flatten(1)), dim=-1)

        return Net


@pytest.fixture(scope="module")
def torch_model(digits):
    import torch

    torch.manual_seed(0)
    model = TinyNet.build()()
    data = digits.train.in_layout("NCHW")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for start in range(0, 640, 64):
        x, y = torch.from_numpy(data.x[start:start + 64]), torch.from_numpy(data.y[start:start + 64]).long()
        optimizer.zero_grad()
        torch.nn.functional.nll_loss(torch.log(model(x) + 1e-9), y).backward()
        optimizer.step()
    return model  # left in training mode on purpose: export must not change that


def test_import_pipeline_loads_no_framework_and_the_api_names_stay_functions():
    probe = ("import sys, time; t = time.perf_counter(); import pipeline; took = time.perf_counter() - t; "
             "heavy = [m for m in ('tensorflow', 'torch', 'keras', 'pandas', 'numpy') if m in sys.modules]; "
             "from pipeline.export import export_bundle; import pipeline.sweep.recipe; import pipeline.zoo; "
             "from pipeline import export, sweep, zoo, bench, results, routes, devices, Artifact; "
             "print(heavy, callable(export) and callable(sweep) and callable(zoo) and callable(bench), "
             "pipeline.export is export, round(took, 3))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd=ROOT).stdout
    heavy, functions, same, took = out.rsplit(" ", 3)
    assert heavy == "[]" and functions == same == "True", out
    assert float(took) < 0.3, out


def test_keras_model_in_memory_exports_runs_benches_and_shows_in_results(keras_model, digits, tmp_path):
    from demo_app.config import Workspace
    from demo_app.data import load_leaderboard
    from pipeline import bench, export, results

    workspace = tmp_path / "workspace"
    artifact = export(keras_model, "tflite", eval_data=(digits.test.x, digits.test.y), workspace=workspace)
    assert artifact.path == workspace / "artifacts" / "tiny_digits-tflite-none"
    assert artifact.model_file.is_file() and (artifact.path / "eval.npz").is_file()
    source = artifact.manifest["source"]
    assert source["format"] == "in-memory" and source["path"] == "<in-memory tiny_digits>" and len(source["sha256"]) == 64
    assert artifact.validation["passed"] is True and artifact.validation["samples"] == len(digits.test)
    assert artifact.size_bytes == artifact.manifest["size_bytes"] > 0
    assert artifact.delegation["delegate"] == "xnnpack"
    expected = np.asarray(keras_model(digits.test.x[:5], training=False))
    np.testing.assert_allclose(artifact.run(digits.test.x[:5]), expected, atol=1e-5)
    assert artifact.run(digits.test.x[0]).shape == (10,)  # one sample without its batch dimension

    measurement = bench(artifact, warmup=1, min_runs=5, min_seconds=0.0, workspace=workspace)
    assert measurement.status == "ok", measurement.error
    assert measurement.delegate_used == "xnnpack" and measurement.result["runs"] >= 5

    table = results(workspace=workspace)
    assert len(table) == 1 and table.loc[0, "target"] == "tflite" and table.loc[0, "p50_ms"] > 0
    app = load_leaderboard(Workspace(workspace))  # the app shows the same rows, plus its own link columns
    assert set(table.columns) <= set(app.columns)
    assert app[list(table.columns)].equals(table)

    again = export(keras_model, "tflite", eval_data=digits.test.x, workspace=workspace)
    assert again.path.name == "tiny_digits-tflite-none-2"  # a fresh directory, the first one is kept
    assert again.manifest["source"]["sha256"] == source["sha256"]  # same model, same hash


def test_torch_module_in_memory_needs_example_inputs_and_exports_with_them(torch_model, digits, tmp_path):
    import torch

    from pipeline import export

    test = digits.test.in_layout("NCHW")
    with pytest.raises(ConfigError, match="example_inputs"):
        export(torch_model, "tflite", eval_data=(test.x, test.y))
    out = str(tmp_path / "net-tflite")  # a str is as good as a Path
    artifact = export(torch_model, "tflite", eval_data={"x": test.x, "y": test.y},
                      example_inputs=torch.from_numpy(test.x[:1]), out=out)
    assert artifact.path == Path(out) and artifact.validation["passed"] is True
    assert artifact.manifest["input_signature"][0]["layout"] == "NCHW"
    assert torch_model.training  # the caller's module was not switched to eval mode
    with torch.no_grad():
        expected = torch_model.eval()(torch.from_numpy(test.x[:4])).numpy()
    torch_model.train()
    np.testing.assert_allclose(artifact.run(test.x[:4]), expected, atol=1e-5)
    with pytest.raises(DataError, match=r"expects \[None, 1, 8, 8\] \(NCHW\)"):
        artifact.run(digits.test.x[:4])  # NHWC samples for an NCHW model


def test_exported_program_needs_no_example_inputs_and_hashes_stably(torch_model, digits):
    import torch

    from pipeline.intake.memory import bundle_from_object

    x = torch.from_numpy(digits.test.in_layout("NCHW").x[:1])
    program = torch.export.export(torch_model.eval(), (x,))
    torch_model.train()
    bundle = bundle_from_object(program)
    assert bundle.framework == "torch" and bundle.input_spec.shape == (1, 1, 8, 8)
    assert bundle.input_spec.layout == "NCHW" and bundle.source.format == "in-memory"
    assert bundle_from_object(program).source.sha256 == bundle.source.sha256
    module = bundle_from_object(torch_model, example_inputs=x)
    assert module.source.sha256 == bundle_from_object(torch_model, example_inputs=(x,)).source.sha256
    assert module.input_spec.shape == (None, 1, 8, 8)


@pytest.mark.parametrize("data, message", [
    (np.zeros((4, 8, 8), np.float32), r"expects \[None, 8, 8, 1\] \(NHWC\)"),
    (np.zeros((4, 8, 8, 1), np.uint8), "dtype uint8"),
    ((np.zeros((4, 8, 8, 1), np.float32), np.zeros(3, np.int64)), "4 integer class ids"),
    ({"inputs": np.zeros((4, 8, 8, 1), np.float32)}, "has arrays inputs but the model's inputs are"),
    ("missing.npz", "does not exist"),
    (object(), "cannot read a object"),
])
def test_bad_data_is_a_data_error_naming_what_was_expected(keras_model, data, message, tmp_path):
    from pipeline import export

    with pytest.raises(DataError, match=message):
        export(keras_model, "tflite", eval_data=data, out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_data_forms_become_datasets_in_the_models_layout(tmp_path):
    from pipeline.core.bundle import TensorSpec
    from pipeline.intake.data import to_dataset

    spec = TensorSpec("input", (None, 1, 8, 8), layout="NCHW")
    x, y = np.random.default_rng(0).random((6, 1, 8, 8)), np.arange(6)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    for data in (x, (x, y), {"x": x, "y": y}, tmp_path / "data.npz", str(tmp_path / "data.npz")):
        dataset = to_dataset(data, spec, "eval_data")
        assert dataset.layout == "NCHW" and dataset.x.dtype == np.float32 and dataset.x.shape == (6, 1, 8, 8)
        assert dataset.y is None if data is x else np.array_equal(dataset.y, y)


def test_errors_are_typed_and_name_the_options(keras_model, digits, tmp_path):
    from pipeline import bench, export

    eval_data = (digits.test.x, digits.test.y)
    with pytest.raises(IntakeError, match="Supported in memory: a keras.Model"):
        export({"not": "a model"}, "tflite", eval_data=eval_data)
    with pytest.raises(ConfigError, match=r"Unknown option\(s\) shard_size for target tfjs .*Valid options: shard_size_bytes"):
        export(keras_model, "tfjs", shard_size=1024, eval_data=eval_data)
    with pytest.raises(ConfigError, match="Valid options: calibration_samples, keep_float, per_channel"):
        export(keras_model, "tflite", "int8", delegate="xnnpack", eval_data=eval_data)
    with pytest.raises(UnknownNameError, match="Did you mean 'tflite'"):
        export(keras_model, "tflit")
    with pytest.raises(DataError, match="eval_data=\\(x, y\\).*validate=False"):
        export(keras_model, "tflite")
    with pytest.raises(DataError, match="calibration=x"):
        export(keras_model, "tflite", "int8", eval_data=eval_data)
    with pytest.raises(DataError, match="train_data=\\(x, y\\)"):
        export(keras_model, "tflite", prune=0.5, eval_data=eval_data)
    with pytest.raises(PipelineError, match="no manifest.json"):
        bench(tmp_path)
    with pytest.raises(ConfigError, match="invalid protocol"):
        bench(tmp_path, min_runs=0)


def test_tables_come_from_the_registries(tmp_path):
    from exporters import EXPORTERS, route_table
    from pipeline import devices, results, routes, zoo

    table = routes()
    assert len(table) == sum(len(e.routes) for _, e in EXPORTERS.items()) == len(route_table())
    assert "int8" in table[(table.source == "torch") & (table.target == "tflite")].iloc[0]["quantize"]
    assert {"digits-cnn", "mobilenet-v2-shapes"} <= set(zoo()["model"])
    profiles = devices(workspace=tmp_path).set_index("profile")
    assert "host" in profiles.index and profiles.loc["rpi4", "anchors"] == {"fp32": 41.0, "int8": 20.0}
    assert profiles.loc["rpi4", "calibration_int8"].startswith("not calibrated")
    assert results(workspace="/nonexistent/workspace").empty


def test_sweep_takes_a_recipe_dict_and_its_rows_reach_results(torch_model, digits, tmp_path):
    import torch

    from pipeline import results, sweep

    with pytest.raises(ConfigError, match=r"targets\[0\]: unknown target 'tflit'"):
        sweep({"models": ["digits-cnn"], "variants": [{"quantize": "none"}], "targets": ["tflit"]})
    test = digits.test.in_layout("NCHW")
    torch.export.save(torch.export.export(torch_model.eval(), (torch.from_numpy(test.x[:1]),)), tmp_path / "tiny.pt2")
    torch_model.train()
    np.savez(tmp_path / "eval.npz", x=test.x, y=test.y)
    recipe = {"name": "api", "models": [{"path": str(tmp_path / "tiny.pt2"), "eval_data": str(tmp_path / "eval.npz")}],
              "variants": [{"name": "fp32"}], "targets": ["tflite"],
              "runtimes": [{"target": "tflite", "runtime": "litert", "delegate": "xnnpack"}],
              "measure": {"warmup_runs": 1, "min_runs": 5, "min_duration_s": 0.0}}
    lines: list[str] = []
    summary = sweep(recipe, workspace=tmp_path / "workspace", workers=1, progress=lines.append)
    assert summary.failures == [] and summary.exports["done"] == 1 and summary.benches["done"] == 1
    assert any("tflite" in line for line in lines)
    table = results(workspace=tmp_path / "workspace")
    assert list(table["model"]) == ["tiny"] and list(table["variant"]) == ["fp32"] and list(table["device"]) == ["host"]


def test_keep_float_auto_picks_the_noisiest_layers_and_holds_accuracy(outlier_paths, tmp_path):
    """keep_float='auto:1' on a model whose plain int8 loses > 1.5 points (outlier channels): validated, and the
    manifest says which layers the ranking picked."""
    from pipeline import export

    artifact = export(outlier_paths["keras"], "tflite", quantize="int8", keep_float="auto:1", out=tmp_path / "kept",
                      workspace=tmp_path)
    chosen = artifact.manifest["selective_quantization"]
    assert chosen["requested"] == "auto:1" and len(chosen["layers"]) >= 2  # the culprit and the layer reading it
    assert artifact.manifest["validation"]["passed"]
    assert artifact.validation["source_accuracy"] - artifact.validation["artifact_accuracy"] < 0.01
    kept = next(s for s in artifact.manifest["stages"] if s["name"] == "quantize")["config"]["keep_float"]
    assert list(kept) == chosen["layers"]
    with pytest.raises(ConfigError, match="keep_float applies to int8"):
        export(outlier_paths["keras"], "tflite", quantize="fp16", keep_float="auto:1", workspace=tmp_path)
