"""The report and the leaderboard show each artifact's task metric (accuracy, agreement, cosine, SQNR dB) and
never put two metrics on one axis, on a results store of classification, embedding and regression artifacts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.records import Measurement
from pipeline.report import format_metric, load_entries, pareto_front, render_html, render_markdown, task_metric
from pipeline.results import insert_measurement, open_store, record_export

HEADLINE_LABELS = {"accuracy": "accuracy", "top1_agreement": "agreement", "cosine_mean": "cosine", "sqnr_db": "SQNR dB"}


def validation(task: str, metric: str, value: float | None, **carried: Any) -> dict[str, Any]:
    """A `validation` record as the export writes it (per-output metrics, tolerances, headline)."""
    kind = {"classification": "probabilities", "embedding": "embedding", "regression": "dense"}[task]
    return {"task": task, "samples": 64, "passed": True, "failures": [], "tolerances": {"min_cosine_mean": 0.99},
            "headline": {"metric": metric, "label": HEADLINE_LABELS[metric], "value": value},
            "outputs": [{"name": "out", "kind": kind, "metrics": {metric: value}}],
            "max_abs_error": None, "mean_abs_error": None, "top1_agreement": None, "source_accuracy": None,
            "artifact_accuracy": None, "runtime": "litert", "delegate": "xnnpack", "dataset": "data", **carried}


LEGACY_CLASSIFIER = {"samples": 64, "max_abs_error": 0.01, "mean_abs_error": 0.001, "top1_agreement": 1.0,
                     "source_accuracy": 0.97, "artifact_accuracy": 0.96, "passed": True, "failures": [],
                     "tolerance": {"max_abs_error": None, "min_top1_agreement": 0.97, "max_accuracy_drop": 0.02},
                     "runtime": "litert", "delegate": "xnnpack", "dataset": "digits"}

# (model, variant, task of the source, validation, p50 ms, size bytes)
ARTIFACTS = [
    ("digits-cnn", "fp32", "classification", validation("classification", "accuracy", 0.97, artifact_accuracy=0.97,
                                                        source_accuracy=0.97, top1_agreement=1.0), 0.20, 150_000),
    ("digits-cnn", "int8", "classification", LEGACY_CLASSIFIER, 0.10, 40_000),  # a manifest from before tasks
    ("digits-cnn", "int8-slow", "classification", validation("classification", "accuracy", 0.95, artifact_accuracy=0.95),
     0.30, 60_000),  # slower, bigger and less accurate than int8: dominated
    ("minilm-l6", "fp32", "embedding", validation("embedding", "cosine_mean", 0.99998), 45.0, 90_000_000),
    ("minilm-l6", "int8", "embedding", validation("embedding", "cosine_mean", 0.987), 30.0, 23_000_000),
    ("minilm-l6", "fp16", "embedding", {"passed": None, "skipped": True}, 40.0, 45_000_000),  # not validated
    ("two-head", "fp32", "regression", validation("regression", "sqnr_db", 41.3), 0.05, 20_000),
    ("two-head", "int8", "regression", validation("regression", "sqnr_db", 18.6), 0.04, 8_000),
    # one model, two metrics: validated with labels (accuracy) and without (agreement)
    ("unlabelled", "fp32", "classification", validation("classification", "top1_agreement", 0.99, top1_agreement=0.99),
     1.0, 10_000),
    ("unlabelled", "int8", "classification", validation("classification", "accuracy", 0.995, artifact_accuracy=0.995),
     0.5, 5_000),  # faster, smaller and a higher value, yet an accuracy never dominates an agreement
]


def manifest(model: str, variant: str, task: str, checks: dict[str, Any], size: int) -> dict[str, Any]:
    stages = [] if variant == "fp32" else [{"name": "quantize", "config": {"mode": variant}}]
    return {"target": "tflite", "source": {"framework": "torch", "path": f"models/{model}.pt2", "task": task},
            "stages": stages, "size_bytes": size, "size_bytes_gzip": size // 2, "validation": checks,
            "delegation": {}, "toolchain": {"ai-edge-litert": "2.3.0"}}


@pytest.fixture
def store(tmp_path) -> Path:
    """A results store with one ok measurement per artifact, each artifact directory holding its manifest."""
    path = tmp_path / "results.sqlite"
    with open_store(path) as connection:
        for model, variant, task, checks, p50, size in ARTIFACTS:
            folder = tmp_path / "artifacts" / model / f"tflite-{variant}"
            folder.mkdir(parents=True)
            (folder / "manifest.json").write_text(json.dumps(manifest(model, variant, task, checks, size)))
            record_export(connection, {"key": f"{model}-{variant}", "model": model, "framework": "torch",
                                       "variant": variant, "target": "tflite", "status": "ok",
                                       "artifact_dir": str(folder)})
            result = {"latency_ms_p50": p50, "latency_ms_p90": p50 * 1.2, "latency_ms_mean": p50, "runs": 50}
            insert_measurement(connection, Measurement(
                kind="measured", status="ok", artifact_dir=str(folder), manifest_sha256="0" * 64, target="tflite",
                runtime="litert", delegate_requested="xnnpack", delegate_used="xnnpack", threads=1,
                device_profile="host", result=result, context={"inputs": "eval.npz"}).to_json())
    return path


def test_task_metric_reads_the_headline_and_treats_older_manifests_as_classifiers():
    assert task_metric(manifest("m", "fp32", "embedding", validation("embedding", "cosine_mean", 0.98), 1)) == ("cosine", 0.98)
    assert task_metric(manifest("m", "fp32", "regression", validation("regression", "sqnr_db", 30.5), 1)) == ("SQNR dB", 30.5)
    assert task_metric({"validation": LEGACY_CLASSIFIER}) == ("accuracy", 0.96)
    assert task_metric({}) == ("accuracy", None)  # a model file benchmarked without a manifest
    skipped = manifest("m", "fp32", "embedding", {"passed": None, "skipped": True}, 1)
    assert task_metric(skipped) == ("cosine", None)  # the source's task names the metric, nothing measured it
    no_labels = validation("classification", "top1_agreement", 0.99, top1_agreement=0.99)
    assert task_metric({"validation": no_labels}) == ("agreement", 0.99)


@pytest.mark.parametrize("label,value,shown", [("accuracy", 0.9712, "97.12%"), ("agreement", 1.0, "100.00%"),
                                               ("cosine", 0.987654, "0.9877"), ("SQNR dB", 41.27, "41.3"),
                                               ("cosine", None, "-")])
def test_metric_values_read_as_their_label(label, value, shown):
    assert format_metric(label, value) == shown


def test_entries_carry_task_and_metric_and_accuracy_only_for_classifiers(store):
    entries = {(e.model, e.variant): e for e in load_entries(store)}
    assert len(entries) == len(ARTIFACTS)
    legacy = entries[("digits-cnn", "int8")]
    assert (legacy.task, legacy.metric, legacy.metric_value, legacy.accuracy) == ("classification", "accuracy", 0.96, 0.96)
    embedding = entries[("minilm-l6", "int8")]
    assert (embedding.task, embedding.metric, embedding.metric_value, embedding.accuracy) == ("embedding", "cosine", 0.987, None)
    assert entries[("minilm-l6", "fp16")].metric == "cosine" and entries[("minilm-l6", "fp16")].metric_value is None
    regression = entries[("two-head", "fp32")]
    assert (regression.task, regression.metric, regression.metric_value) == ("regression", "SQNR dB", 41.3)


def test_the_pareto_front_compares_artifacts_of_one_metric_only(store):
    entries = load_entries(store)

    def front_of(model: str) -> set[str]:
        group = [e for e in entries if e.model == model]
        ids = pareto_front(group)
        return {e.variant for e in group if e.measurement_id in ids}

    assert front_of("digits-cnn") == {"fp32", "int8"}  # int8-slow is dominated by int8
    assert front_of("unlabelled") == {"fp32", "int8"}  # the accuracy entry would dominate the agreement one
    assert front_of("minilm-l6") == {"fp32", "int8"}  # the unvalidated fp16 loses on the metric, int8 is faster
    assert front_of("two-head") == {"fp32", "int8"}


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {part.split(" on ")[0]: part for part in parts}


def test_markdown_names_each_groups_metric_in_its_header(store):
    sections = _sections(render_markdown(load_entries(store)))
    headers = {model: next(line for line in text.splitlines() if line.startswith("| framework")) for model, text in sections.items()}
    assert "| accuracy |" in headers["digits-cnn"] and "cosine" not in headers["digits-cnn"]
    assert "| cosine |" in headers["minilm-l6"] and "accuracy" not in headers["minilm-l6"]
    assert "| SQNR dB |" in headers["two-head"] and "accuracy" not in headers["two-head"]
    assert "| task metric |" in headers["unlabelled"]
    assert "embedding" in sections["minilm-l6"].splitlines()[0]
    assert "| 0.9870 |" in sections["minilm-l6"] and "| 98.70%" not in sections["minilm-l6"]
    assert "| 96.00% |" in sections["digits-cnn"] and "| 41.3 |" in sections["two-head"]
    assert "| accuracy 99.50% |" in sections["unlabelled"] and "| agreement 99.00% |" in sections["unlabelled"]


def test_html_charts_one_metric_per_panel_with_its_own_axis(store):
    page = render_html(load_entries(store))
    sections = _sections(page.replace("<h2>", "\n## "))
    panels = {model: sorted(re.findall(r'<svg [^>]*data-metric="([^"]+)"', text)) for model, text in sections.items()}
    assert panels == {"digits-cnn": ["accuracy"], "minilm-l6": ["cosine"], "two-head": ["SQNR dB"],
                      "unlabelled": ["accuracy", "agreement"]}
    for text in sections.values():
        for svg in re.findall(r"<svg .*?</svg>", text):
            metric = re.search(r'data-metric="([^"]+)"', svg).group(1)
            axis = re.search(r'rotate\(-90[^>]*>([^<]+)</text>', svg).group(1)
            assert axis == metric
            points = re.findall(r"<title>[^<]*</title>", svg)
            assert points and all(f"{metric} " in point for point in points)  # each point says the panel's metric
            ticks = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
            assert all(tick.endswith("%") for tick in ticks) == (metric in ("accuracy", "agreement"))
    minilm = sections["minilm-l6"]
    assert minilm.count("<circle") == 2  # the unvalidated fp16 is in the table, not the chart


def test_the_leaderboard_has_the_task_metric_of_every_row(store):
    import pandas as pd

    from pipeline.leaderboard import leaderboard

    frame = leaderboard(store).set_index(["model", "variant"])
    assert {"task", "metric", "metric_value", "accuracy", "pareto"} <= set(frame.columns)
    assert frame.loc[("minilm-l6", "int8"), "metric"] == "cosine" and frame.loc[("minilm-l6", "int8"), "metric_value"] == 0.987
    assert frame.loc[("two-head", "int8"), "task"] == "regression" and frame.loc[("two-head", "int8"), "metric"] == "SQNR dB"
    assert pd.isna(frame.loc[("minilm-l6", "int8"), "accuracy"]) and frame.loc[("digits-cnn", "int8"), "accuracy"] == 0.96
    assert frame.loc[("unlabelled", "fp32"), "pareto"] and frame.loc[("unlabelled", "int8"), "pareto"]
    assert not frame.loc[("digits-cnn", "int8-slow"), "pareto"]
