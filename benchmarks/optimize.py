"""`pipeline optimize` against the equivalent full grid: the pick, the best single technique, and the time of each.

Run: .venv/bin/python benchmarks/optimize.py [--model mobilenet-v2-shapes] [--framework torch]
        [--targets tflite,executorch] [--device pixel-3a-1t] [--objective size|latency] [--budget 1]
     .venv/bin/python benchmarks/optimize.py --outliers [--framework keras]
Targets: the pick is at least as small (size) or as fast (latency) as the best single technique within budget in
the grid, and the search takes at most half the grid's time (both from an empty workspace, one after the other).
--outliers: on a model whose plain int8 misses the budget (outlier channels set its activation ranges), selective
int8 from the layer ranking holds the budget and keeps at least 80% of int8's size saving over fp32.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")

GRID_LAYERS = (1, 2, 4)  # selective int8 in the grid: the 1, 2 and 4 noisiest layers kept in float


def grid_search(request: Any, workspace: Path, executor: Any) -> dict[str, Any]:
    """Every technique of the search space on every target, with no branch cut: the grid optimize is measured
    against (measuring every candidate for latency, not only those within budget)."""
    from exporters import modes_for
    from pipeline.optimize.candidates import PRUNE_LEVELS, Candidate, first_round
    from pipeline.optimize.search import Search, prunable_refusal

    class Grid(Search):
        measure_all = True

        def run(self) -> dict[str, Any]:
            framework = request.model.framework
            candidates = first_round(request.targets, lambda target: modes_for(framework, target))
            for target in request.targets:
                modes = modes_for(framework, target)
                if "int8" in modes:
                    candidates.append(Candidate(target, "int8", per_channel=False))
                    if not prunable_refusal(framework):
                        candidates += [Candidate(target, "int8", prune=f"channels:{r}") for r in PRUNE_LEVELS]
                if "qat-int8" in modes:
                    candidates.append(Candidate(target, "qat-int8"))
            self.evaluate(1, candidates)
            selective = []
            for target in request.targets:
                int8 = self.verdicts.get(Candidate(target, "int8").key)
                if int8 is None or self._selective_refusal(framework, target):
                    continue
                for count in GRID_LAYERS:
                    names = self._worst_layers(int8, count)
                    if names and all(c.keep_float != names for c in selective):
                        selective.append(Candidate(target, "int8", keep_float=names))
            if selective:
                self.evaluate(2, selective)
            return self.result()

    return Grid(request, workspace, workspace / "results.sqlite", executor, out=lambda line: None).run()


def best_single(result: dict[str, Any], objective: str) -> dict[str, Any] | None:
    """The best candidate within budget that applies one technique (no pruning, no layers kept in float)."""
    field = "size_bytes" if objective == "size" else "p50_ms"
    single = [c for c in result["candidates"] if c["within_budget"] and not c["prune"] and not c["keep_float"]
              and c.get(field) is not None]
    return min(single, key=lambda c: c[field], default=None)


def timed(run: Any) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    result = run()
    return result, time.perf_counter() - started


def compare(request: Any, keep: str | None) -> None:
    from pipeline.optimize import optimize
    from pipeline.sweep.executors import make_executor

    field = "size_bytes" if request.objective == "size" else "p50_ms"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(keep or scratch)
        grid_ws, search_ws = root / "grid", root / "optimize"
        executor = make_executor("local")
        try:
            grid, grid_s = timed(lambda: grid_search(request, grid_ws, executor))
            search, search_s = timed(lambda: optimize(request, search_ws, search_ws / "results.sqlite", executor,
                                                      out=lambda line: None))
        finally:
            executor.close()
    single, pick = best_single(grid, request.objective), search["pick"]
    print(f"{request.model.name} ({request.model.framework}) on {request.device}, objective {request.objective}, "
          f"budget {request.max_drop_points:g} pts, targets {', '.join(request.targets)}")
    print(f"  grid:     {len(grid['candidates'])} candidates in {grid_s:7.1f} s; best single technique within budget: "
          + (f"{single['label']} = {single[field]:.6g}" if single else "none"))
    print(f"  optimize: {len(search['candidates'])} candidates in {search_s:7.1f} s "
          f"({len(search['skipped'])} not tried); pick: "
          + (f"{pick['label']} = {pick[field]:.6g} (loses {pick['drop_points']:.2f} pts)" if pick else "none"))
    if single and pick:
        print(f"  pick / best single: {pick[field] / single[field]:.3f} (target <= 1); "
              f"time optimize / grid: {search_s / grid_s:.2f} (target <= 0.5)")


def outliers(framework: str, budget: float, keep: str | None) -> None:
    from pipeline.optimize import OptimizeRequest, optimize
    from pipeline.sweep.executors import make_executor
    from pipeline.sweep.recipe import ModelSpec
    from pipeline.zoo.outliers import write_outlier_model

    suffix = ".keras" if framework == "keras" else ".pt2"
    targets = ("tflite",) if framework == "keras" else ("tflite", "executorch")
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Path(keep or scratch)
        model = write_outlier_model(framework, workspace / "models" / f"digits-outliers-{framework}{suffix}",
                                    workspace / "models")
        request = OptimizeRequest(ModelSpec(name=model.stem, framework=framework, path=str(model)), "host", budget,
                                  "size", targets)
        executor = make_executor("local")
        try:
            result, seconds = timed(lambda: optimize(request, workspace, workspace / "results.sqlite", executor,
                                                     out=lambda line: None))
        finally:
            executor.close()
    print(f"outlier-channel digits CNN ({framework}), budget {budget:g} pts, objective size: {seconds:.0f} s")
    for target in targets:
        by = {c["key"]: c for c in result["candidates"] if c["target"] == target}
        fp32, int8 = by.get(f"{target}/fp32"), by.get(f"{target}/int8")
        chosen = [c for c in by.values() if c["keep_float"] and c["within_budget"]]
        if not (fp32 and int8):
            print(f"  {target}: fp32 or int8 missing")
            continue
        print(f"  {target}: fp32 {fp32['size_bytes']:,} B; int8 {int8['size_bytes']:,} B, loses "
              f"{int8['drop_points']:.2f} pts ({'within' if int8['within_budget'] else 'over'} budget)")
        if not chosen:
            print(f"  {target}: no selective int8 candidate holds the budget")
            continue
        best = min(chosen, key=lambda c: c["size_bytes"])
        kept = (fp32["size_bytes"] - best["size_bytes"]) / (fp32["size_bytes"] - int8["size_bytes"])
        print(f"  {target}: selective int8 keeping {', '.join(best['keep_float'])} in float: {best['size_bytes']:,} B, "
              f"loses {best['drop_points']:.2f} pts; keeps {kept:.0%} of int8's size saving (target >= 80%)")
    pick = result["pick"]
    print(f"  pick: {pick['label']} ({pick['size_bytes']:,} B)" if pick else "  pick: none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet-v2-shapes")
    parser.add_argument("--framework", default="torch")
    parser.add_argument("--targets", default="tflite,executorch")
    parser.add_argument("--device", default="pixel-3a-1t")
    parser.add_argument("--objective", default="size", choices=["size", "latency"])
    parser.add_argument("--budget", type=float, default=1.0, help="points")
    parser.add_argument("--outliers", action="store_true", help="the selective-quantization target instead")
    parser.add_argument("--keep", help="keep the workspaces in this directory")
    args = parser.parse_args()

    if args.outliers:
        outliers(args.framework, args.budget, args.keep)
        return
    from pipeline.optimize import OptimizeRequest
    from pipeline.sweep.recipe import ModelSpec

    request = OptimizeRequest(ModelSpec(name=args.model, framework=args.framework), args.device, args.budget,
                              args.objective, tuple(args.targets.split(",")))
    compare(request, args.keep)


if __name__ == "__main__":
    main()
