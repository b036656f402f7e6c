"""The tutorial notebooks run end to end, in a fresh kernel and a temporary workspace, so they cannot rot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["quickstart.ipynb"])
def test_notebook_runs_end_to_end(name, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the failing cell
    print(f"{name} ran in {time.perf_counter() - started:.1f} s")
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    artifacts = {p.name for p in (tmp_path / "workspace" / "artifacts").iterdir()}
    assert artifacts == {"digits-tflite-none", "digits-tfjs-fp16", "digits-tflite-dynamic-int8", "digits-executorch-none"}
    assert (tmp_path / "workspace" / "results.sqlite").is_file()
    chart = notebook.cells[-1]["outputs"][0]["data"]
    assert "vega" in chart.get("text/html", "") + " ".join(chart)  # the chart rendered (a Vega-Lite spec)
