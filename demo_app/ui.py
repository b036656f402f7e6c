"""What the pages share: the workspace, cached data and models, and the first-run state."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from demo_app.config import Workspace, workspace_from_args
from demo_app.data import Artifact, discover_artifacts, load_leaderboard, store_stamp
from demo_app.feeds import load_tokenizer, tokenizer_folder
from demo_app.inference import Runner, compare_on_eval, eval_samples, op_list, open_artifact, open_source
from demo_app.jobs import JobBoard
from pipeline.core.tensors import Feed


def workspace() -> Workspace:
    """The workspace given after `--` on the `streamlit run` line (or $PIPELINE_APP_WORKSPACE)."""
    return workspace_from_args(sys.argv[1:])


@st.cache_data(show_spinner=False, max_entries=8)
def _leaderboard(root: str, stamp: float) -> pd.DataFrame:
    return load_leaderboard(Workspace(Path(root)))


def leaderboard(ws: Workspace) -> pd.DataFrame:
    """The leaderboard, re-read whenever the store changes (a finished Run job shows up at once)."""
    return _leaderboard(str(ws.root), store_stamp(ws.store))


@st.cache_data(show_spinner=False, ttl=5)
def _artifacts(root: str, stamp: float) -> list[Artifact]:
    ws = Workspace(Path(root))
    frame = load_leaderboard(ws)
    return discover_artifacts(ws, [] if frame.empty else list(frame["artifact_dir"].unique()))


def artifacts(ws: Workspace) -> list[Artifact]:
    """Every artifact of the workspace (measured or not)."""
    return _artifacts(str(ws.root), store_stamp(ws.store))


def _stamp(path: Path) -> int:
    return path.stat().st_mtime_ns if path.exists() else 0


@st.cache_resource(show_spinner=False, max_entries=32)
def _artifact_runner(path: str, stamp: int, runtime: str | None, delegate: str | None) -> Runner:
    folder = Path(path)
    return open_artifact(Artifact(folder, json.loads((folder / "manifest.json").read_text())), runtime, delegate)


def artifact_runner(artifact: Artifact, runtime: str | None = None, delegate: str | None = None) -> Runner:
    """The artifact loaded in its runtime, kept for the server's lifetime (reloaded if it is re-exported)."""
    return _artifact_runner(str(artifact.path), _stamp(artifact.path / "manifest.json"), runtime, delegate)


@st.cache_resource(show_spinner=False, max_entries=8)
def _source_runner(path: str, stamp: int) -> Runner:
    return open_source(Path(path))


def source_runner(path: Path) -> Runner:
    """The source model loaded by pipeline.intake.load_model, kept for the server's lifetime."""
    return _source_runner(str(path), _stamp(path))


@st.cache_data(show_spinner=False, max_entries=32)
def _eval_comparison(path: str, stamp: int, source: str) -> dict[str, Any]:
    artifact = Artifact(Path(path), json.loads((Path(path) / "manifest.json").read_text()))
    return compare_on_eval(artifact, artifact_runner(artifact), source_runner(Path(source)))


def eval_comparison(artifact: Artifact, source: Path) -> dict[str, Any]:
    """The artifact vs its source model on eval.npz (demo_app.inference.compare_on_eval), computed once."""
    return _eval_comparison(str(artifact.path), _stamp(artifact.path / "manifest.json"), str(source))


@st.cache_data(show_spinner=False, max_entries=8)
def _samples(path: str, stamp: int) -> tuple[Feed, np.ndarray | None, str]:
    return eval_samples(Artifact(Path(path), json.loads((Path(path) / "manifest.json").read_text())))


def samples(artifact: Artifact) -> tuple[Feed, np.ndarray | None, str]:
    """The artifact's eval.npz (one array per input name, labels or None, layout), read once."""
    return _samples(str(artifact.path), _stamp(artifact.path / "manifest.json"))


@st.cache_resource(show_spinner=False, max_entries=4)
def _tokenizer(folder: str) -> Any:
    return load_tokenizer(Path(folder))


def tokenizer(ws: Workspace, artifact: Artifact) -> Any:
    """The tokenizer of the artifact's model (demo_app.feeds.tokenizer_folder), loaded once per server."""
    return _tokenizer(str(tokenizer_folder(artifact.manifest, source_path(ws, artifact))))


@st.cache_data(show_spinner=False, max_entries=64)
def _ops(path: str, stamp: int) -> list[str]:
    return op_list(Artifact(Path(path), json.loads((Path(path) / "manifest.json").read_text())))


def ops(artifact: Artifact) -> list[str]:
    """The artifact's op types (demo_app.inference.op_list), read once."""
    return _ops(str(artifact.path), _stamp(artifact.path / "manifest.json"))


@st.cache_resource
def job_board() -> JobBoard:
    """The Run page's jobs: one board per app server."""
    return JobBoard()


def source_path(ws: Workspace, artifact: Artifact) -> Path | None:
    """The artifact's source model file, if it is still where the manifest says."""
    recorded = artifact.manifest.get("source", {}).get("path")
    path = ws.resolve(recorded) if recorded else None
    return path if path is not None and path.exists() else None


def first_run(ws: Workspace, what: str = "results") -> None:
    """The empty-workspace state: what is missing and the command that fills it."""
    st.info(f"No {what} yet in workspace `{ws.root}`. Fill it with the default recipe (trains the reference models, "
            "exports every route and mode, benchmarks them; about 17 minutes on 2 cores):", icon=":material/rocket_launch:")
    st.code(f"pipeline sweep --workspace {ws.root}", language="bash")
    st.markdown(f"Quicker: `pipeline demo --workspace {ws.root} --model digits-cnn` (exports only), then "
                f"`pipeline bench {ws.artifacts}/digits-cnn-torch/tflite-none --store {ws.store}`. "
                "Either can be started from the Run page; results appear here as soon as they are stored.")
    st.page_link("views/run.py", label="Open the Run page", icon=":material/play_circle:")


def artifacts_or_first_run(ws: Workspace) -> list[Artifact]:
    """The workspace's artifacts; with none, the first-run state, and the page stops there."""
    known = artifacts(ws)
    if not known:
        first_run(ws, "exported artifacts")
        st.stop()
    return known
