"""The Optimize page's data: model choices, the state files `pipeline optimize` keeps, and its front as tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from demo_app.config import Workspace
from demo_app.data import detail_url
from pipeline.optimize.request import MODEL_SUFFIX_FRAMEWORKS

OBJECTIVE_AXES = {"size": ("size_bytes", "size_mb", "size (MB, log scale)", 1e-6),
                  "latency": ("p50_ms", "p50_ms", "p50 latency (ms, log scale)", 1.0)}
WITHIN, OVER = "within budget", "over budget"


@dataclass(frozen=True)
class ModelChoice:
    """A model the form offers: a zoo name (built in one of `frameworks`) or a model file of the workspace."""

    label: str
    argument: str  # what `pipeline optimize` takes: the zoo name or the file's path
    frameworks: tuple[str, ...]
    zoo: bool


def model_choices(ws: Workspace) -> list[ModelChoice]:
    """Zoo models first, then the .keras / .pt2 files and SavedModel folders under WORKSPACE/models."""
    from pipeline.zoo import ZOO

    choices = [ModelChoice(name, name, tuple(entry.builders), True) for name, entry in ZOO.items()]
    if ws.models.is_dir():
        for path in sorted(ws.models.iterdir()):
            framework = ("tensorflow" if (path / "saved_model.pb").is_file() else None) if path.is_dir() \
                else MODEL_SUFFIX_FRAMEWORKS.get(path.suffix)
            if framework:
                choices.append(ModelChoice(f"models/{path.name}", str(path), (framework,), False))
    return choices


def routes_from(framework: str) -> list[str]:
    """Every target with an export route from `framework` (what `pipeline optimize` searches by default)."""
    from pipeline.optimize import targets_for

    return list(targets_for(framework))


def expected_state_path(ws: Workspace, choice: ModelChoice, framework: str, device: str, budget: float,
                        objective: str, targets: tuple[str, ...]) -> Path:
    """Where the search the form describes keeps its state, named as `pipeline optimize` names it (ConfigError on a
    bad budget, objective or target)."""
    from pipeline.optimize import OptimizeRequest, model_spec, state_path, targets_for

    model = model_spec(choice.argument, framework=framework if choice.zoo else None)
    return state_path(ws.root, OptimizeRequest(model, device, budget, objective, targets_for(model.framework, targets)))


def list_searches(ws: Workspace) -> list[Path]:
    """The state files of the workspace's searches, newest first (other JSON files there left out)."""
    folder = ws.root / "optimize"
    files = [path for path in folder.glob("*.json") if read_state(path) is not None] if folder.is_dir() else []
    return sorted(files, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def read_state(path: Path) -> dict[str, Any] | None:
    """A search's state, or None while it has not written its first round (or the file is not a search)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and {"request", "candidates", "front"} <= state.keys() else None


def _value(candidate: dict[str, Any], field: str, scale: float) -> float | None:
    value = candidate.get(field)
    return None if value is None else value * scale


def front_points(state: dict[str, Any]) -> pd.DataFrame:
    """One row per scored candidate (validated, with points lost and an objective value): `x` in the objective's
    unit, `drop_points`, `verdict` (within / over budget), `front` and `front_order`, `pick`."""
    field, _, _, scale = OBJECTIVE_AXES[state["request"]["objective"]]
    front = {key: i for i, key in enumerate(state["front"])}
    pick = (state.get("pick") or {}).get("key")
    rows = [{"key": c["key"], "candidate": c["label"], "target": c["target"], "round": c["round"],
             "x": _value(c, field, scale), "drop_points": c["drop_points"],
             "size_mb": _value(c, "size_bytes", 1e-6), "p50_ms": c.get("p50_ms"),
             "verdict": WITHIN if c["within_budget"] else OVER, "front": c["key"] in front,
             "front_order": front.get(c["key"]), "pick": c["key"] == pick}
            for c in state["candidates"]
            if c["status"] == "ok" and c.get("drop_points") is not None and c.get(field) is not None]
    columns = ["key", "candidate", "target", "round", "x", "drop_points", "size_mb", "p50_ms", "verdict", "front",
               "front_order", "pick"]
    return pd.DataFrame(rows, columns=columns)


def axis_title(state: dict[str, Any]) -> str:
    return OBJECTIVE_AXES[state["request"]["objective"]][2]


def budget_points(state: dict[str, Any]) -> float:
    return float(state["request"]["max_drop_points"])


def _verdict(candidate: dict[str, Any], front: set[str], pick: str | None) -> str:
    marks = ["PICK"] * (candidate["key"] == pick) + ["front"] * (candidate["key"] in front)
    verdict = WITHIN if candidate["within_budget"] else candidate.get("reason") or candidate["status"]
    return " ".join([*marks, verdict])


def candidate_table(state: dict[str, Any]) -> pd.DataFrame:
    """Every candidate tried, in the order tried: round, candidate, size MB, p50 ms, points lost, verdict (whole
    reason, marked PICK / front) and a link to its artifact's detail page."""
    pick, front = (state.get("pick") or {}).get("key"), set(state["front"])
    rows = [{"round": c["round"], "candidate": c["label"], "size_mb": _value(c, "size_bytes", 1e-6),
             "p50_ms": c.get("p50_ms"), "points_lost": c.get("drop_points"), "verdict": _verdict(c, front, pick),
             "detail": detail_url(c["artifact_dir"]) if c["status"] == "ok" and c.get("artifact_dir") else None}
            for c in state["candidates"]]
    return pd.DataFrame(rows, columns=["round", "candidate", "size_mb", "p50_ms", "points_lost", "verdict", "detail"])


def not_tried(state: dict[str, Any]) -> list[str]:
    """'label: reason' of every candidate the search chose not to export."""
    return [f"{s['label']}: {s['reason']}" for s in state.get("skipped", [])]


def search_progress(state: dict[str, Any] | None) -> str:
    """A search's progress in words: waiting, in progress or done, with its rounds and candidates."""
    if state is None:
        return "Waiting for the first round (the state file is written when a round ends)."
    rounds, tried = len(state.get("rounds", [])), len(state["candidates"])
    return f"{'Done' if state.get('done') else 'In progress'}: {rounds} round(s), {tried} candidate(s) tried."
