"""Selective (mixed-precision) quantization: which layers to keep in float, by name or as the K worst of a ranking.

`--keep-float conv2d_1,dense` names layers (as `pipeline debug` prints them); `--keep-float auto:K` exports the
plain quantized artifact first, ranks its layers (`pipeline debug`) and keeps the K layers that add the most
noise (largest `share`) in float.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.layer_errors import DEBUG_FILE, DEBUG_SCHEMA_VERSION, REPRESENTATION_OPS

AUTO = "auto:"


def parse_keep_float(text: str) -> tuple[tuple[str, ...], int | None]:
    """'a,b' -> (('a', 'b'), None); 'auto:3' -> ((), 3). Raises ConfigError for an empty list or a bad K."""
    text = text.strip()
    if text.startswith(AUTO):
        count = text[len(AUTO):]
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"--keep-float {text}: K must be an integer >= 1 (auto:2 keeps the 2 layers that add "
                              "the most quantization noise in float).")
        return (), int(count)
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise ConfigError(f"--keep-float '{text}' names no layer. Write LAYER[,LAYER...] (names from `pipeline "
                          "debug ARTIFACT_DIR`) or auto:K.")
    return names, None


def worst_layers(ranking: dict[str, Any], count: int) -> tuple[str, ...]:
    """The layers to keep in float for the `count` layers adding the most noise (largest share, then lowest SQNR):
    each of those, then the layers its output must cross in float to reach the next weighted layer (`keep_with`:
    kept alone, its output would be quantized again on the way)."""
    layers = sorted((layer for layer in ranking.get("layers", []) if layer.get("op") not in REPRESENTATION_OPS),
                    key=lambda layer: (-layer.get("share", 0.0), layer["sqnr_db"]))  # (de)quantize: no float twin
    culprits = list(dict.fromkeys(layer["layer"] for layer in layers))[:count]
    carried = {layer["layer"]: layer.get("keep_with", []) for layer in layers}
    return tuple(dict.fromkeys(name for culprit in culprits for name in (culprit, *carried[culprit])))


def ranking_of(artifact_dir: Path) -> dict[str, Any]:
    """The artifact's layer ranking: its debug.json when one was written for it, else a fresh `pipeline debug`."""
    from pipeline.debug import debug_artifact

    saved = artifact_dir / DEBUG_FILE
    if saved.is_file():
        ranking = json.loads(saved.read_text())
        if ranking.get("layers") is not None and ranking.get("schema_version") == DEBUG_SCHEMA_VERSION:
            return ranking
    return debug_artifact(artifact_dir)


def resolve_auto(bundle: Any, target: str, quantization: Any, count: int, stages: Any = (),
                 scratch: Path | None = None) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Export `bundle` with `quantization` minus its keep_float into a scratch directory, rank its layers, and
    return the `count` worst layer names with a summary of the ranking they came from.

    Raises UnsupportedRouteError where the target's artifacts cannot be ranked, ConfigError when nothing ranks.
    """
    from pipeline.core.errors import UnsupportedRouteError
    from pipeline.export import export_bundle, rank_layers

    plain = replace(quantization, keep_float=())
    with tempfile.TemporaryDirectory(prefix="keep-float-auto-", dir=scratch) as tmp:
        first = export_bundle(bundle, target, plain, Path(tmp) / "plain", stages=stages, run_validation=False)
        ranking = rank_layers(bundle, target, first.out_dir / first.manifest["model_file"], plain)
    if ranking.get("skipped"):
        raise UnsupportedRouteError(f"--keep-float auto:{count} ranks the layers of the plain {plain.mode} artifact "
                                    f"first, and this one cannot be ranked: {ranking['reason']}. Name the layers "
                                    "instead (--keep-float LAYER[,LAYER...]).")
    names = worst_layers(ranking, count)
    if not names:
        raise ConfigError(f"--keep-float auto:{count}: the ranking matched no layer to the float model, so there is "
                          "nothing to keep in float; name the layers instead.")
    summary = {"requested": f"{AUTO}{count}", "layers": list(names), "ranked_by": "share of the added noise",
               "ranking": [{k: layer[k] for k in ("layer", "op", "sqnr_db", "share")}
                           for layer in ranking["layers"] if layer["layer"] in names]}
    return names, summary
