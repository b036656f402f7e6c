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


def devices() -> pd.DataFrame:
    """The device profiles `bench(device=...)` takes: cores, threads, memory cap, delegates, published anchor."""
    import pandas as pd

    from device_runtime.profiles import PROFILES

    return pd.DataFrame([{"profile": name, "cores": p.cores, "threads": p.threads, "memory_mb": p.memory_mb,
                          "delegates": list(p.delegates), "emulated": p.emulated,
                          "anchor_published_ms": p.anchor.published_ms if p.anchor else None,
                          "anchor_threads": p.anchor.threads if p.anchor else None, "description": p.description}
                         for name, p in PROFILES.items()])
