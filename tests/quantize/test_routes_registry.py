"""Registry-wide: every (mode, route) handler, every technique's tolerance, and every refusal's alternatives."""

import re
from dataclasses import dataclass
from typing import ClassVar

import pytest

import exporters
from exporters import EXPORTERS
from pipeline.cli import main
from pipeline.core.bundle import ModelBundle, SourceInfo, TensorSpec
from pipeline.core.errors import ConfigError, UnknownNameError, UnsupportedRouteError
from quantize import (
    QUANTIZATION_MODES,
    ROUTE_HANDLERS,
    Int8StaticConfig,
    QuantizationConfig,
    RouteHandlers,
    Tolerance,
    handler_for,
    modes_for,
    quantization_config,
    register_technique,
    routes_for,
    technique_modes,
    tolerance_for,
)

PAIRS = ROUTE_HANDLERS.pairs()
REFUSED = [(mode, framework, target) for framework, target in ROUTE_HANDLERS.routes()
           for mode in technique_modes() if mode not in modes_for(framework, target)]


def test_the_exporters_package_registers_every_route():
    assert exporters.modes_for is modes_for  # one registry, whoever asks
    assert len(PAIRS) >= 30 and REFUSED
    assert ROUTE_HANDLERS.routes() == tuple(sorted((fw, target) for target, e in EXPORTERS.items() for fw in e.routes))


@pytest.mark.parametrize("mode,framework,target", PAIRS)
def test_every_registered_pair_has_a_handler_and_round_trips_its_config(mode, framework, target):
    assert callable(handler_for(mode, framework, target))
    assert (framework, target) in routes_for(mode) and mode in modes_for(framework, target)
    config = quantization_config(mode)
    data = config.to_json()
    assert data["mode"] == mode and type(config) is QUANTIZATION_MODES.get(mode)
    assert quantization_config(mode, **{k: v for k, v in data.items() if k != "mode"}) == config


@pytest.mark.parametrize("mode", technique_modes())
def test_every_mode_has_a_tolerance_and_a_route(mode):
    tolerance = tolerance_for(mode)
    assert isinstance(tolerance, Tolerance) and 0 < tolerance.min_top1_agreement <= 1
    assert routes_for(mode), f"no route expresses {mode}"


def test_tolerances_are_the_validated_ones():
    assert tolerance_for("none") == Tolerance(1e-4, 0.99, 0.005)
    assert tolerance_for("int8").max_abs_error == 0.35 and tolerance_for("qat-int8").max_abs_error is None
    with pytest.raises(ConfigError, match="min_top1_agreement must be in"):
        Tolerance(0.1, 1.5, 0.01)


def test_a_mode_cannot_be_registered_without_a_tolerance_or_twice():
    @dataclass(frozen=True)
    class Int4Config(QuantizationConfig):
        mode: ClassVar[str] = "int4"

    with pytest.raises(ConfigError, match="'int4' needs a Tolerance"):
        register_technique(Int4Config, None)
    assert "int4" not in QUANTIZATION_MODES
    with pytest.raises(ConfigError, match="'int8' is already registered"):
        register_technique(Int8StaticConfig, tolerance_for("int8"))


@pytest.mark.parametrize("mode,framework,target", REFUSED)
def test_an_unregistered_pair_is_refused_with_the_alternatives(mode, framework, target):
    with pytest.raises(UnsupportedRouteError) as excinfo:
        handler_for(mode, framework, target)
    message = str(excinfo.value)
    assert f"'{mode}' cannot be expressed for target {target} from a {framework} model" in message
    assert f"Options: {', '.join(modes_for(framework, target))}." in message
    assert f"Routes that express {mode}: {', '.join(f'{f} -> {t}' for f, t in routes_for(mode))}." in message


def test_an_unknown_mode_or_route_names_what_exists():
    with pytest.raises(UnknownNameError, match="Did you mean 'int8'"):
        handler_for("int9", "torch", "tflite")
    with pytest.raises(UnsupportedRouteError, match=r"There is no onnx -> tflite route\. Routes that express int8: .*torch -> tflite"):
        handler_for("int8", "onnx", "tflite")


def test_duplicates_are_refused():
    original = handler_for("int8", "torch", "tflite")
    with pytest.raises(ConfigError, match="'int8' already has a handler on the torch -> tflite route"):
        ROUTE_HANDLERS.register("int8", "torch", "tflite", lambda *args: ())
    assert handler_for("int8", "torch", "tflite") is original


def test_a_fresh_registry_orders_modes_and_quotes_refusals():
    handlers = RouteHandlers()
    handlers.register("int8", "torch", "board", print)
    handlers.register("none", "torch", "board", print)
    handlers.explain_refusal("fp16", "torch", "board", "the board has no float16 kernels")
    assert handlers.modes_for("torch", "board") == ("none", "int8") and handlers.routes_for("int8") == (("torch", "board"),)
    with pytest.raises(UnsupportedRouteError, match=r"from a torch model: the board has no float16 kernels\. Options: none, int8\."):
        handlers.handler_for("fp16", "torch", "board")
    with pytest.raises(UnknownNameError, match="Unknown quantization mode 'int3'"):
        handlers.register("int3", "torch", "board", print)


@pytest.mark.parametrize("target", EXPORTERS.names())
def test_an_exporter_never_falls_back_to_float(target, tmp_path):
    exporter = EXPORTERS.get(target)
    framework = next(iter(exporter.routes))
    mode = next(m for m in technique_modes() if m not in modes_for(framework, target))
    bundle = ModelBundle(framework, object(), TensorSpec("x", (None, 4), layout="NC"), SourceInfo(framework, "test", "m", ""))
    with pytest.raises(UnsupportedRouteError, match=f"'{mode}' cannot be expressed for target {target}"):
        exporter.export(bundle, tmp_path, quantization_config(mode), exporter.config_cls())
    assert not list(tmp_path.iterdir())


def test_pipeline_routes_lists_the_registry(capsys):
    assert main(["routes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = re.split(r"\s{2,}", lines[0])
    assert header[:3] == ["source", "target", "--quantize"]
    listed = {}
    for line in lines[2:]:
        framework, target, modes, _chain = re.split(r"\s{2,}", line, maxsplit=3)
        listed[framework, target] = tuple(modes.split(", "))
    assert listed == {route: modes_for(*route) for route in ROUTE_HANDLERS.routes()}
