"""`results()`, `routes()`, `zoo()`, `devices()`: the pipeline's tables as pandas DataFrames."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.api.measuring import store_path

if TYPE_CHECKING:
    import pandas as pd


def results(store: str | Path | None = None, *, workspace: str | Path = "workspace") -> pd.DataFrame:
    """The leaderboard the app and the report show: one row per latest ok measurement of each artifact, runtime,
    delegate, device and thread count, with latency statistics, size, accuracy and a `pareto` flag.

    `store` defaults to WORKSPACE/results.sqlite; a store that does not exist gives an empty DataFrame.
    """
    from pipeline.leaderboard import leaderboard

    return leaderboard(store_path(store, workspace))


def routes() -> pd.DataFrame:
    """Which source framework reaches which target, through which converter chain, with its quantization modes."""
    import pandas as pd

    from exporters import route_table

    return pd.DataFrame([{"source": framework, "target": target, "quantize": list(modes), "chain": chain}
                         for framework, target, modes, chain in route_table()])


def zoo() -> pd.DataFrame:
    """The reference models: dataset, frameworks they are built in, minimum test accuracy, description."""
    import pandas as pd

    from pipeline.zoo import ZOO

    return pd.DataFrame([{"model": name, "dataset": entry.dataset, "frameworks": list(entry.builders),
                          "min_test_accuracy": entry.min_test_accuracy, "description": entry.description}
                         for name, entry in ZOO.items()])


def devices(*, workspace: str | Path = "workspace") -> pd.DataFrame:
    """The device profiles `bench(device=...)` takes: cores, threads, memory cap, delegates, the published anchors
    per precision, and each precision's calibration status on this host (from `workspace`'s calibrations)."""
    import pandas as pd

    from device_runtime.profiles import PROFILES
    from pipeline.calibration import host_key
    from pipeline.core.emulation import profile_status, read_calibrations

    calibrations, host = read_calibrations(Path(workspace)), host_key()
    rows = []
    for name, p in PROFILES.items():
        precisions = ["fp32", "int8", *sorted({a.precision for a in p.anchors} - {"fp32", "int8"})]
        rows.append({"profile": name, "cores": p.cores, "threads": p.threads, "memory_mb": p.memory_mb,
                     "delegates": list(p.delegates), "emulated": p.emulated,
                     "anchors": {a.precision: a.published_ms for a in p.anchors},
                     "anchor_threads": p.anchor.threads if p.anchor else None,
                     **{f"calibration_{precision}": profile_status(calibrations, p, precision, host).text()
                        for precision in precisions},
                     "description": p.description})
    return pd.DataFrame(rows)
