"""Where the app reads from: the workspace (results store, artifacts, models), given on the command line."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

WORKSPACE_ENV = "PIPELINE_APP_WORKSPACE"
DEFAULT_WORKSPACE = "workspace"


@dataclass(frozen=True)
class Workspace:
    """A pipeline workspace: `results.sqlite`, `artifacts/`, `models/` (and `app-jobs/` for the Run page's logs)."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / "results.sqlite"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def jobs(self) -> Path:
        return self.root / "app-jobs"

    def resolve(self, path: str | Path) -> Path:
        """A path as the pipeline wrote it (absolute, or relative to where it ran) made absolute."""
        path = Path(path)
        if path.is_absolute():
            return path
        for base in (Path.cwd(), self.root.parent, self.root):
            if (base / path).exists():
                return (base / path).resolve()
        return (Path.cwd() / path).resolve()


def workspace_from_args(argv: Sequence[str]) -> Workspace:
    """`--workspace DIR` from the script arguments, else $PIPELINE_APP_WORKSPACE, else ./workspace."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--workspace")
    known, _ = parser.parse_known_args(list(argv))
    root = known.workspace or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE
    return Workspace(Path(root).expanduser().resolve())
