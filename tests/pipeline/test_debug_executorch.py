"""Per-module debugger of a PyTorch -> ExecuTorch int8 .pte (ETDump of a portable-kernel run) on the digits CNN."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.export import ranking_refusal

SAMPLES = 24


@pytest.fixture(scope="module")
def bundle(model_paths: dict[str, Path]):
    from pipeline.intake import load_model

    return load_model(str(model_paths["torch"]))


@pytest.fixture(scope="module")
def ranked(bundle, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """An int8 .pte of the torch digits CNN and `pipeline debug`'s ranking of it."""
    from pipeline.debug import debug_artifact
    from pipeline.export import export_bundle
    from quantize import quantization_config

    artifact = tmp_path_factory.mktemp("debug-pte") / "int8"
    export_bundle(bundle, "executorch", quantization_config("int8"), artifact, run_validation=False)
    return artifact, debug_artifact(artifact, samples=SAMPLES)


def _output_sqnr_db(bundle, keep_float: tuple[str, ...], samples: int | None = None) -> float:
    """Output SQNR of the rebuilt int8 program (the q/dq module the .pte lowers) on the first `samples` evaluation
    samples (all by default)."""
    import torch

    from exporters.routes.torch_to_executorch import quantized_program
    from quantize import quantization_config

    module, _, _ = quantized_program(bundle, quantization_config("int8", keep_float=keep_float))
    x = torch.from_numpy(bundle.eval_data.x[:samples])
    with torch.no_grad():
        ours = torch.cat([module(x[i:i + 1]) for i in range(len(x))]).double().numpy()
        reference = bundle.model(x).double().numpy()
    return float(10 * np.log10(np.sum(reference ** 2) / np.sum((ours - reference) ** 2)))


def test_ranking_is_sorted_finite_and_names_modules(ranked: tuple[Path, dict], bundle) -> None:
    from exporters.routes.torch_to_executorch import example_args, export_program
    from quantize.pt2e import module_ops

    artifact, result = ranked
    layers = result["layers"]
    assert result["samples"] == SAMPLES and "ETDump" in result["runtime"]
    assert len(layers) == result["matched"] >= 8  # 2 convs, 3 ReLUs, pooling, flatten, 2 linears, softmax
    sqnr = [layer["sqnr_db"] for layer in layers]
    assert sqnr == sorted(sqnr)
    assert all(math.isfinite(v) and 20 < v < 100 for v in sqnr)  # int8: noisy, nowhere near garbage or exact
    assert sum(layer["share"] for layer in layers) == pytest.approx(1.0)
    modules = module_ops(export_program(bundle.model, example_args(bundle)).module(), bundle.model)
    assert {layer["layer"] for layer in layers} <= set(modules)
    assert {layer["op"] for layer in layers} >= {"Conv2d", "Linear", "ReLU"}
    assert result["outputs"] and result["outputs"][0]["sqnr_db"] > 20
    assert json.loads((artifact / "debug.json").read_text()) == json.loads(json.dumps(result))


def test_runtime_outputs_match_the_quantized_program(ranked: tuple[Path, dict], bundle) -> None:
    """The portable-kernel run reproduces the PT2E q/dq program: same output SQNR on the same samples."""
    assert ranked[1]["outputs"][0]["sqnr_db"] == pytest.approx(_output_sqnr_db(bundle, (), SAMPLES), abs=0.5)


def test_keeping_the_worst_module_float_raises_output_sqnr(ranked: tuple[Path, dict], bundle) -> None:
    from pipeline.selective import worst_layers

    kept = worst_layers(ranked[1], 1)  # as --keep-float auto:1 picks them: the culprit, and what its output crosses
    assert _output_sqnr_db(bundle, kept) > _output_sqnr_db(bundle, ()) + 1.0


def test_cli_prints_the_ranking(ranked: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    assert main(["--workspace", str(tmp_path), "debug", str(ranked[0]), "--samples", "2"]) == 0
    printed = capsys.readouterr().out
    assert "module name (nn_module_stack)" in printed and "Linear" in printed


def test_refusals() -> None:
    assert ranking_refusal("executorch", "int8") == ranking_refusal("executorch", "dynamic-int8", "torch") == ""
    assert "not qat-int8" in ranking_refusal("executorch", "qat-int8")
    assert "bridge" in ranking_refusal("executorch", "int8", "keras")
    assert "float artifact" in ranking_refusal("executorch", "none")


def test_a_kept_module_carries_its_output_in_float_only_to_the_next_range_resetting_module() -> None:
    """A transformer block: the dense layer's output crosses dropout to the LayerNorm, and stops there (the residual
    stream would otherwise drag every later block's LayerNorm along)."""
    from pipeline.layer_errors_executorch import carried_to

    feeding = {"l0.dense": set(), "l0.drop": {"l0.dense"}, "l0.ln": {"l0.drop"}, "l1.q": {"l0.ln"},
               "l1.ln": {"l0.ln"}, "l2.ln": {"l1.ln"}}
    kinds = {"l0.dense": "Linear", "l0.drop": "Dropout", "l0.ln": "LayerNorm", "l1.q": "Linear", "l1.ln": "LayerNorm",
             "l2.ln": "LayerNorm"}
    carried = carried_to(feeding, kinds)
    assert carried["l0.dense"] == ["l0.drop", "l0.ln"]
    assert carried["l0.ln"] == ["l1.q", "l1.ln"]
