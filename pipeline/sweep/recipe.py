"""Sweep recipes: a YAML grid parsed once into validated configs, with every error reported by key path."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from pipeline.core.errors import ConfigError, PipelineError
from pipeline.core.registry import did_you_mean

RECIPE_VERSION = 1
DEFAULT_RECIPE = Path(__file__).with_name("default_recipe.yaml")
# A model entry's keys in YAML: a zoo name (with the frameworks to build) or a file with its data (ModelSpec)
MODEL_KEYS = ("zoo", "framework", "frameworks", "path", "eval_data", "calibration", "train_data", "input_spec",
              "task", "variants", "targets", "devices")
DATA_KEYS = ("eval_data", "calibration", "train_data")


@dataclass(frozen=True)
class ModelSpec:
    """A zoo model or a user's model file with its data; optionally limited to some variants and devices."""

    name: str
    framework: str | None = None
    path: str | None = None
    eval_data: str | None = None
    calibration: str | None = None
    train_data: str | None = None
    input_spec: str | None = None
    task: str | None = None
    variants: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class VariantSpec:
    """An optimization variant: stages applied in order, then quantization; optionally limited to some targets."""

    name: str
    quantize: str = "none"
    prune: str | None = None
    targets: tuple[str, ...] = ()
    per_channel: bool = True  # int8: one scale per output channel (False: per tensor)
    keep_float: tuple[str, ...] = ()  # layers left in float (names from `pipeline debug`)

    def quantize_options(self) -> dict[str, Any]:
        """The options of the variant's quantization config beyond its defaults."""
        return {**({"per_channel": False} if not self.per_channel else {}),
                **({"keep_float": self.keep_float} if self.keep_float else {})}


@dataclass(frozen=True)
class RuntimeSpec:
    """A runtime + delegate to measure artifacts of `target` with; optionally only some variants, on some devices."""

    target: str
    runtime: str
    delegate: str
    threads: int | None = None
    variants: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class MeasureSpec:
    """How every artifact is measured: warm-up runs, at least `min_runs` timed runs and `min_duration_s`, a timeout."""

    warmup_runs: int = 10
    min_runs: int = 100
    min_duration_s: float = 2.0
    timeout_s: float = 600.0


@dataclass(frozen=True)
class Recipe:
    """The validated grid: models x variants x targets, measured on runtimes x devices."""

    name: str
    models: tuple[ModelSpec, ...]
    variants: tuple[VariantSpec, ...]
    targets: tuple[str, ...]
    runtimes: tuple[RuntimeSpec, ...]
    devices: tuple[str, ...]
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    version: int = RECIPE_VERSION


def _keys(spec: type) -> set[str]:
    """The YAML keys of a section: its spec's fields."""
    return {f.name for f in fields(spec)}


