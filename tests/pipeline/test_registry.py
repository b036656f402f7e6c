import pytest

from pipeline.core.errors import ConfigError, UnknownNameError
from pipeline.core.registry import Registry


def test_unknown_name_lists_options_and_closest_match():
    registry: Registry[int] = Registry("target")
    for name in ("tflite", "tfjs", "executorch"):
        registry.register(name, 1)
    with pytest.raises(UnknownNameError) as excinfo:
        registry.get("tflit")
    assert str(excinfo.value) == "Unknown target 'tflit'. Available: executorch, tfjs, tflite. Did you mean 'tflite'?"


def test_duplicate_registration_is_refused():
    registry: Registry[int] = Registry("stage")
    registry.register("fp16", 1)
    with pytest.raises(ConfigError, match="already registered"):
        registry.register("fp16", 2)


def test_far_names_get_no_suggestion():
    registry: Registry[int] = Registry("runtime")
    registry.register("litert", 1)
    with pytest.raises(UnknownNameError) as excinfo:
        registry.get("zzzz")
    assert "Did you mean" not in str(excinfo.value)
