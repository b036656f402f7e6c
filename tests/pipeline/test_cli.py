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
    assert "Unknown target 'tflit'. Available: executorch, tfjs, tflite. Did you mean 'tflite'?" in result.stderr
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
    assert "--input-shape 1,28,28,1 does not match" in capsys.readouterr().err


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
    assert "samples of shape [28, 28, 1] but input" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["zoo"], ["routes"]])
def test_listing_commands(command, capsys):
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "digits-cnn" in out or "litert_torch.convert" in out
