"""Run: start an export, a benchmark or a sweep as a background `python -m pipeline` job and follow its output."""

from __future__ import annotations

import streamlit as st

from demo_app.jobs import Job, bench_command, export_commands, sweep_command
from demo_app.ui import artifacts, job_board, workspace

ws = workspace()
board = job_board()
st.title("Run")
st.caption("Jobs run as `python -m pipeline ...` subprocesses; this page stays responsive and polls their output. "
           "Finished benchmarks appear on the Compare page.")


def _start(title: str, steps: list[list[str]]) -> None:
    board.start(ws, title, steps)
    st.toast(f"Started: {title}", icon=":material/play_arrow:")


export_tab, bench_tab, sweep_tab = st.tabs(["Export", "Benchmark", "Sweep"])
with export_tab:
    from exporters import EXPORTERS, modes_for

    models = sorted(p for pattern in ("*.keras", "*.pt2") for p in ws.models.glob(pattern)) if ws.models.is_dir() else []
    if not models:
        st.info(f"No source models in `{ws.models}`. Train one: `pipeline train digits-cnn --framework torch "
                f"--out {ws.models}/digits-cnn-torch.pt2`, or run a sweep.")
    else:
        model = st.selectbox("Source model", models, format_func=lambda p: p.name)
        targets = EXPORTERS.names()
        target = st.selectbox("Target", targets, index=targets.index("tflite") if "tflite" in targets else 0)
        framework = "keras" if model.suffix == ".keras" else "torch"  # the two formats listed above
        quantize = st.selectbox("Quantization", modes_for(framework, target))
        bench = st.checkbox("Benchmark it afterwards (host, default runtime), so it shows on Compare", value=True)
        out = ws.artifacts / model.stem / f"{target}-{quantize}"
        st.caption(f"Output: `{out}`" + (" (replaces the artifact there)" if (out / "manifest.json").exists() else ""))
        if st.button("Export", type="primary"):
            _start(f"export {model.name} -> {target} ({quantize})", export_commands(ws, model, target, quantize, out, bench=bench))

with bench_tab:
    from device_runtime import RUNTIMES
    from device_runtime.profiles import PROFILES

    known = artifacts(ws)
    if not known:
        st.info("No exported artifacts yet: export one first (or run a sweep).")
    else:
        with st.form("bench"):
            chosen = st.multiselect("Artifacts", [a.label for a in known], default=[known[0].label])
            device = st.selectbox("Device profile", [name for name, _ in PROFILES.items()])
            runtime = st.selectbox("Runtime", ["(artifact's default)", *RUNTIMES.in_order()])
            delegate = st.text_input("Delegate (blank: the runtime's default)", "")
            cols = st.columns(2)
            min_runs = cols[0].number_input("Min runs", 10, 10000, 100, step=10)
            min_seconds = cols[1].number_input("Min seconds", 0.1, 60.0, 2.0, step=0.5)
            submitted = st.form_submit_button("Benchmark", type="primary")
        if submitted and chosen:
            paths = [a.path for a in known if a.label in chosen]
            command = bench_command(ws, paths, None if runtime.startswith("(") else runtime, delegate.strip() or None,
                                    device, int(min_runs), float(min_seconds))
            _start(f"bench {len(paths)} artifact(s) on {device}", [command])

with sweep_tab:
    st.write("The default recipe: trains the reference models, exports every route and mode and benchmarks them "
             "(cached: finished cells are skipped). About 10+ minutes the first time.")
    if st.button("Run the default sweep", type="primary"):
        _start("sweep (default recipe)", [sweep_command(ws)])


def _show(job: Job) -> None:
    state = "running" if job.running else ("done" if job.ok else f"failed (exit {job.returncode})")
    with st.expander(f"{job.title} — {state}, {job.elapsed():.0f} s", expanded=job.running or not job.ok):
        fraction = job.progress()
        if job.running:
            st.progress(fraction if fraction is not None else 0.0,
                        text=f"step {job.step + 1}/{len(job.steps)}" if fraction is None else f"{fraction:.0%}")
            if st.button("Cancel", key=f"cancel-{job.id}"):
                job.cancel()
        elif job.ok:
            st.success("Finished. New measurements are on the Compare page.", icon=":material/check_circle:")
        else:
            st.error(f"The job failed (exit {job.returncode}); the end of its output is below.")
        st.code(job.tail() or "(no output yet)", language="text")
        st.caption(f"Log: `{job.log}`")


@st.fragment(run_every=1.0 if board.running() else None)
def jobs_panel() -> None:
    """Re-rendered every second on its own while a job runs, so the rest of the page never waits for it."""
    st.subheader("Jobs")
    if not board.jobs:
        st.caption("No jobs started from this app yet.")
    for job in board.jobs[:10]:
        _show(job)
    running = {job.id for job in board.running()}
    if st.session_state.get("polled_jobs", set()) - running:  # one just finished: a full rerun stops the polling
        st.session_state["polled_jobs"] = running
        st.rerun(scope="app")
    st.session_state["polled_jobs"] = running
    if board.jobs and not running:
        st.page_link("views/compare.py", label="See the results on Compare", icon=":material/leaderboard:")


jobs_panel()
