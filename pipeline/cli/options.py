"""The CLI's shared options: choices read from the registries on first use, the workspace, verbosity, flags.

Building the parser imports no registry (and so no framework, no numpy): a choice list is read the first time
argparse needs it (to check a value, to print help or usage, or for shell completion).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.core.registry import unknown_name_message

WORKSPACE_ENV = "PIPELINE_WORKSPACE"


class RegistryChoices:
    """A registry's names as argparse `choices` and `type`: loaded lazily, unknown names explained.

    With `check=False` the names are only shown (help, usage, completion) and the value is checked later,
    where the error can be more precise (a delegate depends on the runtime).
    """

    def __init__(self, kind: str, load: Callable[[], list[str]], check: bool = True,
                 describe: Callable[[], str] | None = None) -> None:
        self.kind, self._load, self.check, self.describe = kind, load, check, describe
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = list(self._load())
        return self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, value: object) -> bool:
        return not self.check or value in self.names()

    def __call__(self, value: str) -> str:
        if self.check and value not in self.names():
            raise argparse.ArgumentTypeError(unknown_name_message(self.kind, value, self.names()))
        return value


class HelpFormatter(argparse.HelpFormatter):
    """Adds what lazy choices describe about themselves (read only when help is printed)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if isinstance(action.choices, RegistryChoices) and action.choices.describe is not None:
            return f"{text}; {action.choices.describe()}" if text else action.choices.describe()
        return text


def with_choices(action: argparse.Action, choices: RegistryChoices) -> argparse.Action:
    """Attach lazy choices after `add_argument` (which would otherwise list them while the parser is built)."""
    action.choices = choices
    action.type = choices
    return action


def _targets() -> list[str]:
    from exporters import EXPORTERS

    return EXPORTERS.names()


def _modes() -> list[str]:
    from quantize.techniques import QUANTIZATION_MODES

    return QUANTIZATION_MODES.names()


def _export_delegates() -> list[str]:
    from exporters.executorch import DELEGATES

    return list(DELEGATES)


def _runtimes() -> list[str]:
    from device_runtime import RUNTIMES

    return RUNTIMES.names()


def _delegates() -> list[str]:
    from device_runtime import RUNTIMES

    return sorted({delegate for _, runtime in RUNTIMES.items() for delegate in runtime.delegates})


def _delegates_per_runtime() -> str:
    from device_runtime import RUNTIMES

    return "; ".join(f"{name}: {', '.join(runtime.delegates)}" for name, runtime in RUNTIMES.items())


def _devices() -> list[str]:
    from device_runtime.profiles import PROFILES

    return PROFILES.names()


def _zoo() -> list[str]:
    from pipeline.zoo import ZOO

    return ZOO.names()


def _frameworks() -> list[str]:
    from pipeline.zoo import ZOO

    return sorted({framework for _, entry in ZOO.items() for framework in entry.builders})


def _tasks() -> list[str]:
    from pipeline.validation import TASKS

    return list(TASKS)


def _executors() -> list[str]:
    from pipeline.sweep.executors import EXECUTOR_NAMES

    return list(EXECUTOR_NAMES)


TARGETS = RegistryChoices("target", _targets)
MODES = RegistryChoices("quantization mode", _modes)
EXPORT_DELEGATES = RegistryChoices("ExecuTorch delegate", _export_delegates, check=False)
RUNTIME_NAMES = RegistryChoices("runtime", _runtimes)
DELEGATES = RegistryChoices("delegate", _delegates, check=False, describe=_delegates_per_runtime)  # per runtime
DEVICES = RegistryChoices("device profile", _devices)
CALIBRATABLE = RegistryChoices("device profile", lambda: [*_devices(), "all"])
ZOO_MODELS = RegistryChoices("zoo model", _zoo)
FRAMEWORKS = RegistryChoices("framework", _frameworks)
EXECUTORS = RegistryChoices("executor", _executors)
TASKS = RegistryChoices("task", _tasks)


def default_workspace() -> str:
    return os.environ.get(WORKSPACE_ENV) or "workspace"


def add_common(parser: argparse.ArgumentParser, top: bool) -> None:
    """--workspace, -v and -q: on the top parser with defaults, on each command without (so either place works)."""
    unset = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("--workspace", metavar="DIR", **({"default": default_workspace()} if top else unset),
                        help=f"where models, artifacts, logs, calibrations and results.sqlite live "
                             f"(default: ${WORKSPACE_ENV} or ./workspace)")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const="verbose",
                          **({"default": "normal"} if top else unset),
                          help="show everything, framework logs included")
    loudness.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const="quiet", **unset,
                          help="only errors and the final summary")


def parse_bool(text: str) -> bool:
    """benchmark_model's booleans: true/false (also 1/0, yes/no)."""
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


class VersionAction(argparse.Action):
    """`--version`: the installed package's version, read only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, default: str = argparse.SUPPRESS,
                 help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        import platform
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("edge-model-pipeline")
        except PackageNotFoundError:
            number = "unknown (not installed; run `make setup`)"
        print(f"pipeline {number} (Python {platform.python_version()})")
        parser.exit()


def store_path(args: argparse.Namespace) -> Path:
    """--store, else WORKSPACE/results.sqlite."""
    return Path(args.store) if getattr(args, "store", None) else Path(args.workspace) / "results.sqlite"
