"""The floor plan in pyproject.toml covers every module of `pipeline`, so a new module cannot dodge the layers."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layered_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}


def test_every_pipeline_module_sits_in_a_layer():
    modules = {f"pipeline.{p.stem}" for p in (ROOT / "pipeline").glob("*.py") if p.stem != "__init__"}
    modules |= {f"pipeline.{p.name}" for p in (ROOT / "pipeline").iterdir() if (p / "__init__.py").is_file()}
    assert modules - _layered_modules() == set(), "add these modules to a layer in pyproject.toml"


def test_core_is_the_bottom_layer_and_packages_are_all_layered():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    assert layers[-1] == "pipeline.core"
    assert {"demo_app", "exporters", "device_runtime", "quantize"} <= _layered_modules()