class _Errors:
    """Collects every problem with its key path, raised together at the end."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.messages.append(f"{path}: {message}")

    def unknown(self, path: str, kind: str, value: Any, options: list[str]) -> None:
        self.add(path, f"unknown {kind} '{value}' (options: {', '.join(sorted(options))}).{did_you_mean(str(value), options)}")


def _mapping(value: Any, path: str, errors: _Errors) -> dict[str, Any]:
    if not isinstance(value, dict):
        errors.add(path, f"must be a mapping, got {type(value).__name__}")
        return {}
    return value


def _list(data: dict[str, Any], key: str, errors: _Errors, required: bool = True) -> list[Any]:
    value = data.get(key)
    if value is None:
        if required:
            errors.add(key, "is required")
        return []
    if not isinstance(value, list) or (required and not value):
        errors.add(key, "must be a non-empty list")
        return []
    return value


def _check_keys(item: dict[str, Any], allowed: set[str], path: str, errors: _Errors) -> None:
    for key in sorted(set(item) - allowed):
        errors.add(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))}).{did_you_mean(key, sorted(allowed))}")


def _models(raw: list[Any], errors: _Errors) -> list[ModelSpec]:
    from pipeline.zoo import ZOO

    models = []
    for i, item in enumerate(raw):
        path = f"models[{i}]"
        if isinstance(item, str):
            item = {"zoo": item}
        item = _mapping(item, path, errors)
        _check_keys(item, set(MODEL_KEYS), path, errors)
        limits = {key: tuple(str(v) for v in item.get(key) or ()) for key in ("variants", "targets", "devices")}
        if "task" in item:
            from pipeline.validation import TASKS

            if item["task"] not in TASKS:
                errors.unknown(f"{path}.task", "task", item["task"], list(TASKS))
        if "input_spec" in item:
            try:
                from pipeline.core.tensors import parse_input_specs

                parse_input_specs(str(item["input_spec"]))
            except PipelineError as exc:
                errors.add(f"{path}.input_spec", str(exc))
        if "zoo" in item:
            if item["zoo"] not in ZOO:
                errors.unknown(f"{path}.zoo", "zoo model", item["zoo"], ZOO.names())
                continue
            entry = ZOO.get(item["zoo"])
            frameworks = item.get("frameworks") or ([item["framework"]] if "framework" in item else list(entry.builders))
            for framework in frameworks:
                if framework not in entry.builders:
                    errors.unknown(f"{path}.frameworks", f"framework for {item['zoo']}", framework, list(entry.builders))
                else:
                    models.append(ModelSpec(name=item["zoo"], framework=framework, task=item.get("task"), **limits))
        elif "path" in item:
            model_path = Path(item["path"])
            if not model_path.exists() and ":" not in item["path"]:
                errors.add(f"{path}.path", f"model file {model_path} does not exist")
            for key in DATA_KEYS:
                if key in item and not Path(item[key]).is_file():
                    errors.add(f"{path}.{key}", f"data file {item[key]} does not exist")
            models.append(ModelSpec(name=model_path.stem, path=item["path"], task=item.get("task"),
                                    input_spec=item.get("input_spec"), **{k: item.get(k) for k in DATA_KEYS}, **limits))
        else:
            errors.add(path, "needs 'zoo: NAME' or 'path: MODEL_FILE'")
    return models


def _variants(raw: list[Any], targets: list[str], errors: _Errors) -> list[VariantSpec]:
    from exporters import EXPORTERS, target_modes
    from quantize import QUANTIZATION_MODES

    variants = []
    for i, item in enumerate(raw):
        path = f"variants[{i}]"
        item = _mapping(item, path, errors)
        _check_keys(item, _keys(VariantSpec), path, errors)
        mode = item.get("quantize", "none")
        if mode not in QUANTIZATION_MODES:
            errors.unknown(f"{path}.quantize", "quantization mode", mode, QUANTIZATION_MODES.names())
            continue
        limited = tuple(item.get("targets") or ())
        for target in limited:
            if target not in EXPORTERS:
                errors.unknown(f"{path}.targets", "target", target, EXPORTERS.names())
        for target in limited or tuple(t for t in targets if t in EXPORTERS):
            if target in EXPORTERS and mode not in target_modes(target):
                options = ", ".join(target_modes(target))
                errors.add(f"{path}.quantize", f"'{mode}' cannot be expressed for target {target} (options: {options}); "
                           f"limit the variant with 'targets: [...]'")
        if "prune" in item:
            try:
                from quantize.pruning import parse_prune

                parse_prune(str(item["prune"]))
            except PipelineError as exc:  # ConfigError / UnknownNameError from the stage configs
                errors.add(f"{path}.prune", str(exc))
        options = _quantize_options(item, mode, path, errors)
        name = item.get("name") or (mode if "prune" not in item else f"prune{item['prune']}+{mode}")
        variants.append(VariantSpec(name=str(name), quantize=mode, prune=item.get("prune") and str(item["prune"]),
                                    targets=limited, **options))
    names = [v.name for v in variants]
    for name in sorted({n for n in names if names.count(n) > 1}):
        errors.add("variants", f"name '{name}' is used twice; give each variant a distinct name")
    return variants


def _quantize_options(item: dict[str, Any], mode: str, path: str, errors: _Errors) -> dict[str, Any]:
    """A variant's `per_channel` and `keep_float`, checked against its mode's config."""
    from quantize import quantization_config

    options: dict[str, Any] = {}
    if "per_channel" in item:
        if not isinstance(item["per_channel"], bool):
            errors.add(f"{path}.per_channel", f"must be true or false, got {item['per_channel']!r}")
        else:
            options["per_channel"] = item["per_channel"]
    if "keep_float" in item:
        names = item["keep_float"]
        if isinstance(names, str) and names.startswith("auto:"):
            errors.add(f"{path}.keep_float", f"'{names}' picks layers from a debug run; a recipe names them (run "
                       "`pipeline debug` on the int8 artifact, or let `pipeline optimize` pick them)")
            return options
        options["keep_float"] = tuple(str(n) for n in ([names] if isinstance(names, str) else names or ()))
    try:
        quantization_config(mode, **{k: v for k, v in options.items() if v != getattr(VariantSpec, k)})
    except PipelineError as exc:
        errors.add(path, f"quantize {mode}: {exc}")
    return options


def _runtimes(raw: list[Any], errors: _Errors) -> list[RuntimeSpec]:
    from device_runtime import RUNTIMES, runtimes_for
    from exporters import EXPORTERS

    runtimes = []
    for i, item in enumerate(raw):
        path = f"runtimes[{i}]"
        item = _mapping(item, path, errors)
        _check_keys(item, _keys(RuntimeSpec), path, errors)
        target, runtime, delegate = item.get("target"), item.get("runtime"), item.get("delegate")
        if target not in EXPORTERS:
            errors.unknown(f"{path}.target", "target", target, EXPORTERS.names())
            continue
        if runtime not in runtimes_for(target):
            errors.unknown(f"{path}.runtime", f"runtime for {target}", runtime, list(runtimes_for(target)))
            continue
        if delegate not in RUNTIMES.get(runtime).delegates:
            errors.unknown(f"{path}.delegate", f"{runtime} delegate", delegate, list(RUNTIMES.get(runtime).delegates))
            continue
        threads = item.get("threads")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            errors.add(f"{path}.threads", f"must be an integer >= 1, got {threads!r}")
        limits = {key: tuple(str(v) for v in item.get(key) or ()) for key in ("variants", "devices")}
        runtimes.append(RuntimeSpec(target, runtime, delegate, threads, **limits))
    return runtimes


def _measure(raw: Any, errors: _Errors) -> MeasureSpec:
    item = _mapping(raw or {}, "measure", errors)
    allowed = _keys(MeasureSpec)
    _check_keys(item, allowed, "measure", errors)
    values = {key: item[key] for key in allowed & set(item)}
    for key, value in values.items():
        if not isinstance(value, (int, float)) or value < (1 if key == "min_runs" else 0):
            errors.add(f"measure.{key}", f"must be a number >= {1 if key == 'min_runs' else 0}, got {value!r}")
    return MeasureSpec(**values) if not any(m.startswith("measure.") for m in errors.messages) else MeasureSpec()


def parse_recipe(data: Any, name: str = "recipe") -> Recipe:
    """Validate a loaded YAML document; ConfigError lists every problem with its key path."""
    from device_runtime.profiles import PROFILES
    from exporters import EXPORTERS

    errors = _Errors()
    data = _mapping(data, name, errors)
    _check_keys(data, _keys(Recipe), "recipe", errors)
    if data.get("version", RECIPE_VERSION) != RECIPE_VERSION:
        errors.add("version", f"this pipeline reads recipe version {RECIPE_VERSION}, got {data.get('version')!r}")
    targets = [str(t) for t in _list(data, "targets", errors)]
    for i, target in enumerate(targets):
        if target not in EXPORTERS:
            errors.unknown(f"targets[{i}]", "target", target, EXPORTERS.names())
    models = _models(_list(data, "models", errors), errors)
    variants = _variants(_list(data, "variants", errors), targets, errors)
    runtimes = _runtimes(_list(data, "runtimes", errors, required=False), errors)
    devices = [str(d) for d in _list(data, "devices", errors, required=False)] or ["host"]
    for i, device in enumerate(devices):
        if device not in PROFILES:
            errors.unknown(f"devices[{i}]", "device profile", device, PROFILES.names())
    measure = _measure(data.get("measure"), errors)
    variant_names = [v.name for v in variants]
    for model in models:
        _check_limits(f"models[{model.name}]", model, variant_names, targets, devices, errors)
    for i, runtime in enumerate(runtimes):
        _check_limits(f"runtimes[{i}]", runtime, variant_names, targets, devices, errors)
    if errors.messages:
        listed = "\n  ".join(errors.messages)
        raise ConfigError(f"{name} has {len(errors.messages)} problem(s):\n  {listed}")
    return Recipe(name=str(data.get("name", name)), models=tuple(models), variants=tuple(variants),
                  targets=tuple(targets), runtimes=tuple(runtimes), devices=tuple(devices), measure=measure)


def _check_limits(path: str, spec: ModelSpec | RuntimeSpec, variants: list[str], targets: list[str],
                  devices: list[str], errors: _Errors) -> None:
    """A model's or runtime's `variants`/`targets`/`devices` limits name the recipe's own variants, targets, devices."""
    for key, what, known in (("variants", "variant", variants), ("targets", "target (of the recipe's targets)", targets),
                             ("devices", "device (of the recipe's devices)", devices)):
        for value in getattr(spec, key, ()):
            if value not in known:
                errors.unknown(f"{path}.{key}", what, value, known)


