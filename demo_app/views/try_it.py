"""Try it: one input through the source models and the chosen artifacts.

Image classifiers take an evaluation sample, an upload or a drawing; text encoders two sentences (their
similarity per model); any other model an evaluation sample or an .npz with one array per input name.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from demo_app import charts
from demo_app.data import Artifact
from demo_app.feeds import (
    IMAGE,
    TEXT,
    FeedInputError,
    embed_pair,
    encode,
    input_kind,
    output_rows,
    read_npz,
    similarity_rows,
)
from demo_app.images import ImageInputError, InputSpec, decode, display, from_canvas, prepare
from demo_app.inference import (
    Prediction,
    Runner,
    feed_in_layout,
    image_layout,
    input_specs,
    output_names,
    predict,
    runtime_for,
)
from demo_app.ui import (
    artifact_runner,
    artifacts_or_first_run,
    leaderboard,
    samples,
    source_path,
    source_runner,
    tokenizer,
    workspace,
)
from pipeline.core.errors import PipelineError
from pipeline.core.tensors import Feed, describe_inputs, slice_feed

try:
    from streamlit_drawable_canvas import st_canvas
except Exception:  # not installed, or a Streamlit it does not support: uploads and samples still work
    st_canvas = None

SAMPLE, UPLOAD, DRAW, NPZ = "Evaluation sample", "Upload an image", "Draw", "Upload an .npz"
DEFAULT_VARIANTS = ("fp32", "int8")
DEFAULT_SENTENCES = ("The cat sleeps on the warm windowsill.", "A kitten is napping in the sun by the window.")
NA = "—"  # a bare "-" would render as a Markdown list bullet in st.table
FAILURES = (PipelineError, RuntimeError, ValueError, OSError)

ws = workspace()
st.title("Try it")
known = artifacts_or_first_run(ws)

datasets = sorted({a.dataset for a in known})
dataset = st.selectbox("Model family (evaluation dataset)", datasets) if len(datasets) > 1 else datasets[0]
group = [a for a in known if a.dataset == dataset]
manifest = group[0].manifest
labels = list(manifest.get("source", {}).get("labels") or [])
defaults = [a.label for a in group if a.variant in DEFAULT_VARIANTS] or [a.label for a in group[:6]]
chosen = st.multiselect("Artifacts to run", [a.label for a in group], default=defaults, key="try_artifacts")
selected = [a for a in group if a.label in chosen]
by_label = {a.label: a for a in selected}
with_sources = st.checkbox("Run the source models too", value=True)
has_samples = (group[0].path / (manifest.get("eval_data") or {}).get("file", "eval.npz")).is_file()


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
        except FAILURES as exc:
            out.append((name, None, str(exc)))
    return out


def _p50(artifact: Artifact | None) -> float | None:
    frame = leaderboard(ws)
    if artifact is None or frame.empty:
        return None
    runtime = runtime_for(artifact)[0]
    rows = frame[(frame["artifact_path"] == str(artifact.path)) & (frame["device"] == "host") & (frame["runtime"] == runtime)]
    return float(rows["p50_ms"].min()) if len(rows) else None


def _shown(value: Any, template: str = "{:.4f}") -> str:
    return NA if value is None or value != value else template.format(value)


def _sample_index(count: int) -> int:
    st.number_input(f"Sample (0-{count - 1})", 0, count - 1, key="sample_index")
    st.button("Random sample", on_click=lambda: st.session_state.update(sample_index=random.randrange(count)))
    return int(st.session_state.get("sample_index", 0))


def text_page() -> None:
    """Two sentences, tokenized with the model's tokenizer; each model's cosine similarity of their embeddings."""
    specs = input_specs(manifest)
    st.caption(f"A text encoder ({describe_inputs(specs)}): each model embeds both sentences; the table shows "
               "the cosine similarity of the two embeddings, and how close each model's embeddings are to the source's.")
    first = st.text_input("Sentence A", DEFAULT_SENTENCES[0], key="sentence_a")
    second = st.text_input("Sentence B", DEFAULT_SENTENCES[1], key="sentence_b")
    try:
        words = tokenizer(ws, group[0])
        feeds = (encode(words, first, specs), encode(words, second, specs))
    except (FeedInputError, PipelineError, OSError) as exc:
        st.error(str(exc))
        st.stop()
    names = output_names(manifest)
    with st.spinner("Embedding both sentences in each model's runtime..."):
        results = []
        for name, runner, error in _runners():
            try:
                results.append((name, embed_pair(runner, feeds, names), "") if runner else (name, None, error))
            except FAILURES as exc:
                results.append((name, None, str(exc)))
    table = pd.DataFrame([{**row, "similarity": _shown(row["similarity"]),
                           "embedding vs source": _shown(row["embedding vs source"]), "runtime": row["runtime"] or NA,
                           "latency ms (this call)": _shown(row["latency ms (this call)"], "{:.3f}"),
                           "bench p50 ms": _shown(_p50(by_label.get(row["model"])))} for row in similarity_rows(results)])
    st.table(table.set_index("model"))
    for name, found, error in results:
        if found is None:
            st.warning(f"{name}: {error}")
    st.caption("Similarity: cosine of the two sentences' embeddings (1 = same direction). Embedding vs source: mean "
               "cosine between this model's and the source model's embedding of each sentence. Latency: median wall "
               "time of one single-sentence call from this app.")


def tensor_page() -> None:
    """Any other model: an evaluation sample or an uploaded .npz; each output's shape and first values."""
    specs = input_specs(manifest)
    st.info(f"This model takes {len(specs)} input(s): {describe_inputs(specs)}. Run an evaluation sample, or upload "
            "an .npz with one array per input name (the first sample of the file runs).")
    mode = st.radio("Input", [SAMPLE, NPZ] if has_samples else [NPZ], horizontal=True)
    feed: Feed | None = None
    layout = image_layout(specs)
    if mode == SAMPLE:
        inputs, _, layout = samples(group[0])
        index = _sample_index(len(next(iter(inputs.values()))))
        feed = slice_feed(inputs, index, index + 1)
    else:
        upload = st.file_uploader("An .npz with one array per input name", key="npz_upload")
        if upload is not None:
            try:
                feed = read_npz(upload.getvalue(), specs)
            except FeedInputError as exc:
                st.error(f"{upload.name}: {exc}")
    if feed is None:
        st.stop()
    names = output_names(manifest)
    rows: list[dict[str, Any]] = []
    with st.spinner("Running the models in their runtimes..."):
        for name, runner, error in _runners():
            try:
                found = output_rows(runner, feed_in_layout(feed, layout, runner), names) if runner else []
            except FAILURES as exc:
                found, error = [], str(exc)
            rows += [{**row, "latency ms (this call)": _shown(row["latency ms (this call)"], "{:.3f}"), "note": ""}
                     for row in found] or [{"model": name, "runtime": NA, "output": "error", "shape": NA,
                                            "first values": NA, "latency ms (this call)": NA, "note": error}]
    st.table(pd.DataFrame(rows).set_index("model"))


