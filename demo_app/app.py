"""The comparison app's entry point: `streamlit run demo_app/app.py -- --workspace DIR` (or `pipeline app`)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts demo_app/, not the repository, on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from demo_app.ui import workspace  # noqa: E402

st.set_page_config(page_title="Edge model pipeline", page_icon=":material/memory:", layout="wide")
PAGES = [
    st.Page("views/compare.py", title="Compare", icon=":material/leaderboard:", default=True),
    st.Page("views/detail.py", title="Artifact detail", icon=":material/description:", url_path="detail"),
    st.Page("views/try_it.py", title="Try it", icon=":material/draw:", url_path="try"),
    st.Page("views/run.py", title="Run", icon=":material/play_circle:", url_path="run"),
    st.Page("views/optimize.py", title="Optimize", icon=":material/tune:", url_path="optimize"),
]
page = st.navigation(PAGES)
st.sidebar.caption(f"Workspace: `{workspace().root}`")
page.run()
