"""The recipe JSON Schema: generated from the recipe's specs and registries, and in step with the parser."""

from __future__ import annotations

import copy
import dataclasses

import jsonschema
import pytest
import yaml

from pipeline.core.errors import ConfigError
from pipeline.sweep.recipe import (
    DEFAULT_RECIPE,
    MODEL_KEYS,
    MeasureSpec,
    Recipe,
    RuntimeSpec,
    VariantSpec,
    parse_recipe,
    recipe_schema,
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = recipe_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def default() -> dict:
    return yaml.safe_load(DEFAULT_RECIPE.read_text())


def test_the_default_recipe_is_valid(validator, default):
    assert list(validator.iter_errors(default)) == []


def test_every_key_the_parser_takes_is_in_the_schema():
    properties = recipe_schema()["properties"]
    assert set(properties) == {f.name for f in dataclasses.fields(Recipe)}
    assert set(properties["models"]["items"]["anyOf"][1]["properties"]) == set(MODEL_KEYS)
    for key, spec in (("variants", VariantSpec), ("runtimes", RuntimeSpec)):
        assert set(properties[key]["items"]["properties"]) == {f.name for f in dataclasses.fields(spec)}
    assert properties["measure"]["properties"]["min_runs"] == {"type": "integer", "default": 100, "minimum": 1}
    assert set(properties["measure"]["properties"]) == {f.name for f in dataclasses.fields(MeasureSpec)}


def _bad(default: dict, change) -> dict:
    recipe = copy.deepcopy(default)
    change(recipe)
    return recipe


BAD = {
    "unknown target": lambda r: r["targets"].append("tflit"),
    "unknown top-level key": lambda r: r.update(colour="red"),
    "unknown variant key": lambda r: r["variants"][0].update(quantise="int8"),
    "unknown quantization mode": lambda r: r["variants"][0].update(quantize="int4"),
    "delegate of another runtime": lambda r: r["runtimes"][0].update(delegate="wasm"),
    "runtime of another target": lambda r: r["runtimes"][0].update(runtime="executorch"),
    "unknown device": lambda r: r["devices"].append("pixel-9"),
    "unknown zoo model": lambda r: r["models"].append({"zoo": "resnet"}),
    "no models": lambda r: r.pop("models"),
    "min_runs below 1": lambda r: r["measure"].update(min_runs=0),
    "threads below 1": lambda r: r["runtimes"][0].update(threads=0),
    "bad prune spelling": lambda r: r["variants"][-1].update(prune="half"),
    "wrong version": lambda r: r.update(version=2),
}


@pytest.mark.parametrize("name", BAD)
def test_a_bad_recipe_fails_the_schema_and_the_parser(validator, default, name):
    recipe = _bad(default, BAD[name])
    assert list(validator.iter_errors(recipe)), f"the schema accepts a recipe with {name}"
    with pytest.raises(ConfigError):
        parse_recipe(recipe)


def test_the_cli_prints_the_schema():
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pipeline", "sweep", "--print-schema"], check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(out) == recipe_schema()
