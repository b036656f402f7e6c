"""`pipeline optimize` end to end on a model whose plain int8 misses the budget: the search, its state, its resume."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from pipeline.cli import main

pytestmark = pytest.mark.slow


def optimize_json(*args: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*args, "--json"]) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def search(outlier_paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict]:
    workspace = tmp_path_factory.mktemp("optimize")
    args = ["--workspace", str(workspace), "optimize", str(outlier_paths["keras"]), "--targets", "tflite",
            "--max-accuracy-drop", "1", "--objective", "size"]
    return workspace, args, optimize_json(*args)


def test_selective_int8_holds_the_budget_where_int8_does_not(search: tuple[Path, list[str], dict]) -> None:
    _, _, result = search
    by = {c["key"]: c for c in result["candidates"]}
    fp32, int8 = by["tflite/fp32"], by["tflite/int8"]
    assert int8["drop_points"] > 1 and not int8["within_budget"]
    selective = [c for c in result["candidates"] if c["keep_float"] and c["within_budget"]]
    assert selective, [c["label"] + ": " + c["reason"] for c in result["candidates"]]
    best = min(selective, key=lambda c: c["size_bytes"])
    assert sum(name.startswith("conv2d") for name in best["keep_float"]) == 2  # the outlier conv and its reader
    assert (fp32["size_bytes"] - best["size_bytes"]) / (fp32["size_bytes"] - int8["size_bytes"]) >= 0.8
    assert {"tflite/int8-per-tensor"} <= {s["key"] for s in result["skipped"]}


def test_the_pick_is_the_smallest_candidate_within_budget_and_on_the_front(search: tuple[Path, list[str], dict]) -> None:
    _, _, result = search
    pick = result["pick"]
    within = [c for c in result["candidates"] if c["within_budget"]]
    assert pick["within_budget"] and pick["size_bytes"] == min(c["size_bytes"] for c in within)
    assert pick["key"] in result["front"]
    assert Path(pick["artifact_dir"], "manifest.json").is_file()


def test_state_and_report_are_written(search: tuple[Path, list[str], dict]) -> None:
    workspace, _, result = search
    state = json.loads(next((workspace / "optimize").glob("*.json")).read_text())
    assert state["done"] and state["pick"] == result["pick"]
    report = next((workspace / "optimize").glob("*/report.md")).read_text()
    assert "pick: tflite int8 keeping" in report or "pick: tflite" in report
    assert "## Not tried" in report


def test_a_rerun_exports_nothing_and_picks_the_same(search: tuple[Path, list[str], dict]) -> None:
    _, args, first = search
    again = optimize_json(*args)
    assert again["pick"]["key"] == first["pick"]["key"]
    assert [c["key"] for c in again["candidates"]] == [c["key"] for c in first["candidates"]]
    assert all(r["exports"]["done"] == 0 for r in again["rounds"])
