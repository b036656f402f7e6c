"""Altair charts of the leaderboard, an artifact's confusion matrix and a prediction's class probabilities."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from demo_app.emulation import EMULATION_ORDER, SHAPES, with_emulation
from pipeline.report import FRACTIONS, runtime_colours, target_colours

TARGETS = alt.Scale(domain=list(target_colours()), range=list(target_colours().values()))
RUNTIMES = alt.Scale(domain=list(runtime_colours()), range=list(runtime_colours().values()))
LOG = alt.Scale(type="log")
EMULATION = alt.Scale(domain=list(EMULATION_ORDER), range=list(SHAPES))


def _emulation_shape() -> alt.Shape:
    """Measured and emulated rows never look alike: one marker shape each, with a legend."""
    return alt.Shape("emulation:N", scale=EMULATION, title="measured / emulated")


def metric_format(label: str) -> str:
    """The d3 format of a task metric: percent for accuracy and agreement, else plain decimals."""
    return ".1%" if label in FRACTIONS else ".4f" if label == "cosine" else ".3g"


def _tooltip(label: str) -> list[alt.Tooltip]:
    return [alt.Tooltip("artifact:N"), alt.Tooltip("runtime_delegate:N", title="runtime/delegate"),
            alt.Tooltip("device:N"), alt.Tooltip("p50_ms:Q", format=".4f", title="p50 ms"),
            alt.Tooltip("metric_value:Q", format=metric_format(label), title=label),
            alt.Tooltip("size_bytes:Q", format=",", title="size B"), alt.Tooltip("pareto:N", title="Pareto"),
            alt.Tooltip("kind:N"), alt.Tooltip("calibration_badge:N", title="calibration")]


def _pareto_panel(data: pd.DataFrame, label: str, index: int) -> alt.LayerChart:
    x = alt.X("p50_ms:Q", scale=alt.Scale(type="log", padding=30), title="p50 latency (ms, log scale)")
    y = alt.Y("metric_value:Q", scale=alt.Scale(zero=False, padding=30), axis=alt.Axis(format=metric_format(label)),
              title=f"{label} (validation)")
    points = alt.Chart(data).mark_point(filled=True, opacity=0.65, stroke="black").encode(
        x=x, y=y, color=alt.Color("target:N", scale=TARGETS, title="target"), shape=_emulation_shape(),
        size=alt.Size("size_bytes:Q", scale=alt.Scale(range=[60, 1500]), title="size (bytes)"),
        strokeWidth=alt.condition("datum.pareto", alt.value(2), alt.value(0)), tooltip=_tooltip(label))
    front = alt.Chart(data).transform_filter("datum.pareto").mark_line(color="#888", strokeDash=[4, 3]).encode(
        x=x, y=y, detail="group:N", order="p50_ms:Q")
    zoom = alt.selection_interval(bind="scales", name=f"zoom_{index}")  # one per panel: its own axes
    return (front + points.add_params(zoom)).properties(height=380, title=label)


def pareto_chart(frame: pd.DataFrame) -> alt.LayerChart | alt.HConcatChart:
    """Task metric vs p50 latency (log x), one panel per metric (accuracy and cosine never share an axis);
    marker area ~ size, colour = target; the front is outlined and joined. Rows without a value are left out."""
    data = _with_emulation(frame).assign(group=frame["model"] + " @ " + frame["device"])
    measured = data[data["metric_value"].notna()]
    labels = list(dict.fromkeys(measured["metric"])) or list(dict.fromkeys(data["metric"]))[:1]
    panels = [_pareto_panel(measured[measured["metric"] == label], label, i) for i, label in enumerate(labels)]
    return panels[0] if len(panels) == 1 else alt.hconcat(*panels)


def _with_emulation(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if "emulation" in frame.columns else with_emulation(frame)


def size_chart(frame: pd.DataFrame) -> alt.Chart:
    """Raw and gzip size per artifact, grouped bars coloured by target."""
    sizes = frame.drop_duplicates("artifact").rename(columns={"size_bytes": "raw", "size_bytes_gzip": "gzip"})
    long = sizes.melt(id_vars=["artifact", "target"], value_vars=["raw", "gzip"], var_name="measure", value_name="bytes")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("bytes:Q", title="bytes", axis=alt.Axis(format="~s")),
        y=alt.Y("artifact:N", title=None, sort=alt.EncodingSortField("bytes", order="descending"), axis=alt.Axis(labelLimit=320)),
        yOffset=alt.YOffset("measure:N", sort=["raw", "gzip"]),
        color=alt.Color("target:N", scale=TARGETS),
        opacity=alt.Opacity("measure:N", scale=alt.Scale(domain=["raw", "gzip"], range=[1.0, 0.45]), title="size"),
        tooltip=["artifact:N", "measure:N", alt.Tooltip("bytes:Q", format=",")],
    ).properties(height=alt.Step(9))


def latency_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """Per measurement: min-max whisker, p50-p90 bar, p99 tick, p50 mark (log x), coloured by runtime."""
    frame = _with_emulation(frame)
    data = frame.assign(row=frame["artifact"] + " · " + frame["runtime_delegate"] + " · " + frame["device"],
                        low=frame["latency_ms_min"].fillna(frame["p50_ms"]),
                        high=frame["latency_ms_max"].fillna(frame["latency_ms_p99"]).fillna(frame["p90_ms"]))
    data = data.sort_values(["runtime", "p50_ms"])
    base = alt.Chart(data).encode(y=alt.Y("row:N", title=None, sort=list(data["row"]), axis=alt.Axis(labelLimit=420)),
                                  color=alt.Color("runtime:N", scale=RUNTIMES, title="runtime"),
                                  tooltip=["row:N", alt.Tooltip("low:Q", format=".4f", title="min ms"),
                                           alt.Tooltip("p50_ms:Q", format=".4f", title="p50 ms"),
                                           alt.Tooltip("p90_ms:Q", format=".4f", title="p90 ms"),
                                           alt.Tooltip("latency_ms_p99:Q", format=".4f", title="p99 ms"),
                                           alt.Tooltip("high:Q", format=".4f", title="max ms"), "runs:Q",
                                           alt.Tooltip("calibration_badge:N", title="calibration")])
    whisker = base.mark_rule(opacity=0.6).encode(x=alt.X("low:Q", scale=LOG, title="latency (ms, log scale)"), x2="high:Q")
    box = base.mark_bar(height=12, opacity=0.55).encode(x="p50_ms:Q", x2="p90_ms:Q")
    p99 = base.mark_tick(thickness=2, size=16).encode(x="latency_ms_p99:Q")
    p50 = base.mark_point(filled=True, size=70, color="black").encode(x="p50_ms:Q", shape=_emulation_shape())
    return (whisker + box + p99 + p50).properties(height=alt.Step(22))


def confusion_chart(matrix: np.ndarray, labels: list[str], title: str) -> alt.LayerChart:
    """A confusion matrix heatmap (rows: true class, columns: predicted), counts written in the cells."""
    cells = pd.DataFrame([{"true": labels[i], "predicted": labels[j], "count": int(matrix[i, j])}
                          for i in range(len(labels)) for j in range(len(labels))])
    base = alt.Chart(cells, title=title).encode(x=alt.X("predicted:O", sort=labels), y=alt.Y("true:O", sort=labels))
    heat = base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues"), legend=None),
                                   tooltip=["true:O", "predicted:O", "count:Q"])
    text = base.mark_text(fontSize=10).encode(text=alt.condition("datum.count > 0", "count:Q", alt.value("")),
                                              color=alt.condition("datum.count > 10", alt.value("white"), alt.value("black")))
    return (heat + text).properties(width=alt.Step(26), height=alt.Step(26))


def probability_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """Class probabilities per model (rows) as a heatmap; columns are class labels."""
    base = alt.Chart(frame).encode(x=alt.X("class:O", title="class", sort=None), y=alt.Y("model:N", title=None, sort=None, axis=alt.Axis(labelLimit=320)))
    heat = base.mark_rect().encode(color=alt.Color("probability:Q", scale=alt.Scale(scheme="greens", domain=[0, 1])),
                                   tooltip=["model:N", "class:O", alt.Tooltip("probability:Q", format=".3f")])
    text = base.mark_text(fontSize=10).encode(text=alt.Text("probability:Q", format=".2f"),
                                              color=alt.condition("datum.probability > 0.5", alt.value("white"), alt.value("black")))
    return (heat + text).properties(height=alt.Step(24))


def layer_error_chart(layers: list[dict]) -> alt.Chart:
    """Per-layer SQNR of a quantized artifact against its float export (`pipeline debug`), worst first."""
    frame = pd.DataFrame([{"layer": f"{i + 1}. {layer['layer']} ({layer['op']})", "sqnr_db": layer["sqnr_db"],
                           "share": layer.get("share", 0.0), "tensor": layer["tensor"], "match": layer["match"]}
                          for i, layer in enumerate(layers)])
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("sqnr_db:Q", title="SQNR vs float (dB, lower is worse)"),
        y=alt.Y("layer:N", sort=None, title=None),
        color=alt.Color("share:Q", scale=alt.Scale(scheme="orangered", domain=[0, 1]), title="share of error"),
        tooltip=[alt.Tooltip("layer:N"), alt.Tooltip("sqnr_db:Q", format=".1f", title="SQNR dB"),
                 alt.Tooltip("share:Q", format=".0%", title="est. share of final error"),
                 alt.Tooltip("match:N", title="matched by"), alt.Tooltip("tensor:N")],
    ).properties(height=max(120, 22 * len(frame)))


VERDICTS = alt.Scale(domain=["within budget", "over budget"], range=["#1a7f37", "#9a9a9a"])


def optimize_front_chart(points: pd.DataFrame, x_title: str, budget: float) -> alt.LayerChart:
    """An optimize search (demo_app.optimize_data.front_points): objective (log x) vs points lost, coloured within /
    over budget; the Pareto front joined, the budget a dashed red rule, the pick ringed and named."""
    x = alt.X("x:Q", scale=alt.Scale(type="log", padding=30), title=x_title)
    y = alt.Y("drop_points:Q", scale=alt.Scale(zero=False, padding=30), title="points lost")
    tooltip = ["candidate:N", "round:Q", alt.Tooltip("size_mb:Q", format=".4f", title="size MB"),
               alt.Tooltip("p50_ms:Q", format=".4g", title="p50 ms"),
               alt.Tooltip("drop_points:Q", format=".2f", title="points lost"), "verdict:N", "front:N"]
    base = alt.Chart(points)
    front = base.transform_filter("datum.front").mark_line(color="#555", strokeDash=[4, 3]).encode(
        x=x, y=y, order="front_order:Q")
    dots = base.mark_point(filled=True, size=90, opacity=0.8).encode(
        x=x, y=y, color=alt.Color("verdict:N", scale=VERDICTS, title="verdict"),
        shape=alt.Shape("target:N", title="target"), tooltip=tooltip)
    pick = base.transform_filter("datum.pick")
    ring = pick.mark_point(size=420, strokeWidth=2.5, color="#d4a017").encode(x=x, y=y, tooltip=tooltip)
    name = pick.mark_text(align="left", dx=14, dy=-10, fontWeight="bold").encode(
        x=x, y=y, text=alt.Text("candidate:N"))
    rule = alt.Chart(pd.DataFrame({"budget": [budget]})).mark_rule(color="#c33", strokeDash=[6, 4]).encode(
        y=alt.Y("budget:Q", title="points lost"), tooltip=[alt.Tooltip("budget:Q", title="budget (points)")])
    return (rule + front + dots + ring + name).properties(height=380)
