"""Artifact detail: manifest, validation (per output, with its tolerances), delegation report, and a classifier's
per-class accuracy against the source model."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from demo_app import charts
from demo_app.data import Artifact, find_artifact, measurements_of, output_metrics, tolerances
from demo_app.emulation import FLAG, int8_notes
from demo_app.ui import artifacts_or_first_run, eval_comparison, leaderboard, ops, source_path, workspace
from pipeline.core.errors import PipelineError
from pipeline.report import format_metric, task_metric, task_of

FALLBACK = "background-color: #ffd6d6; color: #8a1111; font-weight: 600"

ws = workspace()
st.title("Artifact detail")
known = artifacts_or_first_run(ws)

wanted = st.query_params.get("artifact")
current = find_artifact(known, wanted, ws) if wanted else None
if wanted and current is None:
    st.error(f"`{wanted}` is not an artifact of this workspace; pick one below.")
labels = [a.label for a in known]
index = labels.index(current.label) if current else 0
label = st.selectbox("Artifact", labels, index=index)
artifact: Artifact = known[labels.index(label)]
if artifact is not current:
    st.query_params["artifact"] = artifact.label
manifest, validation = artifact.manifest, artifact.manifest.get("validation", {})

cols = st.columns(5)
cols[0].metric("Target", artifact.target)
cols[1].metric("Variant", artifact.variant)
cols[2].metric("Size", f"{manifest.get('size_bytes', 0):,} B", help=f"gzip {manifest.get('size_bytes_gzip', 0):,} B")
passed = validation.get("passed")
cols[3].metric("Validation", {True: "passed", False: "FAILED", None: "skipped"}[passed])
metric, value = task_metric(manifest)
if value is not None:
    source_value = validation.get("source_accuracy") if metric == "accuracy" else None
    delta = f"{value - source_value:+.2%} vs source" if source_value is not None else None
    cols[4].metric(metric.capitalize() if metric != "SQNR dB" else metric, format_metric(metric, value), delta,
                   help=f"The {task_of(manifest)} task's metric of this artifact against its source model (validation).")
st.caption(f"`{artifact.path}` — route: {manifest.get('route', '?')} — task: {task_of(manifest)}")
coverage = manifest.get("quantization_coverage") or {}
if coverage.get("warning"):
    st.warning(coverage["warning"], icon=":material/warning:")

tab_eval, tab_validation, tab_delegation, tab_layers, tab_measure, tab_manifest = st.tabs(
    ["Per-class accuracy", "Validation", "Delegation", "Layer errors", "Measurements", "Manifest"])

with tab_validation:
    if passed is False:
        st.error("Validation failed: " + "; ".join(validation.get("failures", [])))
    per_output = output_metrics(validation)
    if not per_output.empty:
        st.subheader("Per output")
        st.dataframe(per_output, hide_index=True, width="stretch")
    bounds = tolerances(validation)
    if not bounds.empty:
        st.subheader("Tolerances")
        st.caption("The bounds this validation judged the outputs by (unset bounds are not checked).")
        st.dataframe(bounds, hide_index=True)
    shown = {k: v for k, v in validation.items() if k not in ("outputs", "tolerances", "tolerance")}
    rows = [{"check": k, "value": json.dumps(v) if isinstance(v, dict | list) else str(v)} for k, v in shown.items()]
    st.subheader("Summary")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")

with tab_delegation:
    delegation = manifest.get("delegation") or {}
    if not delegation:
        st.info("No delegation report in this manifest.")
    else:
        fallen = delegation.get("ops_not_delegated", [])
        st.metric(f"Ops on {delegation.get('delegate', '?')}", f"{delegation.get('ops_delegated', '?')}/{delegation.get('ops_total', '?')}")
        if delegation.get("warning"):
            st.warning(delegation["warning"])
        try:
            listed = ops(artifact)
        except PipelineError:
            listed = []
        listed += [op for op in fallen if op not in listed]
        table = pd.DataFrame({"op": listed, "where": ["fallback kernels" if op in fallen else "delegate" for op in listed]})
        if len(table):
            st.dataframe(table.style.apply(lambda row: [FALLBACK if row["where"] != "delegate" else "" for _ in row], axis=1),
                         hide_index=True)
        st.caption("Ops that fell off the delegate are highlighted: they run on slower reference kernels."
                   if fallen else "Every op was taken by the delegate.")
    if coverage.get("quantized_share") is not None and coverage.get("mode") != "none":
        st.subheader("Quantization coverage")
        st.metric(f"Weight bytes in {coverage['stored_as']}", f"{coverage['quantized_share']:.1%}",
                  help=f"{coverage['weight_bytes']:,} weight bytes read from the artifact; {coverage['float_share']:.1%} "
                       "left in float.")
        if coverage.get("float_tensors"):
            st.dataframe(pd.DataFrame(coverage["float_tensors"]), hide_index=True, width="stretch")

with tab_measure:
    measured = measurements_of(ws, artifact)
    if measured.empty:
        st.info("Not benchmarked yet: start a benchmark on the Run page.")
    else:
        flagged = measured[measured["calibration"].str.startswith(FLAG)]
        if not flagged.empty:
            st.error(f"{len(flagged)} emulated measurement(s) are UNCALIBRATED: their throttle missed the published "
                     "anchor by more than 10%, so these latencies are not the device's.", icon=":material/warning:")
        board = leaderboard(ws)
        for note in int8_notes(board[board["artifact_path"] == str(artifact.path)] if "artifact_path" in board else board):
            st.info(note, icon=":material/speed:")
        st.dataframe(measured, hide_index=True, width="stretch")

with tab_layers:
    debug_file = artifact.path / "debug.json"
    ranking = json.loads(debug_file.read_text()) if debug_file.is_file() else manifest.get("layer_debug") or {}
    if not ranking.get("layers"):
        st.info(ranking.get("reason") or f"No per-layer ranking: `pipeline debug {artifact.path}` ranks the layers "
                "of a quantized .tflite artifact against a float export of its source.")
    else:
        st.caption(f"SQNR of each layer's output against a float export of the source, on {ranking['samples']} "
                   f"evaluation samples; {ranking['matched']} tensors matched. Share: {ranking['share_method']}")
        st.altair_chart(charts.layer_error_chart(ranking["layers"]), width="stretch")

with tab_manifest:
    st.download_button("Download manifest.json", json.dumps(manifest, indent=2), "manifest.json", "application/json")
    st.json(manifest, expanded=2)

with tab_eval:
    if task_of(manifest) != "classification":
        st.info(f"Per-class accuracy is for classifiers; this is a {task_of(manifest)} model. Its per-output metrics "
                "against the source model are on the Validation tab.")
        st.stop()
    source = source_path(ws, artifact)
    has_eval = (artifact.path / (manifest.get("eval_data") or {}).get("file", "eval.npz")).is_file()
    if source is None or not has_eval:
        st.info("Needs the artifact's eval.npz and its source model "
                f"(`{manifest.get('source', {}).get('path', '?')}`) to compare them; one of them is missing.")
        st.stop()
    try:
        with st.spinner("Running eval.npz through the artifact's runtime and the source model..."):
            result = eval_comparison(artifact, source)
    except PipelineError as exc:
        st.error(f"Could not run the comparison: {exc}")
        st.stop()
    names = list(manifest.get("source", {}).get("labels") or map(str, range(result["classes"])))
    cols = st.columns(3)
    cols[0].metric("Samples", result["samples"])
    cols[1].metric("Top-1 agreement with source", f"{result['agreement']:.2%}")
    cols[2].metric("Max abs error", f"{result['max_abs_error']:.3g}")
    if result["labels"] is None:
        st.info("eval.npz has no labels: only agreement with the source model can be shown.")
        st.stop()
    per_class = pd.DataFrame({"class": names, "source": result["source_per_class"], "artifact": result["artifact_per_class"]})
    per_class["difference"] = per_class["artifact"] - per_class["source"]
    st.dataframe(per_class, hide_index=True, column_config={c: st.column_config.NumberColumn(format="percent")
                                                            for c in ("source", "artifact", "difference")})
    left, right = st.columns(2)
    left.altair_chart(charts.confusion_chart(result["source_matrix"], names, f"source model ({result['source_accuracy']:.2%})"), width="content")
    right.altair_chart(charts.confusion_chart(result["artifact_matrix"], names, f"artifact ({result['artifact_accuracy']:.2%})"), width="content")
