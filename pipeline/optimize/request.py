"""What `pipeline optimize` is asked: the model as a recipe model (zoo or file, with its data) and the targets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError

MODEL_SUFFIX_FRAMEWORKS = {".keras": "keras", ".pt2": "torch"}


def model_spec(model: str, *, framework: str | None = None, eval_data: str | None = None,
               calibration: str | None = None, train_data: str | None = None, input_spec: str | None = None,
               task: str | None = None) -> Any:
    """A zoo model in one framework (default: its only one, else keras), or a model file with its data files.

    Raises ConfigError for a name that is neither, a zoo model without that framework, or a missing file.
    """
    from pipeline.sweep.recipe import ModelSpec
    from pipeline.zoo import ZOO

    if model in ZOO:
        builders = list(ZOO.get(model).builders)
        framework = framework or (builders[0] if len(builders) == 1 else "keras")
        if framework not in builders:
            raise ConfigError(f"Zoo model {model} has no {framework} build. Options: {', '.join(builders)}.")
        return ModelSpec(name=model, framework=framework, task=task)
    path = Path(model)
    found = "tensorflow" if path.is_dir() else MODEL_SUFFIX_FRAMEWORKS.get(path.suffix)
    if found is None and ":" in model and not path.exists():
        found = "torch"
    if found is None:
        raise ConfigError(f"'{model}' is neither a zoo model ({', '.join(sorted(ZOO.names()))}) nor a model file "
                          "this pipeline reads (.keras, SavedModel directory, .pt2, package.module:factory).")
    if not path.exists() and found != "torch":
        raise ConfigError(f"Model file {path} does not exist.")
    data = {"eval_data": eval_data, "calibration": calibration, "train_data": train_data}
    for key, value in data.items():
        if value and not Path(value).is_file():
            raise ConfigError(f"{key.replace('_', '-')} file {value} does not exist.")
    return ModelSpec(name=path.stem or model, framework=found, path=str(model), input_spec=input_spec, task=task,
                     **{k: str(v) if v else None for k, v in data.items()})


def targets_for(framework: str, targets: Sequence[str] | None = None) -> tuple[str, ...]:
    """`targets` checked against the routes from `framework`; default: every target with a route from it."""
    from exporters import EXPORTERS

    reachable = [name for name, exporter in EXPORTERS.items() if framework in exporter.routes]
    if not targets:
        return tuple(reachable)
    chosen = tuple(dict.fromkeys(t.strip() for t in targets if t.strip()))
    for target in chosen:
        EXPORTERS.get(target)  # an unknown name lists the targets
        if target not in reachable:
            raise ConfigError(f"There is no route from {framework} to {target}. Targets for {framework}: "
                              f"{', '.join(reachable)}.")
    return chosen
