"""`pipeline optimize`'s search rules, front, pick and loss measure, on verdicts made by hand (no frameworks)."""

from __future__ import annotations

import math

import pytest

from pipeline.optimize.candidates import Candidate, Rules, Verdict, first_round
from pipeline.optimize.front import pareto, pick
from pipeline.optimize.quality import quality_drop

MODES = ("none", "fp16", "dynamic-int8", "weight-int8", "int8", "qat-int8")


def verdict(candidate: Candidate, drop: float, size: int, budget: float = 1.0, p50: float | None = None) -> Verdict:
    return Verdict(candidate, "ok", drop <= budget, drop, "accuracy drop", size, p50, f"/a/{candidate.name}")


def follow(rules: Rules, verdicts: list[Verdict], ranking: tuple[str, ...] = ("conv2", "fc1", "conv1")) -> Rules:
    rules.next, rules.skipped = [], []
    rules.follow_ups({v.candidate.key: v for v in verdicts}, "tflite", lambda v, k: ranking[:k])
    return rules


def round_one(int8_drop: float) -> list[Verdict]:
    sizes = {"none": 400, "fp16": 200, "dynamic-int8": 110, "weight-int8": 105, "int8": 100}
    drops = {"none": 0.0, "fp16": 0.0, "dynamic-int8": 0.2, "weight-int8": 0.1, "int8": int8_drop}
    return [verdict(Candidate("tflite", mode), drops[mode], size) for mode, size in sizes.items()]


def test_first_round_tries_each_routes_post_training_modes_float_first() -> None:
    modes = {"tflite": ("none", "fp16", "int8", "qat-int8"), "tfjs": ("none", "uint8", "uint16")}
    candidates = first_round(["tflite", "tfjs"], modes.__getitem__)
    assert [c.key for c in candidates] == ["tflite/fp32", "tflite/fp16", "tflite/int8", "tfjs/fp32", "tfjs/uint16",
                                           "tfjs/uint8"]  # QAT trains: never in the first round


@pytest.mark.parametrize("objective", ["size", "latency"])
def test_int8_within_budget_tries_per_tensor_skips_qat_then_prunes_the_best(objective: str) -> None:
    rules = follow(Rules(objective, MODES, selective=""), round_one(int8_drop=0.4))
    assert rules.next == [Candidate("tflite", "int8", per_channel=False)]  # smaller where per-channel scales weigh
    assert "tflite/qat-int8" in {c.key for c, _ in rules.skipped}
    verdicts = [*round_one(0.4), verdict(rules.next[0], 0.6, 90)]
    rules = follow(rules, verdicts)  # settled: prune the best so far (by size; nothing is measured here)
    assert [c.key for c in rules.next] == (["tflite/channels0.25+int8-per-tensor"] if objective == "size" else [])
    assert all("keep" not in c.key for c in rules.next)  # nothing to keep in float when int8 holds the budget


def test_int8_over_budget_tries_qat_and_the_worst_layer_in_float_then_more_layers() -> None:
    verdicts = round_one(int8_drop=3.0)
    rules = follow(Rules("size", MODES, selective=""), verdicts)
    keep_one = Candidate("tflite", "int8", keep_float=("conv2",))
    assert set(rules.next) == {Candidate("tflite", "qat-int8"), keep_one}
    assert "int8 per channel misses" in dict((c.key, r) for c, r in rules.skipped)["tflite/int8-per-tensor"]
    verdicts += [verdict(keep_one, 1.8, 120), verdict(Candidate("tflite", "qat-int8"), 2.5, 100)]
    rules = follow(rules, verdicts)
    assert rules.next == [Candidate("tflite", "int8", keep_float=("conv2", "fc1"))]  # one more layer in float
    verdicts.append(verdict(rules.next[0], 0.7, 130))
    rules = follow(rules, verdicts)  # the budget holds: selective stops, pruning starts on the best so far
    assert [c.key for c in rules.next] == ["tflite/channels0.25+weight-int8"]


def test_routes_that_cannot_rank_or_prune_say_why_instead() -> None:
    rules = follow(Rules("size", MODES, selective="no ranking here", prunable="torch only"), round_one(int8_drop=3.0))
    assert rules.next == [Candidate("tflite", "qat-int8")]
    reasons = [reason for _, reason in rules.skipped]
    assert any("no ranking here" in r for r in reasons)
    verdicts = round_one(3.0) + [verdict(Candidate("tflite", "qat-int8"), 2.0, 100)]
    rules = follow(rules, verdicts)
    assert rules.next == [] and any(r == "torch only" for _, r in rules.skipped)


def test_pruning_goes_a_level_further_only_while_the_budget_holds() -> None:
    verdicts = [*round_one(0.4), verdict(Candidate("tflite", "int8", per_channel=False), 0.4, 100)]
    pruned = Candidate("tflite", "int8", prune="channels:0.25")
    rules = follow(Rules("size", MODES, selective=""), [*verdicts, verdict(pruned, 0.9, 70)])
    assert [c.key for c in rules.next] == ["tflite/channels0.5+int8"]
    rules = follow(rules, [*verdicts, verdict(pruned, 1.5, 70)])
    assert rules.next == []


def test_front_and_pick() -> None:
    verdicts = round_one(3.0)
    front = pareto(verdicts, "size")
    assert [v.candidate.name for v in front] == ["int8", "weight-int8", "fp16"]  # fp32 is beaten by fp16 (0 pts)
    assert pick(verdicts, "size").candidate.name == "weight-int8"  # int8 is smaller but over budget
    assert pick(verdicts, "latency") is None  # nothing was measured


def test_quality_drop_reads_each_task_in_points() -> None:
    def manifest(*metrics: dict) -> dict:
        return {"validation": {"passed": True, "outputs": [{"metrics": m} for m in metrics]}}

    assert quality_drop(manifest({"accuracy_drop": 0.012, "top1_agreement": 0.9}))[0] == pytest.approx(1.2)
    assert quality_drop(manifest({"top1_agreement": 0.97}))[0] == pytest.approx(3.0)
    assert quality_drop(manifest({"cosine_mean": 0.995}))[0] == pytest.approx(0.5)
    assert quality_drop(manifest({"cosine_mean": 0.999}, {"relative_l2": 0.04}))[0] == pytest.approx(4.0)  # worst
    assert quality_drop(manifest({}))[0] == math.inf
    assert quality_drop({"validation": {"passed": None, "skipped": True}}) == (math.inf, "not validated")


@pytest.mark.parametrize(("args", "message"), [
    (["digits-cnn", "--targets", "webgpu"], "Unknown target 'webgpu'"),
    (["digits-cnn", "--framework", "keras", "--targets", "executorch,tflite", "--max-accuracy-drop", "101"],
     "between 0 and 100 points"),
    (["no-such-model"], "neither a zoo model"),
    (["missing.keras"], "does not exist"),
])
def test_bad_optimize_requests_exit_2_naming_the_value(args: list[str], message: str, tmp_path, capsys) -> None:
    from pipeline.cli import main

    assert main(["--workspace", str(tmp_path), "optimize", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "optimize").exists()
