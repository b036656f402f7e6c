"""Selective PT2E quantization: keep_float leaves named modules of the torch digits CNN float."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.errors import ConfigError, UnsupportedRouteError

KEPT = "6"  # the 512 -> 64 linear layer: 32,768 of the model's 38,282 weights


@pytest.fixture(scope="module")
def bundle(model_paths: dict[str, Path]):
    from pipeline.intake import load_model

    return load_model(str(model_paths["torch"]))


@pytest.fixture(scope="module")
def pte(bundle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """fp32, int8 and int8 with KEPT float .pte exports (the last one validated), by name -> manifest."""
    from pipeline.export import export_bundle
    from quantize import quantization_config

    root = tmp_path_factory.mktemp("keep-float")
    plan = {"fp32": (quantization_config("none"), False), "int8": (quantization_config("int8"), False),
            "kept": (quantization_config("int8", keep_float=[KEPT]), True)}
    return {name: export_bundle(bundle, "executorch", config, root / name, run_validation=validate).manifest
            for name, (config, validate) in plan.items()}


def test_kept_module_stays_float_in_the_pte(pte: dict[str, dict]) -> None:
    sizes = {name: manifest["size_bytes"] for name, manifest in pte.items()}
    assert sizes["int8"] < sizes["kept"] < sizes["fp32"]
    assert sizes["kept"] - sizes["int8"] > 0.9 * 3 * 512 * 64  # its weights take 4 bytes each instead of 1
    assert pte["kept"]["validation"]["passed"] is True
    stage = next(s for s in pte["kept"]["stages"] if s["name"] == "quantize")
    assert list(stage["config"]["keep_float"]) == [KEPT]
    assert any("linear" in op for op in stage["effect"]["kept_float"][KEPT])
    assert "keep_float" not in next(s for s in pte["int8"]["stages"] if s["name"] == "quantize")["config"]


def test_unknown_module_lists_the_closest_names(bundle, tmp_path: Path) -> None:
    from pipeline.export import export_bundle
    from quantize import quantization_config

    with pytest.raises(ConfigError) as error:
        export_bundle(bundle, "executorch", quantization_config("dynamic-int8", keep_float=["features.6"]),
                      tmp_path / "bad", run_validation=False)
    message = str(error.value)
    assert "'features.6' is not a module" in message and "Closest module names: 6, " in message
    assert "pipeline debug" in message and "_guards_fn" not in message
    assert not (tmp_path / "bad").exists()


def test_module_without_quantizable_ops_is_accepted(bundle) -> None:
    from exporters.routes.torch_to_executorch import quantized_program
    from quantize import quantization_config

    module, _, effect = quantized_program(bundle, quantization_config("dynamic-int8", keep_float=["5"]))  # Flatten
    assert effect["kept_float"] == {"5": ["flatten.using_ints"]}
    assert any("quantize" in str(node.target) for node in module.graph.nodes)  # the rest is still quantized


def test_qat_quantizer_leaves_the_kept_module_without_fake_quantization(bundle) -> None:
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    from exporters.routes.torch_to_executorch import example_args, export_program
    from quantize.pt2e import node_modules
    from quantize.qat.torch_qat import xnnpack_qat_quantizer

    program = export_program(bundle.model, example_args(bundle)).module()
    prepared = prepare_qat_pt2e(program, xnnpack_qat_quantizer((KEPT,)))
    linears = {node_modules(n)[-1]: n for n in prepared.graph.nodes if n.target == torch.ops.aten.linear.default}

    def fake_quantized_weight(node) -> bool:
        return node.args[1].op == "call_module"  # the weight passes through a fake-quantize module

    assert not fake_quantized_weight(linears[KEPT]) and fake_quantized_weight(linears["8"])


def test_routes_without_a_per_layer_setting_still_refuse(bundle, tmp_path: Path) -> None:
    from pipeline.export import export_bundle
    from quantize import quantization_config

    with pytest.raises(UnsupportedRouteError, match="torch -> executorch"):  # names a route that can
        export_bundle(bundle, "tflite", quantization_config("int8", keep_float=[KEPT]), tmp_path / "x")
