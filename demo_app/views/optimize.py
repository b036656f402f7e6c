"""Optimize: start `pipeline optimize` in the background and watch its candidates, front and pick arrive."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from demo_app import charts
from demo_app.jobs import Job, optimize_command
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
    search_progress,
)
from demo_app.ui import job_board, workspace
from pipeline.core.errors import PipelineError

ws = workspace()
board = job_board()
st.title("Optimize")
st.caption("The smallest (or fastest) artifact of a model for a device within an accuracy budget: `pipeline optimize` "
           "searches quantization and pruning over the targets in rounds, cheapest first, and keeps its state in "
           f"`{ws.root / 'optimize'}` after every round. A re-run of a search reuses every export it already made.")

TITLE = "optimize "
COLUMNS = {
    "round": st.column_config.NumberColumn("round"), "candidate": "candidate",
    "size_mb": st.column_config.NumberColumn("size MB", format="%.4f"),
    "p50_ms": st.column_config.NumberColumn("p50 ms", format="%.4g", help="Measured on the device (latency objective)"),
    "points_lost": st.column_config.NumberColumn("points lost", format="%.2f",
                                                 help="Accuracy points (or 100 x (1 - agreement / cosine)), worst output"),
    "verdict": st.column_config.TextColumn("verdict", width="large"),
    "detail": st.column_config.LinkColumn("manifest", display_text="open", help="Artifact detail"),
}


def _job_of(path: Path) -> Job | None:
    """The newest job this server started for the search kept in `path`."""
    return next((job for job in board.jobs if job.title == TITLE + path.stem), None)


def _start_form() -> None:
    from device_runtime.profiles import PROFILES

    choices = {choice.label: choice for choice in model_choices(ws)}
    cols = st.columns(2)
    choice = choices[cols[0].selectbox("Model", list(choices), help="Zoo models, and the model files under WORKSPACE/models")]
    framework = cols[1].selectbox("Framework", choice.frameworks, disabled=not choice.zoo,
                                  help="The framework a zoo model is built in (a model file's is its format)")
    with st.form("optimize"):
        cols = st.columns(3)
        devices = [name for name, _ in PROFILES.items()]
        device = cols[0].selectbox("Device profile", devices, index=devices.index("host") if "host" in devices else 0)
        budget = cols[1].number_input("Budget (points lost)", 0.0, 100.0, 1.0, step=0.25,
                                      help="Accuracy points with labels, else 100 x (1 - agreement) / (1 - cosine)")
        objective = cols[2].selectbox("Objective", ["size", "latency"],
                                      help="What the pick minimises; latency measures on the device profile")
        routes = routes_from(framework)
        targets = st.multiselect("Targets", routes, default=routes, key=f"optimize_targets_{framework}")
        submitted = st.form_submit_button("Start", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return
    if not targets:
        st.error(f"Pick at least one target. Targets from {framework}: {', '.join(routes)}.")
        return
    try:
        path = expected_state_path(ws, choice, framework, device, float(budget), objective, tuple(targets))
    except PipelineError as exc:
        st.error(str(exc))
        return
    running = _job_of(path)
    if running is not None and running.running:
        st.warning(f"This search is already running ({running.elapsed():.0f} s); it is shown below.")
    else:
        command = optimize_command(ws, choice.argument, device, float(budget), objective, targets,
                                   framework if choice.zoo else None)
        board.start(ws, TITLE + path.stem, [command])
        st.toast(f"Started: optimize {choice.label} for {device}", icon=":material/play_arrow:")
    st.session_state["optimize_search"] = path.stem


def _searches() -> list[str]:
    """Searches of running jobs that have not written a round yet, then the workspace's state files, newest first
    (by file stem: the model, framework, device, objective and budget)."""
    kept = [p.stem for p in list_searches(ws)]
    pending = [job.title.removeprefix(TITLE) for job in board.running() if job.title.startswith(TITLE)]
    return list(dict.fromkeys([p for p in pending if p not in kept] + kept))


def _job_status(job: Job) -> None:
    if job.running:
        st.info(f"Running for {job.elapsed():.0f} s; this view refreshes on its own.", icon=":material/autorenew:")
        if st.button("Cancel the search", key=f"cancel-{job.id}"):
            job.cancel()
    elif not job.ok:
        st.error(f"The search stopped (exit {job.returncode}); the end of its output is below.")
    with st.expander("Output", expanded=not job.running and not job.ok):
        st.code(job.tail() or "(no output yet)", language="text")
        st.caption(f"Log: `{job.log}`")


def _show(state: dict, path: Path) -> None:
    from pipeline.optimize.report import headline

    pick = state.get("pick")
    (st.success if pick else st.warning)(headline(state), icon=":material/target:" if pick else ":material/info:")
    if pick and pick.get("artifact_dir"):
        st.page_link("views/detail.py", label=f"Open {pick['label']}", icon=":material/description:",
                     query_params={"artifact": pick["artifact_dir"]})
    cols = st.columns(4)
    cols[0].metric("Candidates tried", len(state["candidates"]))
    cols[1].metric("Rounds", len(state["rounds"]))
    cols[2].metric("Not tried", len(state.get("skipped", [])))
    cols[3].metric("Search time", f"{state.get('seconds', 0):.0f} s" + ("" if state.get("done") else " so far"))

    points = front_points(state)
    st.subheader("Pareto front")
    if points.empty:
        st.info("No candidate has a score" + ("." if state.get("done") else " yet."))
    else:
        st.altair_chart(charts.optimize_front_chart(points, axis_title(state), budget_points(state)), width="stretch")
        unscored = len(state["candidates"]) - len(points)
        st.caption("Each candidate a point (green within the budget, grey over it; shape = target); the dashed line "
                   "joins the front, the red rule is the budget, the ringed point the pick."
                   + (f" {unscored} candidate(s) without a score (failed, or not measured) are not drawn." if unscored else ""))
    st.subheader("Candidates")
    st.dataframe(candidate_table(state), column_config=COLUMNS, hide_index=True, width="stretch")
    skipped = not_tried(state)
    if skipped:
        st.subheader("Not tried")
        st.markdown("\n".join(f"- {line}" for line in skipped))
    reports = [p for p in (path.with_suffix("") / "report.html", path.with_suffix("") / "report.md") if p.is_file()]
    if reports:
        st.caption("Report: " + ", ".join(f"`{p}`" for p in reports))


with st.expander("Start a search", expanded=not list_searches(ws)):
    _start_form()

st.subheader("Searches")
options = _searches()
if not options:
    st.info(f"No searches yet in `{ws.root / 'optimize'}`: start one above, or run "
            f"`pipeline optimize digits-cnn --workspace {ws.root}`.")
    st.stop()
if st.session_state.get("optimize_search") not in options:
    st.session_state["optimize_search"] = options[0]
chosen = ws.root / "optimize" / f"{st.selectbox('Search', options, key='optimize_search')}.json"
watched = _job_of(chosen)
polling = watched is not None and watched.running


@st.fragment(run_every=2.0 if polling else None)
def search_panel() -> None:
    """Re-rendered every two seconds on its own while the search's job runs; a full rerun when it ends."""
    job = _job_of(chosen)
    if job is not None:
        _job_status(job)
    state = read_state(chosen)
    st.caption(search_progress(state))
    if state is not None:
        _show(state, chosen)
    if polling and job is not None and not job.running:
        st.rerun(scope="app")


search_panel()
