"""The CLI: exit codes, one-paragraph errors, and nothing half-written on failure."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("export", "train", "zoo", "routes", "demo"):
        assert command in result.stdout


def test_unknown_target_exits_2_without_traceback(tmp_path):
    result = run_cli("export", "model.keras", "--target", "tflit", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Unknown target 'tflit'. Available: executorch, onnx, tfjs, tflite. Did you mean 'tflite'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_quantization_mode(capsys):
    assert main(["export", "model.keras", "--quantize", "int4"]) == 2
    assert "Unknown quantization mode 'int4'. Available: dynamic-int8, fp16, int8, none, qat-int8, uint16, uint8, weight-int8." in capsys.readouterr().err


def test_missing_model_file(tmp_path, capsys):
    assert main(["export", str(tmp_path / "absent.pt2"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_corrupt_model_file(tmp_path, capsys):
    model = tmp_path / "broken.keras"
    model.write_bytes(b"PK\x03\x04 this is not a real archive")
    assert main(["export", str(model), "--out", str(tmp_path / "out")]) == 2
    assert "Could not read Keras model" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.keras"]


def test_wrong_input_shape(keras_model_path, tmp_path, capsys):
    assert main(["export", str(keras_model_path), "--input-shape", "1,28,28,1", "--out", str(tmp_path / "out")]) == 2
    assert "The given shape [1, 28, 28, 1] does not match the model's input image: [-1,8,8,1]" in capsys.readouterr().err


def test_malformed_input_shape(capsys):
    assert main(["export", "pipeline.zoo.digits_cnn:build_torch", "--input-shape", "1xx8"]) == 2
    assert "must be positive integers" in capsys.readouterr().err


def test_int8_without_calibration_data(tmp_path, digits_npz, capsys):
    out = tmp_path / "out"
    code = main([
        "export", "pipeline.zoo.digits_cnn:build_torch", "--input-shape", "1,1,8,8",
        "--eval-data", str(digits_npz["NCHW"]), "--quantize", "int8", "--out", str(out),
    ])
    assert code == 2
    assert "int8 quantization needs calibration data: pass --calibration FILE.npz" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_op_the_converter_cannot_take_is_named(tmp_path, capsys):
    import tensorflow as tf

    class Determinant(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4, 4], tf.float32, name="x")])
        def __call__(self, x):
            return tf.reshape(tf.linalg.det(x), [-1, 1])

    module = Determinant()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.__call__)
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "saved"), "--no-validate", "--out", str(out)]) == 2
    assert "op(s) MatrixDeterminant are not TFLite builtins" in capsys.readouterr().err
    assert not out.exists()


def test_user_model_with_user_data_end_to_end(tmp_path, digits_npz, torch_model_path, capsys):
    """A factory plus a trained state dict (an untrained model's near-uniform outputs flip under int8)."""
    import torch

    weights = tmp_path / "weights.pt"
    torch.save(torch.export.load(str(torch_model_path)).module().state_dict(), weights)
    out = tmp_path / "artifact"
    code = main([
        "export", "pipeline.zoo.digits_cnn:build_torch", "--weights", str(weights), "--input-shape", "1,1,8,8",
        "--eval-data", str(digits_npz["NCHW"]), "--calibration", str(digits_npz["NCHW"]),
        "--calibration-samples", "50", "--quantize", "int8", "--out", str(out), "--json",
    ])
    assert code == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["source"]["format"] == "factory"
    assert manifest["stages"][0]["config"] == {"mode": "int8", "calibration_samples": 50, "per_channel": True}
    assert manifest["validation"]["dataset"] == "digits-NCHW.npz" and manifest["validation"]["passed"]
    assert sorted(p.name for p in out.iterdir()) == ["eval.npz", "manifest.json", "model.tflite"]


def test_eval_data_of_the_wrong_shape(keras_model_path, tmp_path, capsys):
    data = tmp_path / "wrong.npz"
    np.savez(data, x=np.zeros((5, 28, 28, 1), np.float32))
    assert main(["export", str(keras_model_path), "--eval-data", str(data), "--out", str(tmp_path / "out")]) == 2
    assert "samples of shape [28, 28, 1] for input 'image'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["zoo"], ["routes"]])
def test_listing_commands(command, capsys):
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "digits-cnn" in out or "litert_torch.convert" in out


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("pipeline 0.")


def test_building_the_parser_imports_no_registry_or_framework():
    probe = ("import sys; from pipeline.cli import build_parser; build_parser(); "
             "print(' '.join(m for m in ('numpy', 'torch', 'tensorflow', 'exporters', 'device_runtime', 'quantize') "
             "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == ""


def test_help_shows_the_choices_of_the_registries(capsys):
    from device_runtime import RUNTIMES
    from device_runtime.profiles import PROFILES
    from exporters import EXPORTERS
    from quantize.techniques import QUANTIZATION_MODES

    assert main(["export", "--help"]) == 0
    usage = capsys.readouterr().out
    assert "{" + ",".join(EXPORTERS.names()) + "}" in usage
    assert "{" + ",".join(QUANTIZATION_MODES.names()) + "}" in usage and "weight-int8" in usage and "qat-int8" in usage
    assert main(["bench", "--help"]) == 0
    usage = capsys.readouterr().out
    assert "{" + ",".join(RUNTIMES.names()) + "}" in usage and "tfjs-browser" in usage
    assert "{" + ",".join(PROFILES.names()) + "}" in usage
    assert "litert: xnnpack, cpu, gpu" in " ".join(usage.split())  # each runtime's delegates, in the help
    assert main(["bench", "x.tflite", "--runtime", "tfjs-brower"]) == 2
    assert "Unknown runtime 'tfjs-brower'. Available: " in capsys.readouterr().err


def test_benchmark_model_flags_are_aliases_of_the_recipe_names():
    from pipeline.bench import requested_delegate
    from pipeline.cli import build_parser
    from pipeline.core.errors import ConfigError

    args = build_parser().parse_args(["bench", "m.tflite", "--num_threads", "2", "--num_runs", "5", "--warmup_runs",
                                      "1", "--min_secs", "0.5", "--use_xnnpack=false", "--timeout", "9"])
    assert (args.threads, args.min_runs, args.warmup_runs, args.min_duration_s, args.timeout_s) == (2, 5, 1, 0.5, 9.0)
    assert args.use_xnnpack is False and args.input is None
    same = build_parser().parse_args(["bench", "m.tflite", "--warmup-runs", "1", "--min-duration-s", "0.5"])
    assert (same.warmup_runs, same.min_duration_s) == (1, 0.5)
    assert requested_delegate(None, None, True) == "gpu" and requested_delegate(None, True, None) == "xnnpack"
    assert requested_delegate(None, False, None) == "no-xnnpack" and requested_delegate("cpu", None, None) == "cpu"
    with pytest.raises(ConfigError, match="--delegate cpu and --use_gpu ask for different delegates"):
        requested_delegate("cpu", None, True)


def test_one_workspace_option_or_variable_places_everything(tmp_path, monkeypatch, capsys):
    from pipeline.cli import build_parser
    from pipeline.sweep.executors import make_executor

    monkeypatch.setenv("PIPELINE_WORKSPACE", str(tmp_path / "from-env"))
    assert main(["report"]) == 0
    assert (tmp_path / "from-env" / "report" / "report.html").is_file()
    assert (tmp_path / "from-env" / "results.sqlite").is_file()
    capsys.readouterr()
    for argv in (["--workspace", str(tmp_path / "a"), "report"], ["report", "--workspace", str(tmp_path / "a")]):
        assert main(argv) == 0
        assert (tmp_path / "a" / "report" / "report.md").is_file()
    args = build_parser().parse_args(["-q", "sweep", "--workers", "3"])
    assert args.verbosity == "quiet" and args.workers == 3 and args.workspace == str(tmp_path / "from-env")
    assert make_executor("local", workers=3).workers == 3


@pytest.mark.parametrize("command", [["zoo"], ["routes"], ["devices"], ["report"]])
def test_every_listing_command_speaks_json(command, tmp_path, capsys):
    assert main([*command, "--json", "--workspace", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    if command == ["zoo"]:
        assert "digits-cnn" in {m["name"] for m in listed}
    elif command == ["routes"]:
        assert set(listed[0]) == {"source", "target", "quantize", "chain"}
        assert any("weight-int8" in r["quantize"] for r in listed)
    elif command == ["devices"]:
        assert "rpi4" in {p["name"] for p in listed}
    else:
        assert listed["entries"] == [] and listed["files"][0].endswith("report.html")


def test_bench_a_bare_model_file_keeps_it_apart_from_real_data(artifacts, tmp_path, capsys):
    from pipeline.core.files import sha256_file
    from pipeline.report import load_entries
    from pipeline.results import fetch_measurements, open_store

    model = tmp_path / "model.tflite"
    model.write_bytes((artifacts["tflite-fp32"] / "model.tflite").read_bytes())
    code = main(["bench", str(model), str(artifacts["tflite-fp32"]), "--num_runs", "5", "--min_secs", "0",
                 "--warmup_runs", "1", "--workspace", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "synthetic" in out and "inputs: synthetic = seeded random values" in out
    with open_store(tmp_path / "results.sqlite") as connection:
        rows = {row["artifact_dir"]: row for row in fetch_measurements(connection)}
    bare = rows[str(model)]
    assert bare["manifest_sha256"] == sha256_file(model) and bare["accuracy"] is None
    assert json.loads(bare["context_json"])["inputs"] == "synthetic"
    assert json.loads(rows[str(artifacts["tflite-fp32"])]["context_json"])["inputs"] == "eval.npz"
    entries = {e.artifact_dir: e for e in load_entries(tmp_path / "results.sqlite")}
    assert entries[str(model)].kind == "measured, synthetic inputs" and entries[str(model)].accuracy is None
    assert entries[str(artifacts["tflite-fp32"])].kind == "measured" and entries[str(artifacts["tflite-fp32"])].accuracy
    assert list((tmp_path / "logs" / "bench").glob("model.tflite.litert-xnnpack-host.log"))
