"""Keras 3 <-> tf_keras (Keras 2) for TensorFlow Model Optimization, which only works on Keras 2.

A Sequential or functional Keras 3 model of built-in layers is rebuilt in tf_keras from its config
(the few Keras 3-only config keys translated or, when they hold defaults, dropped), its weights are
copied layer by layer (same names, same order), and after pruning the weights go back the same way.
Subclassed models and custom layers have no tf_keras twin and are refused with the reason.
"""

from __future__ import annotations

import inspect
from typing import Any

from pipeline.core.errors import UnsupportedRouteError

# keyword arguments every tf_keras Layer takes through **kwargs
_BASE_KWARGS = {"name", "trainable", "dtype", "input_shape", "batch_input_shape", "batch_size", "weights",
                "activity_regularizer", "autocast", "input_dim", "dynamic"}
_DEFAULTS = (None, False, 0, "", {}, [])


def _refuse(model: Any, why: str) -> UnsupportedRouteError:
    return UnsupportedRouteError(
        f"Keras model '{model.name}' cannot be pruned with TensorFlow Model Optimization: {why}. TFMOT "
        "needs Keras 2 (tf_keras), so the pipeline rebuilds Sequential and functional models of built-in "
        "Keras layers there; rebuild the model from such layers, or prune it in PyTorch."
    )


def _translate(value: Any, key: str = "") -> Any:
    """Keras 3 serialized values -> tf_keras ones (dtype policies to names; initializers unused)."""
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return value["config"]["name"]
        if key.endswith("_initializer"):
            return "zeros"  # weights are copied over, so initial values never matter
        return {k: _translate(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_translate(v) for v in value]
    return value


def _accepted_kwargs(layer_cls: type) -> set[str]:
    accepted = set(_BASE_KWARGS)
    for klass in layer_cls.__mro__:
        if "__init__" in vars(klass):
            accepted |= set(inspect.signature(klass.__init__).parameters)
    return accepted


def _inbound_nodes(nodes: list[dict[str, Any]]) -> list[list[list[Any]]]:
    """Keras 3 call records ({'args': [keras tensors], 'kwargs'}) -> Keras 2 [[layer, node, tensor, kwargs]]."""
    converted = []
    for node in nodes:
        args = node.get("args", [])
        flat = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else args
        kwargs = {k: v for k, v in node.get("kwargs", {}).items() if k != "training"}
        converted.append([[*a["config"]["keras_history"], kwargs] for a in flat])
    return converted


def _layer_config(model: Any, entry: dict[str, Any]) -> dict[str, Any]:
    import tf_keras

    name = entry["class_name"]
    layer_cls = getattr(tf_keras.layers, name, None)
    if layer_cls is None or entry.get("module", "keras.layers") not in ("keras.layers", None):
        raise _refuse(model, f"layer class '{name}' is not a built-in tf_keras layer")
    config = _translate(entry["config"])
    if name == "InputLayer" and "batch_shape" in config:
        config["batch_input_shape"] = config.pop("batch_shape")
    accepted = _accepted_kwargs(layer_cls)
    for key in [k for k in config if k not in accepted]:
        value = config.pop(key)
        if value not in _DEFAULTS:
            raise _refuse(model, f"{name} option {key}={value!r} has no tf_keras equivalent")
    out = {"class_name": name, "config": config, "name": config.get("name")}
    if "inbound_nodes" in entry:
        out["inbound_nodes"] = _inbound_nodes(entry["inbound_nodes"])
    return out


def _nested(refs: list[Any]) -> list[Any]:
    return [refs] if refs and isinstance(refs[0], str) else refs


def to_tf_keras(model: Any) -> Any:
    """A tf_keras copy of a Keras 3 Sequential/functional `model` with the same weights."""
    import keras
    import tf_keras

    if not (isinstance(model, keras.Sequential) or type(model).__name__ == "Functional"):
        raise _refuse(model, f"it is a subclassed model ({type(model).__name__}) without a layer graph")
    config = model.get_config()
    layers = [_layer_config(model, entry) for entry in config["layers"]]
    try:
        if isinstance(model, keras.Sequential):
            twin = tf_keras.Sequential.from_config({"name": config["name"], "layers": layers})
        else:
            twin = tf_keras.Model.from_config({
                "name": config["name"], "layers": layers,
                "input_layers": _nested(config["input_layers"]), "output_layers": _nested(config["output_layers"]),
            })
    except (TypeError, ValueError, KeyError) as exc:
        raise _refuse(model, f"tf_keras could not rebuild it ({exc})") from None
    copy_weights(model, twin)
    return twin


def copy_weights(source: Any, target: Any) -> None:
    """Copy every layer's weights from `source` to the same-named layer of `target`."""
    for layer in source.layers:
        weights = layer.get_weights()
        if weights:
            target.get_layer(layer.name).set_weights(weights)


def import_tfmot() -> Any:
    """TFMOT, imported without switching this process's `tf.keras` to Keras 2."""
    from pipeline.core.keras_compat import import_keeping_keras3

    return import_keeping_keras3("tensorflow_model_optimization",
                                 "tensorflow_model_optimization.python.core.keras.compat")
