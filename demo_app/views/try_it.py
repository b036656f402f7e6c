"""Try it: one input (evaluation sample, upload or drawing) through the source models and the chosen artifacts."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import streamlit as st

from demo_app import charts
from demo_app.data import Artifact
from demo_app.images import ImageInputError, InputSpec, decode, display, from_canvas, prepare
from demo_app.inference import Prediction, Runner, predict, runtime_for
from demo_app.ui import (
    artifact_runner,
    artifacts_or_first_run,
    leaderboard,
    samples,
    source_path,
    source_runner,
    workspace,
)
from pipeline.core.errors import PipelineError

try:
    from streamlit_drawable_canvas import st_canvas
except Exception:  # not installed, or a Streamlit it does not support: uploads and samples still work
    st_canvas = None

SAMPLE, UPLOAD, DRAW = "Evaluation sample", "Upload an image", "Draw"
DEFAULT_VARIANTS = ("fp32", "int8")
NA = "—"  # a bare "-" would render as a Markdown list bullet in st.table

ws = workspace()
st.title("Try it")
known = artifacts_or_first_run(ws)

datasets = sorted({a.dataset for a in known})
dataset = st.selectbox("Model family (evaluation dataset)", datasets) if len(datasets) > 1 else datasets[0]
group = [a for a in known if a.dataset == dataset]
labels = list(group[0].manifest.get("source", {}).get("labels") or [])
defaults = [a.label for a in group if a.variant in DEFAULT_VARIANTS] or [a.label for a in group[:6]]
chosen = st.multiselect("Artifacts to run", [a.label for a in group], default=defaults, key="try_artifacts")
selected = [a for a in group if a.label in chosen]
with_sources = st.checkbox("Run the source models too", value=True)


def _spec() -> InputSpec | None:
    try:
        return InputSpec.from_manifest(group[0].manifest)
    except ImageInputError as exc:
        st.warning(str(exc))
        return None


spec = _spec()
modes = [SAMPLE] + ([UPLOAD] + ([DRAW] if st_canvas else []) if spec else [])
mode = st.radio("Input", modes, horizontal=True)
if st_canvas is None and spec:
    st.caption("Drawing needs the `streamlit-drawable-canvas` package (not installed here); upload a picture instead.")
x, truth, origin = None, None, ""
left, right = st.columns([1, 2])
with left:
    if mode == SAMPLE:
        inputs, targets, layout = samples(group[0])
        st.number_input(f"Sample (0-{len(inputs) - 1})", 0, len(inputs) - 1, key="sample_index")
        st.button("Random sample", on_click=lambda: st.session_state.update(sample_index=random.randrange(len(inputs))))
        index = st.session_state.get("sample_index", 0)
        origin = f"evaluation sample #{index}"
        x = inputs[index:index + 1]
        spec_layout = layout
        truth = labels[int(targets[index])] if targets is not None and labels else None
    else:
        spec_layout = spec.layout
        if mode == UPLOAD:
            upload = st.file_uploader(f"An image of one digit (any size ≥ {spec.describe()}, roughly square)", key="upload")
            if upload is not None:
                try:
                    x, origin = prepare(decode(upload.getvalue(), spec), spec), upload.name
                except ImageInputError as exc:
                    st.error(f"{upload.name}: {exc}")
        else:
            st.caption("Draw one digit, large, in the middle; it is centred and scaled down like the evaluation data.")
            drawing = st_canvas(stroke_width=18, stroke_color="#FFFFFF", background_color="#000000", width=196,
                                height=196, return_image_data=True, key="canvas")
            if drawing.image_data is not None and drawing.image_data[..., :3].max() > 0:
                try:
                    x, origin = from_canvas(drawing.image_data, spec), "your drawing"
                except ImageInputError as exc:
                    st.error(str(exc))
    if x is not None and spec is not None:
        shown = InputSpec(spec.height, spec.width, spec.channels, spec_layout)
        st.image(display(x[0], shown), width=160,
                 caption=f"model input — {origin}" + (f" (true class {truth})" if truth else ""))

if x is None:
    right.info("Pick a sample, upload an image or draw a digit to see the predictions.")
    st.stop()


def _runners() -> list[tuple[str, Runner | None, str]]:
    """(name, runner or None, error) for each source model and selected artifact; a failing load is reported, not raised."""
    jobs: list[tuple[str, Path | Artifact]] = []
    if with_sources:
        sources = dict.fromkeys(p for a in selected or group if (p := source_path(ws, a)))
        jobs += [(f"source: {p.name}", p) for p in sources]
    jobs += [(a.label, a) for a in selected]
    out = []
    for name, what in jobs:
        try:
            out.append((name, source_runner(what) if isinstance(what, Path) else artifact_runner(what), ""))
        except (PipelineError, RuntimeError, ValueError, OSError) as exc:
            out.append((name, None, str(exc)))
    return out


def _p50(artifact: Artifact | None) -> float | None:
    frame = leaderboard(ws)
    if artifact is None or frame.empty:
        return None
    runtime = runtime_for(artifact)[0]
    rows = frame[(frame["artifact_path"] == str(artifact.path)) & (frame["device"] == "host") & (frame["runtime"] == runtime)]
    return float(rows["p50_ms"].min()) if len(rows) else None


with right, st.spinner("Running the models in their runtimes..."):
    results: list[tuple[str, Prediction | None, str]] = []
    for name, runner, error in _runners():
        try:
            results.append((name, predict(runner, x, spec_layout, labels), "") if runner else (name, None, error))
        except (PipelineError, RuntimeError, ValueError) as exc:
            results.append((name, None, str(exc)))
    by_label = {a.label: a for a in selected}
    table = pd.DataFrame([{
        "model": name, "runtime": p.runtime if p else NA, "prediction": p.label if p else "error",
        "confidence": f"{p.confidence:.1%}" if p else NA, "latency ms (this call)": f"{p.latency_ms:.3f}" if p else NA,
        "bench p50 ms": f"{v:.4f}" if (v := _p50(by_label.get(name))) is not None else NA,
        "note": error or ("" if truth is None or not p else ("correct" if p.label == truth else f"true class {truth}")),
    } for name, p, error in results])
    st.table(table.set_index("model"))
    failed = [f"{name}: {error}" for name, p, error in results if p is None]
    for message in failed:
        st.warning(message)
    probabilities = pd.DataFrame([{"model": name, "class": labels[i] if i < len(labels) else str(i), "probability": v}
                                  for name, p, _ in results if p for i, v in enumerate(p.probabilities)])
    if len(probabilities):
        st.altair_chart(charts.probability_chart(probabilities), width="stretch")
    st.caption("Latency: wall time of one single-sample call from this app (median of 5; tfjs-node: one call, which "
               "starts Node.js). The benchmark p50 is the stored, isolated measurement on this host.")