def load_recipe(path: Path) -> Recipe:
    """Read and validate a recipe file."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"Recipe {path} does not exist; start from {DEFAULT_RECIPE}.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_recipe(data, str(path))


SCHEMA_ID = "https://edge-model-pipeline.local/recipe.schema.json"


def _json_type(hint: Any) -> dict[str, Any]:
    """The JSON Schema of a spec field's type hint (str, int, float, tuple[str, ...], X | None)."""
    import types

    if isinstance(hint, types.UnionType):
        kinds = [_json_type(arg) for arg in hint.__args__ if arg is not type(None)]
        (kind,) = kinds  # specs use only `X | None`
        return {**kind, "type": [kind["type"], "null"]}
    if getattr(hint, "__origin__", None) is tuple:
        return {"type": "array", "items": _json_type(hint.__args__[0])}
    if hasattr(hint, "__dataclass_fields__"):
        return {"type": "object"}
    return {"type": {str: "string", int: "integer", float: "number", bool: "boolean"}[hint]}


def _spec_schema(spec: type, **overrides: dict[str, Any]) -> dict[str, Any]:
    """An object schema with one property per field of `spec` (type and default), refined by `overrides`."""
    hints = get_type_hints(spec)
    properties = {}
    for f in fields(spec):
        prop = _json_type(hints[f.name]) if f.name not in overrides or "type" not in overrides[f.name] else {}
        if isinstance(f.default, (str, int, float)):
            prop["default"] = f.default
        properties[f.name] = {**prop, **overrides.get(f.name, {})}
    return {"type": "object", "description": (spec.__doc__ or "").strip(), "properties": properties,
            "additionalProperties": False}


