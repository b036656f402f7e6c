"""Compare: the filtered leaderboard, the task metric-latency Pareto chart, sizes and latency distributions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from demo_app import charts
from demo_app.data import FILTERS, default_selection, filter_rows
from demo_app.emulation import int8_notes, uncalibrated_warning, with_emulation
from demo_app.ui import artifacts, first_run, leaderboard, workspace
from pipeline.report import FRACTIONS, format_metric

COLUMNS = {
    "pareto": st.column_config.CheckboxColumn("Pareto", help="Not dominated in p50, task metric and size (per model, "
                                              "device and metric)"),
    "model": "model", "framework": "source", "variant": "variant", "target": "target",
    "runtime_delegate": "runtime/delegate", "device": "device", "kind": "kind", "threads": "threads",
    "p50_ms": st.column_config.NumberColumn("p50 ms", format="%.4f"),
    "p90_ms": st.column_config.NumberColumn("p90 ms", format="%.4f"),
    "calibration_badge": st.column_config.TextColumn(
        "calibration", help="Emulated rows: the calibration status of the device profile and precision on this host "
        "and the anchor's error against its published latency; UNCALIBRATED rows missed it by more than 10%"),
    "latency_ms_p99": st.column_config.NumberColumn("p99 ms", format="%.4f"),
    "size_bytes": st.column_config.NumberColumn("size B", format="localized"),
    "size_bytes_gzip": st.column_config.NumberColumn("gzip B", format="localized"),
    "metric_value": None,  # the task metric: named and formatted by metric_column
    "agreement": st.column_config.NumberColumn("top-1 agreement", format="percent"),
    "delegated": "delegated ops", "warning": "delegation warning", "int8_note": "int8 note",
    "detail": st.column_config.LinkColumn("manifest", display_text="open", help="Artifact detail: manifest, validation, delegation"),
}


def metric_column(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The task metric column: a number named by its metric when the rows share one, else 'label value' text."""
    labels = list(dict.fromkeys(rows["metric"]))
    if len(labels) == 1:
        label = labels[0]
        number = "percent" if label in FRACTIONS else "%.4f" if label == "cosine" else "%.2f"
        return rows, {**COLUMNS, "metric_value": st.column_config.NumberColumn(label, format=number,
                                                                                help="Task metric from the export's validation")}
    shown = [f"{m} {format_metric(m, v if v == v else None)}" for m, v in zip(rows["metric"], rows["metric_value"], strict=True)]
    return rows.assign(metric_value=shown), {**COLUMNS, "metric_value": st.column_config.TextColumn(
        "task metric", help="Each artifact's task metric from its validation (accuracy, agreement, cosine or SQNR dB)")}


ws = workspace()
st.title("Compare artifacts")
frame = leaderboard(ws)
if frame.empty:
    exported = artifacts(ws)
    first_run(ws, "benchmark results")
    if exported:
        st.warning(f"{len(exported)} artifact(s) are exported but not benchmarked yet; benchmark them on the Run page.")
    st.stop()

defaults = default_selection(frame)
st.sidebar.header("Filters")
selection = {}
for column, label in FILTERS:
    options = sorted(frame[column].astype(str).unique())
    selection[column] = st.sidebar.multiselect(label, options, default=defaults[column], key=f"filter_{column}")
rows = with_emulation(filter_rows(frame, selection))
if rows.empty:
    st.warning("No measurement matches these filters. Widen them in the sidebar.")
    st.stop()

best = rows.sort_values("p50_ms").iloc[0]
cols = st.columns(4)
cols[0].metric("Measurements", len(rows))
cols[1].metric("Artifacts", rows["artifact"].nunique())
cols[2].metric("Fastest p50", f"{best['p50_ms']:.4f} ms", help=f"{best['artifact']} on {best['runtime_delegate']}")
cols[3].metric("On the Pareto front", int(rows["pareto"].sum()))

st.subheader("Leaderboard")
st.caption("Latest successful measurement per artifact, runtime, delegate, device and threads. The task metric "
           "(accuracy for classifiers, cosine or SQNR dB against the source for other models) and agreement come from "
           "the export's validation. Select a row (or follow its link) for details.")
warning = uncalibrated_warning(rows)
if warning:
    st.error(warning, icon=":material/warning:")
for note in int8_notes(rows):
    st.info(note, icon=":material/speed:")
table, config = metric_column(rows)
config = {k: v for k, v in config.items() if k in table.columns}  # a store from before calibration has no int8_note
picked = st.dataframe(table[list(config)], column_config=config, hide_index=True, width="stretch",
                      on_select="rerun", selection_mode="single-row", key="leaderboard")
chosen = picked.selection.rows if picked is not None else []
if chosen and st.button("Open artifact detail", icon=":material/description:", type="primary"):
    row = rows.iloc[chosen[0]]
    st.switch_page("views/detail.py", query_params={"artifact": row["artifact_dir"], "measurement": str(row["measurement_id"])})

pareto, sizes, latency = st.tabs(["Task metric vs latency", "Size", "Latency distribution"])
with pareto:
    st.caption("Marker area ~ size, colour = target, shape = measured (circle), emulated (diamond) or emulated and "
               "UNCALIBRATED (triangle); outlined markers (joined by the dashed line) form the Pareto front. "
               "Each task metric has its own panel.")
    st.altair_chart(charts.pareto_chart(rows), width="stretch")
with sizes:
    st.caption("Raw bytes (solid) and gzip bytes (light) of every file of the artifact.")
    st.altair_chart(charts.size_chart(rows), width="stretch")
with latency:
    st.caption("Whisker: min to max; bar: p50 to p90; coloured tick: p99; black mark: p50, shaped by measured / "
               "emulated / UNCALIBRATED (from the stored run statistics).")
    st.altair_chart(charts.latency_chart(rows), width="stretch")