def image_page() -> None:
    """A single-input classifier: an evaluation sample, an uploaded image or a drawing; top class per model."""
    try:
        spec: InputSpec | None = InputSpec.from_manifest(manifest)
    except ImageInputError as exc:
        st.warning(str(exc))
        spec = None
    modes = ([SAMPLE] if has_samples else []) + ([UPLOAD] + ([DRAW] if st_canvas else []) if spec else [])
    if not modes:
        st.info("This artifact has no eval.npz and its input is not an image: nothing to try it on.")
        st.stop()
    mode = st.radio("Input", modes, horizontal=True)
    if st_canvas is None and spec:
        st.caption("Drawing needs the `streamlit-drawable-canvas` package (not installed here); upload a picture instead.")
    x, truth, origin, layout = None, None, "", spec.layout if spec else "NHWC"
    left, right = st.columns([1, 2])
    with left:
        if mode == SAMPLE:
            inputs, targets, layout = samples(group[0])
            images = next(iter(inputs.values()))
            index = _sample_index(len(images))
            origin, x = f"evaluation sample #{index}", images[index:index + 1]
            truth = labels[int(targets[index])] if targets is not None and labels else None
        elif mode == UPLOAD:
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
            shown = InputSpec(spec.height, spec.width, spec.channels, layout)
            st.image(display(x[0], shown), width=160,
                     caption=f"model input — {origin}" + (f" (true class {truth})" if truth else ""))
    if x is None:
        right.info("Pick a sample, upload an image or draw a digit to see the predictions.")
        st.stop()
    with right, st.spinner("Running the models in their runtimes..."):
        results: list[tuple[str, Prediction | None, str]] = []
        for name, runner, error in _runners():
            try:
                results.append((name, predict(runner, x, layout, labels), "") if runner else (name, None, error))
            except (PipelineError, RuntimeError, ValueError) as exc:
                results.append((name, None, str(exc)))
        table = pd.DataFrame([{
            "model": name, "runtime": p.runtime if p else NA, "prediction": p.label if p else "error",
            "confidence": f"{p.confidence:.1%}" if p else NA, "latency ms (this call)": f"{p.latency_ms:.3f}" if p else NA,
            "bench p50 ms": _shown(_p50(by_label.get(name))),
            "note": error or ("" if truth is None or not p else ("correct" if p.label == truth else f"true class {truth}")),
        } for name, p, error in results])
        st.table(table.set_index("model"))
        for name, p, error in results:
            if p is None:
                st.warning(f"{name}: {error}")
        probabilities = pd.DataFrame([{"model": name, "class": labels[i] if i < len(labels) else str(i), "probability": v}
                                      for name, p, _ in results if p for i, v in enumerate(p.probabilities)])
        if len(probabilities):
            st.altair_chart(charts.probability_chart(probabilities), width="stretch")
        st.caption("Latency: wall time of one single-sample call from this app (median of 5; tfjs-node: one call, which "
                   "starts Node.js). The benchmark p50 is the stored, isolated measurement on this host.")


{TEXT: text_page, IMAGE: image_page}.get(input_kind(manifest), tensor_page)()
