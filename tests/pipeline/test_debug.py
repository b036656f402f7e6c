"""Per-layer debugger: int8 and fp16 .tflite of the zoo digits CNN against their float exports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.export import ranking_refusal
from pipeline.layer_errors import GraphTensor, dequantize, short_name, stripped_name


@pytest.fixture(scope="module")
def exported(model_paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The torch digits CNN as fp32, int8 and fp16 .tflite artifacts (each with its eval.npz)."""
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from quantize import quantization_config

    root, bundle = tmp_path_factory.mktemp("debug"), load_model(str(model_paths["torch"]))
    for mode in ("none", "int8", "fp16"):
        export_bundle(bundle, "tflite", quantization_config(mode), root / mode, run_validation=False)
    return {mode: root / mode for mode in ("none", "int8", "fp16")}


@pytest.fixture(scope="module")
def int8_ranking(exported: dict[str, Path]) -> tuple[Path, dict]:
    from pipeline.debug import debug_artifact

    return exported["int8"], debug_artifact(exported["int8"], samples=32)


def test_int8_ranking_is_sorted_finite_and_written(int8_ranking: tuple[Path, dict]) -> None:
    artifact, result = int8_ranking
    layers = result["layers"]
    assert result["samples"] == 32
    assert len(layers) == result["matched"] >= 6  # two convs, pooling, two dense layers, the softmax
    assert {layer["op"] for layer in layers} >= {"CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D"}
    sqnr = [layer["sqnr_db"] for layer in layers]
    assert sqnr == sorted(sqnr)
    assert all(math.isfinite(v) and 10 < v < 100 for v in sqnr)  # int8 layers: noisy, but nowhere near garbage
    assert sum(layer["share"] for layer in layers) == pytest.approx(1.0)
    assert result["outputs"] and result["outputs"][0]["sqnr_db"] > 20
    assert json.loads((artifact / "debug.json").read_text()) == json.loads(json.dumps(result))


def test_fp16_layers_rank_far_better_than_int8(exported: dict[str, Path], int8_ranking: tuple[Path, dict]) -> None:
    from pipeline.debug import debug_artifact

    fp16 = debug_artifact(exported["fp16"], samples=16)
    int8_median = np.median([layer["sqnr_db"] for layer in int8_ranking[1]["layers"]])
    fp16_median = np.median([layer["sqnr_db"] for layer in fp16["layers"]])
    assert fp16["matched"] >= 6
    assert fp16_median > int8_median + 15  # fp16 rounding (~11 bits) against int8 (8 bits)


def test_cli_debug_json_and_refusals(exported: dict[str, Path], int8_ranking: tuple[Path, dict], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    artifact = int8_ranking[0]
    assert main(["--workspace", str(tmp_path), "debug", str(artifact), "--samples", "4", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["samples"] == 4 and printed["layers"]
    assert main(["--workspace", str(tmp_path), "debug", str(exported["none"])]) == 2
    assert "float artifact has no quantization error" in capsys.readouterr().err
    assert main(["--workspace", str(tmp_path), "debug", str(artifact), "--samples", "0"]) == 2
    assert "--samples must be >= 1" in capsys.readouterr().err


def test_export_debug_layers_puts_the_ranking_in_the_manifest(model_paths: dict[str, Path], tmp_path: Path) -> None:
    from pipeline.export import export_bundle
    from pipeline.intake import load_model
    from quantize import quantization_config

    result = export_bundle(load_model(str(model_paths["keras"])), "tflite", quantization_config("int8"),
                           tmp_path / "int8", debug_layers=True)
    ranking = result.manifest["layer_debug"]
    assert ranking["layers"] and ranking["reference"]["quantize"] == "none"
    assert ranking["match_rules"].get("name", 0) >= 5  # the TF converter keeps Keras layer names in both models
    assert json.loads((tmp_path / "int8" / "debug.json").read_text())["layers"] == ranking["layers"]


def test_refusals_name_the_reason() -> None:
    assert "not qat-int8" in ranking_refusal("executorch", "qat-int8")
    assert "float artifact" in ranking_refusal("tflite", "none")
    assert ranking_refusal("tflite", "int8") == ""


def test_names_and_dequantization() -> None:
    keras = "digits_cnn_1/conv2d_1/Relu;digits_cnn_1/conv2d_1/BiasAdd;digits_cnn_1/conv2d_1/convolution"
    torch = ("torch.nn.modules.container.Sequential/torch.nn.modules.activation.ReLU_1;;"
             "torch.nn.modules.container.Sequential/torch.nn.modules.conv.Conv2d_0;1")
    assert short_name(keras) == "conv2d_1"
    assert short_name(torch) == "ReLU_1+Conv2d_0"
    assert stripped_name(torch) == stripped_name(torch.replace(";1", ";2")) != stripped_name(keras)
    per_channel = GraphTensor(0, "w", (2, 3), "int8", "CONV_2D", 0, scales=(0.5, 2.0), zero_points=(1, 0), axis=0)
    values = np.array([[1, 3, -1], [1, 2, 0]], dtype=np.int8)
    np.testing.assert_allclose(dequantize(values, per_channel), [[0.0, 1.0, -1.0], [2.0, 4.0, 0.0]])


def test_layer_error_chart_builds() -> None:
    from demo_app.charts import layer_error_chart

    layers = [{"layer": "conv2d_1", "op": "CONV_2D", "sqnr_db": 30.0, "share": 0.7, "tensor": "t", "match": "name"}]
    spec = layer_error_chart(layers).to_dict()
    assert spec["mark"]["type"] == "bar" and spec["encoding"]["x"]["field"] == "sqnr_db"