def recipe_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a recipe file, built from the spec dataclasses and the registries.

    Editors use it to complete and check recipe files; `parse_recipe` still checks what a schema cannot
    (files exist, a variant's mode on each of its targets) and reports every problem with its key path.
    """
    from device_runtime import RUNTIMES
    from device_runtime.profiles import PROFILES
    from exporters import EXPORTERS
    from pipeline.validation import TASKS
    from pipeline.zoo import ZOO
    from quantize import QUANTIZATION_MODES
    from quantize.pruning.parse import PRUNE_KINDS

    target = {"enum": EXPORTERS.names()}
    frameworks = sorted({fw for _, entry in ZOO.items() for fw in entry.builders})
    zoo_name = {"type": "string", "enum": ZOO.names(), "description": "a reference model (see `pipeline zoo`)"}
    model_file = {
        "type": "object", "description": "A zoo model (trained on demand) or a model file with its data.",
        "properties": {
            "zoo": zoo_name,
            "framework": {"type": "string", "enum": frameworks, "description": "build the zoo model in this framework"},
            "frameworks": {"type": "array", "items": {"enum": frameworks}, "uniqueItems": True,
                           "description": "build the zoo model in these frameworks (default: all)"},
            "path": {"type": "string", "description": ".keras, SavedModel dir, .pt2, or package.module:factory"},
            "eval_data": {"type": "string", "description": ".npz (an array per input name, labels 'y') to validate on"},
            "calibration": {"type": "string", "description": ".npz (an array per input name) for int8 calibration"},
            "train_data": {"type": "string", "description": ".npz (an array per input name, labels 'y') for fine-tuning"},
            "input_spec": {"type": "string", "description": "name:shape:dtype per input, e.g. ids:1x128:int64"},
            "task": {"type": "string", "enum": list(TASKS), "description": "how validation judges the outputs"},
            "variants": {"type": "array", "items": {"type": "string"}, "description": "only these variants"},
            "targets": {"type": "array", "items": target, "description": "only these targets"},
            "devices": {"type": "array", "items": {"enum": PROFILES.names()}, "description": "only these devices"},
        },
        "additionalProperties": False, "anyOf": [{"required": ["zoo"]}, {"required": ["path"]}],
    }
    prune = {"type": ["string", "number"], "pattern": rf"^(({'|'.join(PRUNE_KINDS)}):)?[0-9]*\.?[0-9]+$",
             "description": "prune before quantizing: 0.5 (magnitude sparsity) or channels:0.3 (channel ratio)"}
    variant = _spec_schema(VariantSpec, quantize={"enum": QUANTIZATION_MODES.names()}, prune=prune,
                           targets={"items": target, "uniqueItems": True, "description": "limit to these targets"},
                           per_channel={"description": "int8: one scale per output channel (false: per tensor)"},
                           keep_float={"items": {"type": "string"}, "uniqueItems": True,
                                       "description": "layers left in float (names from `pipeline debug`)"})
    runtime = _spec_schema(RuntimeSpec, target=target, runtime={"enum": RUNTIMES.names()},
                           delegate={"enum": sorted({d for _, r in RUNTIMES.items() for d in r.delegates})},
                           threads={"minimum": 1},
                           variants={"type": "array", "items": {"type": "string"}, "description": "only these variants"},
                           devices={"type": "array", "items": {"enum": PROFILES.names()},
                                    "description": "only on these devices"})
    runtime["required"] = ["target", "runtime", "delegate"]
    runtime["allOf"] = [  # each runtime runs one target, with its own delegates
        {"if": {"properties": {"runtime": {"const": name}}},
         "then": {"properties": {"target": {"const": r.target}, "delegate": {"enum": list(r.delegates)}}}}
        for name, r in RUNTIMES.items()
    ]
    measure = _spec_schema(MeasureSpec, min_runs={"minimum": 1},
                           **{name: {"minimum": 0} for name in _keys(MeasureSpec) - {"min_runs"}})
    schema = _spec_schema(
        Recipe,
        name={"description": "shown in the sweep's output"},
        version={"const": RECIPE_VERSION},
        models={"minItems": 1, "items": {"anyOf": [zoo_name, model_file]}},
        variants={"minItems": 1, "items": variant},
        targets={"minItems": 1, "items": target, "uniqueItems": True},
        runtimes={"items": runtime, "description": "runtime x delegate per target (default: none measured)"},
        devices={"items": {"enum": PROFILES.names()}, "default": ["host"], "description": "device profiles"},
        measure=measure,
    )
    schema["required"] = ["models", "variants", "targets"]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "Edge model pipeline sweep recipe", **schema}
