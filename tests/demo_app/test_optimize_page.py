"""The Optimize page: its data shaping on a hand-made search state, the command it starts, and the page itself."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from demo_app import charts
from demo_app.config import WORKSPACE_ENV, Workspace
from demo_app.jobs import optimize_command
from demo_app.optimize_data import (
    axis_title,
    budget_points,
    candidate_table,
    expected_state_path,
    front_points,
    list_searches,
    model_choices,
    not_tried,
    read_state,
    routes_from,
)

APP = Path(__file__).resolve().parents[2] / "demo_app" / "app.py"
SLUG = "digits-cnn-keras-host-size-1pts"


def candidate(key: str, target: str, size: int | None, drop: float | None, within: bool, round_: int = 1,
              status: str = "ok", p50: float | None = None, reason: str = "") -> dict:
    name = key.split("/")[1]
    return {"key": key, "name": name, "label": f"{target} {name}", "target": target, "quantize": name, "prune": None,
            "per_channel": True, "keep_float": [], "why": "post-training", "status": status, "within_budget": within,
            "drop_points": drop, "drop_measure": "accuracy drop", "size_bytes": size, "p50_ms": p50,
            "artifact_dir": f"/ws/artifacts/digits-cnn-keras/{target}-{name}", "reason": reason, "round": round_}


def make_state(objective: str = "size") -> dict:
    """fp32 and int8 on the front within the 1-point budget, a dominated dynamic-int8, an over-budget executorch
    int8 that is smaller (on the front too), a failed pruning; int8 is the pick."""
    cands = [candidate("tflite/fp32", "tflite", 100_000, 0.0, True, p50=0.9),
             candidate("tflite/int8", "tflite", 25_000, 0.4, True, p50=0.3),
             candidate("tflite/dynamic-int8", "tflite", 30_000, 0.5, True, p50=0.5),
             candidate("executorch/int8", "executorch", 20_000, 2.5, False, reason="loses 2.50 pts > 1 budget"),
             candidate("tflite/channels0.5+int8", "tflite", None, None, False, 2, "failed", reason="prune failed: boom")]
    front = ["executorch/int8", "tflite/int8", "tflite/fp32"] if objective == "size" else ["tflite/int8", "tflite/fp32"]
    skipped = [{**candidate("tflite/qat-int8", "tflite", None, None, False, status="skipped"),
                "reason": "int8 already holds the budget"}]
    return {"schema_version": 1, "seconds": 12.0, "done": True, "front": front, "pick": cands[1], "skipped": skipped,
            "request": {"model": "digits-cnn", "framework": "keras", "path": None, "device": "host",
                        "max_drop_points": 1.0, "objective": objective, "targets": ["tflite", "executorch"]},
            "rounds": [{"round": 1, "candidates": [c["key"] for c in cands[:4]], "seconds": 10.0, "exports": {}},
                       {"round": 2, "candidates": [cands[4]["key"]], "seconds": 2.0, "exports": {}}],
            "candidates": cands}


def test_front_points_scale_mark_the_front_and_the_pick_and_leave_out_the_unscored():
    points = front_points(make_state()).set_index("key")
    assert set(points.index) == {"tflite/fp32", "tflite/int8", "tflite/dynamic-int8", "executorch/int8"}  # failed: out
    assert points.loc["tflite/int8", "x"] == pytest.approx(0.025)  # MB
    assert points["pick"].tolist().count(True) == 1 and points.loc["tflite/int8", "pick"]
    assert points[points["front"]].sort_values("front_order").index.tolist() == ["executorch/int8", "tflite/int8",
                                                                                 "tflite/fp32"]
    assert not points.loc["tflite/dynamic-int8", "front"]
    assert dict(points["verdict"]) == {"tflite/fp32": "within budget", "tflite/int8": "within budget",
                                       "tflite/dynamic-int8": "within budget", "executorch/int8": "over budget"}
    assert budget_points(make_state()) == 1.0 and axis_title(make_state()).startswith("size (MB")


def test_latency_front_is_in_ms_and_leaves_out_the_unmeasured():
    points = front_points(make_state("latency")).set_index("key")
    assert "executorch/int8" not in points.index  # over budget: never measured, so no p50
    assert points.loc["tflite/int8", "x"] == 0.3 and axis_title(make_state("latency")).startswith("p50 latency")


def test_candidate_table_keeps_the_order_tried_with_verdicts_and_links():
    table = candidate_table(make_state())
    assert table["candidate"].tolist()[:2] == ["tflite fp32", "tflite int8"] and table["round"].tolist()[-1] == 2
    verdicts = dict(zip(table["candidate"], table["verdict"], strict=True))
    assert verdicts["tflite int8"] == "PICK front within budget"
    assert verdicts["executorch int8"] == "front loses 2.50 pts > 1 budget"
    assert verdicts["tflite dynamic-int8"] == "within budget"
    assert verdicts["tflite channels0.5+int8"] == "prune failed: boom"
    assert table["detail"].iloc[1].startswith("detail?artifact=") and table["detail"].isna().iloc[-1]  # failed: no link
    assert table["size_mb"].iloc[0] == pytest.approx(0.1) and table["points_lost"].isna().iloc[-1]
    assert not_tried(make_state()) == ["tflite qat-int8: int8 already holds the budget"]


def test_front_chart_draws_the_budget_rule_the_front_and_the_pick():
    spec = charts.optimize_front_chart(front_points(make_state()), "size (MB, log scale)", 1.0).to_dict()
    layers = spec["layer"]
    marks = [layer["mark"]["type"] for layer in layers]
    assert marks == ["rule", "line", "point", "point", "text"]
    rule_data = spec["datasets"][layers[0]["data"]["name"]]
    assert rule_data == [{"budget": 1.0}]
    assert {"filter": "datum.front"} in layers[1]["transform"] and {"filter": "datum.pick"} in layers[3]["transform"]
    assert layers[2]["encoding"]["x"]["scale"]["type"] == "log"
    assert layers[2]["encoding"]["color"]["scale"]["domain"] == ["within budget", "over budget"]


def _parse(command: list[str]):
    from pipeline.cli import build_parser

    assert command[1:3] == ["-m", "pipeline"]
    return build_parser().parse_args(command[3:])


def test_optimize_command_parses_as_the_cli_reads_it_and_names_the_state_file_the_page_expects(tmp_path):
    from pipeline.optimize import OptimizeRequest, model_spec, state_path, targets_for

    ws = Workspace(tmp_path / "ws")
    (ws.models).mkdir(parents=True)
    (ws.models / "mine.pt2").write_bytes(b"")
    zoo, mine = (next(c for c in model_choices(ws) if c.label == label) for label in ("digits-cnn", "models/mine.pt2"))
    for choice, framework, targets in ((zoo, "keras", ["tflite", "onnx"]), (mine, "torch", ["executorch"])):
        command = optimize_command(ws, choice.argument, "pixel-3a", 0.5, "latency", targets,
                                   framework if choice.zoo else None)
        args = _parse(command)
        assert (args.device, args.max_accuracy_drop, args.objective) == ("pixel-3a", 0.5, "latency")
        assert Path(args.workspace) == ws.root and Path(args.store) == ws.store
        model = model_spec(args.model, framework=args.framework)  # as cmd_optimize reads the arguments
        assert model.framework == framework and targets_for(framework, args.targets.split(",")) == tuple(targets)
        cli_path = state_path(Path(args.workspace), OptimizeRequest(model, args.device, args.max_accuracy_drop,
                                                                    args.objective, tuple(targets)))
        assert expected_state_path(ws, choice, framework, "pixel-3a", 0.5, "latency", tuple(targets)) == cli_path
    assert "--framework" not in command and cli_path.name == "mine-torch-pixel-3a-latency-0.5pts.json"
    bare = optimize_command(ws, "digits-cnn", "host", 1.0, "size")
    assert "--targets" not in bare and _parse(bare).targets is None  # no targets: every route


def test_model_choices_and_routes(tmp_path):
    ws = Workspace(tmp_path)
    (ws.models / "saved").mkdir(parents=True)
    (ws.models / "saved" / "saved_model.pb").write_bytes(b"")
    for name in ("a.keras", "b.pt2", "notes.txt", "a.keras.card.json"):
        (ws.models / name).write_text("")
    files = {c.label: c.frameworks for c in model_choices(ws) if not c.zoo}
    assert files == {"models/a.keras": ("keras",), "models/b.pt2": ("torch",), "models/saved": ("tensorflow",)}
    zoo = {c.label: c.frameworks for c in model_choices(ws) if c.zoo}
    assert zoo["digits-cnn"] == ("keras", "torch") and zoo["minilm-l6"] == ("torch",)
    assert "tflite" in routes_from("keras") and "executorch" in routes_from("torch")


def write_search(ws: Path, slug: str, state: dict, age_s: float = 0.0) -> Path:
    path = ws / "optimize" / f"{slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state))
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_searches_are_listed_newest_first_and_a_foreign_file_is_left_out(tmp_path):
    old, new = write_search(tmp_path, "old", make_state(), 60), write_search(tmp_path, "new", make_state())
    (tmp_path / "optimize" / "junk.json").write_text("[1, 2")
    assert list_searches(Workspace(tmp_path)) == [new, old]
    assert read_state(tmp_path / "optimize" / "junk.json") is None and read_state(new)["pick"]["key"] == "tflite/int8"


def open_optimize(ws: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv(WORKSPACE_ENV, str(ws))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("views/optimize.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_shows_the_newest_search_its_front_table_and_what_was_not_tried(tmp_path, monkeypatch):
    write_search(tmp_path, "digits-cnn-torch-host-latency-1pts", make_state("latency"), 60)
    write_search(tmp_path, SLUG, make_state())
    at = open_optimize(tmp_path, monkeypatch)
    search = next(s for s in at.selectbox if s.label == "Search")
    assert search.options == [SLUG, "digits-cnn-torch-host-latency-1pts"] and search.value == SLUG
    assert "pick: tflite int8 (0.025 MB" in at.success[0].value and "manifest.json" in at.success[0].value
    assert len(at.get("vega_lite_chart")) == 1
    assert at.dataframe[0].value["candidate"].tolist()[1] == "tflite int8"
    assert any("int8 already holds the budget" in m.value for m in at.markdown)
    assert any("1 candidate(s) without a score" in c.value for c in at.caption)

    search.set_value("digits-cnn-torch-host-latency-1pts").run()
    assert not at.exception and "p50 0.3 ms" in at.success[0].value


def test_page_starts_a_search_in_the_background_and_lists_it_before_its_first_round(tmp_path, monkeypatch):
    from demo_app.ui import job_board

    at = open_optimize(tmp_path, monkeypatch)
    assert "No searches yet" in at.info[0].value
    next(m for m in at.multiselect if m.label == "Targets").set_value([])
    next(b for b in at.button if b.label == "Start").click().run()
    assert "Pick at least one target" in at.error[0].value and not job_board().running()

    next(m for m in at.multiselect if m.label == "Targets").set_value(["tflite"])
    started = time.monotonic()
    next(b for b in at.button if b.label == "Start").click().run()
    job = job_board().jobs[0]
    try:
        assert time.monotonic() - started < 10 and job.title == f"optimize {SLUG}"
        assert job.steps[0][3:5] == ["optimize", "digits-cnn"] and job.steps[0][-2:] == ["--targets", "tflite"]
        assert next(s for s in at.selectbox if s.label == "Search").value == SLUG
        assert any("Waiting for the first round" in c.value for c in at.caption) and not at.exception
    finally:  # no real search in the test suite: stop it at once
        job.cancel()
        deadline = time.monotonic() + 60
        while job.running and time.monotonic() < deadline:
            job.cancel()
            time.sleep(0.2)
        job_board().jobs.remove(job)  # the board is the server's: other pages' tests expect it clean
    assert not job.running
