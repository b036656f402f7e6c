"""The leaderboard table: the report's entries with their latency statistics and Pareto flag, as a DataFrame.

The app's comparison page and `pipeline.results()` show this same table. Each row carries its task and task
metric (`task`, `metric` label, `metric_value`: `pipeline.report.task_metric`); `accuracy` stays the
classification accuracy (None for other tasks).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.report import Entry, load_entries, pareto_front
from pipeline.results import fetch_measurements, open_store

if TYPE_CHECKING:
    import pandas as pd

# result fields shown beside an entry's p50/p90 (from the measurement's row and its result JSON)
STATS = ("latency_ms_p99", "latency_ms_mean", "latency_ms_std", "latency_ms_min", "latency_ms_max", "latency_cv",
         "runs", "load_ms", "first_inference_ms", "peak_rss_bytes")


def _stats(store: Path) -> dict[int, dict[str, Any]]:
    with open_store(store) as connection:
        rows = fetch_measurements(connection, status="ok")
    return {row["id"]: {**json.loads(row["result_json"] or "{}"), **{k: row[k] for k in STATS if k in row}} for row in rows}


def pareto_ids(entries: list[Entry]) -> set[int]:
    """Measurement ids on the Pareto front of their (model, device) group, artifacts competing per task metric."""
    front: set[int] = set()
    for key in {(e.model, e.device) for e in entries}:
        front |= pareto_front([e for e in entries if (e.model, e.device) == key])
    return front


def leaderboard(store: Path) -> pd.DataFrame:
    """One row per latest ok measurement (`pipeline.report.load_entries`) with its STATS and `pareto` flag.

    An empty DataFrame when the store does not exist (reading never creates one) or holds no ok measurement.
    """
    import pandas as pd

    if not Path(store).is_file():
        return pd.DataFrame()
    entries = load_entries(Path(store))
    if not entries:
        return pd.DataFrame()
    front = pareto_ids(entries)
    stats = _stats(Path(store))
    rows = []
    for entry in entries:
        extra = stats.get(entry.measurement_id, {})
        rows.append({**asdict(entry), **{k: extra.get(k) for k in STATS}, "pareto": entry.measurement_id in front,
                     "runtime_delegate": f"{entry.runtime}/{entry.delegate}"})
    return pd.DataFrame(rows)
