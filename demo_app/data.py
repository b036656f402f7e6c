"""The leaderboard's data: the pipeline's leaderboard (pipeline.leaderboard) with app links, filters, and artifact discovery."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from demo_app.config import Workspace
from pipeline.leaderboard import leaderboard

# (column, label) of every leaderboard filter, in the order the sidebar shows them.
FILTERS = (("model", "Model"), ("framework", "Source framework"), ("target", "Target"), ("variant", "Variant / stages"),
           ("runtime", "Runtime"), ("delegate", "Delegate"), ("device", "Device profile"), ("kind", "Measured / emulated"))


@dataclass(frozen=True)
class Artifact:
    """An exported artifact directory of the workspace and its manifest."""

    path: Path
    manifest: dict[str, Any]
    label: str = ""  # unique in a listing: the path under workspace/artifacts, else the whole path

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", f"{self.path.parent.name}/{self.path.name}")

    @property
    def target(self) -> str:
        return str(self.manifest.get("target", "?"))

    @property
    def variant(self) -> str:
        return variant_of(self.manifest)

    @property
    def dataset(self) -> str:
        eval_data = self.manifest.get("eval_data") or {}
        return str(eval_data.get("dataset") or Path(self.manifest.get("source", {}).get("path", "?")).stem)


def variant_of(manifest: dict[str, Any]) -> str:
    """The stages applied, as pipeline.report names them ('fp32' when none)."""
    names = [s["name"] if s["name"] != "quantize" else s["config"]["mode"] for s in manifest.get("stages", [])]
    return "+".join(names) or "fp32"


def artifact_label(path: Path, workspace: Workspace) -> str:
    """The path under workspace/artifacts (e.g. digits-cnn-torch/tflite-int8); the whole path for one outside it."""
    root = workspace.artifacts.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def store_stamp(store: Path) -> float:
    """Changes whenever the store is written (WAL included): a cache key for the leaderboard."""
    return sum(p.stat().st_mtime_ns for p in (store, store.with_name(store.name + "-wal")) if p.exists())


def detail_url(artifact_dir: str, measurement_id: int | None = None) -> str:
    """Relative link to the Artifact detail page for one artifact (and measurement)."""
    params = {"artifact": artifact_dir, **({"measurement": measurement_id} if measurement_id is not None else {})}
    return "detail?" + urlencode(params)


def load_leaderboard(workspace: Workspace) -> pd.DataFrame:
    """The leaderboard (pipeline.leaderboard, as `pipeline.results()` returns it) with the app's label, path and link."""
    frame = leaderboard(workspace.store)
    if frame.empty:
        return frame
    paths = [workspace.resolve(d) for d in frame["artifact_dir"]]
    return frame.assign(
        artifact=[artifact_label(path, workspace) for path in paths], artifact_path=[str(path) for path in paths],
        detail=[detail_url(d, int(m)) for d, m in zip(frame["artifact_dir"], frame["measurement_id"], strict=True)],
    )


def default_selection(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Everything, except the device: the host's own measurements when there are any (one device at a time)."""
    selection = {column: sorted(frame[column].astype(str).unique()) for column, _ in FILTERS}
    if "host" in selection["device"]:
        selection["device"] = ["host"]
    return selection


def filter_rows(frame: pd.DataFrame, selection: dict[str, list[str]]) -> pd.DataFrame:
    """Rows whose value in every filtered column is among the selected ones."""
    keep = pd.Series(True, index=frame.index)
    for column, values in selection.items():
        keep &= frame[column].astype(str).isin(values)
    return frame[keep]


def discover_artifacts(workspace: Workspace, extra_dirs: Sequence[str] = ()) -> list[Artifact]:
    """Artifacts under workspace/artifacts (two levels, hidden staging folders skipped) plus `extra_dirs`."""
    candidates = [p.parent for p in workspace.artifacts.glob("*/*/manifest.json")] if workspace.artifacts.is_dir() else []
    candidates += [workspace.resolve(d) for d in extra_dirs]
    found: dict[Path, Artifact] = {}
    for folder in candidates:
        folder = folder.resolve()
        if folder in found or any(part.startswith(".") for part in folder.parts[-2:]):
            continue
        try:
            found[folder] = Artifact(folder, json.loads((folder / "manifest.json").read_text()), artifact_label(folder, workspace))
        except (OSError, ValueError):
            continue
    return sorted(found.values(), key=lambda a: (a.label.startswith("/"), a.label))


def find_artifact(artifacts: list[Artifact], wanted: str, workspace: Workspace) -> Artifact | None:
    """The known artifact `wanted` names (a stored path or a label); None for anything else (no arbitrary paths)."""
    path = workspace.resolve(wanted)
    return next((a for a in artifacts if a.path == path or a.label == wanted), None)


def measurements_of(workspace: Workspace, artifact: Artifact) -> pd.DataFrame:
    """Every measurement (ok or not) of one artifact, newest first."""
    if not workspace.store.is_file():
        return pd.DataFrame()
    from pipeline.results import fetch_measurements, open_store

    with open_store(workspace.store) as connection:
        rows = [r for r in fetch_measurements(connection) if workspace.resolve(r["artifact_dir"]) == artifact.path]
    from demo_app.emulation import measurement_badge

    columns = ["id", "created_at", "kind", "status", "runtime", "delegate_used", "threads", "device_profile",
               "latency_ms_p50", "latency_ms_p90", "calibration", "latency_ms_p99", "accuracy", "error"]
    return pd.DataFrame([{**{c: r[c] for c in columns if c != "calibration"},
                          "calibration": measurement_badge(r["kind"], r["context_json"])} for r in rows], columns=columns)


def output_metrics(validation: dict[str, Any]) -> pd.DataFrame:
    """The validation's metrics of each output (one row per output: name, kind, then each metric); empty for a
    manifest written before per-output validation."""
    rows = [{"output": out.get("name", f"output_{i}"), "kind": out.get("kind", "?"),
             **(out.get("metrics") or {"note": "not measured"})} for i, out in enumerate(validation.get("outputs") or [])]
    return pd.DataFrame(rows)


def tolerances(validation: dict[str, Any]) -> pd.DataFrame:
    """The bounds the validation judged by (`tolerances`, or `tolerance` in older manifests), unset ones as '-'."""
    bounds = validation.get("tolerances") or validation.get("tolerance") or {}
    return pd.DataFrame([{"tolerance": name, "bound": "-" if value is None else f"{value:g}"
                          if isinstance(value, int | float) else str(value)} for name, value in bounds.items()])
