"""`pipeline optimize MODEL --device PROFILE --max-accuracy-drop PTS --objective size|latency [--targets ...]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError


def add_optimize_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, command: Any) -> None:
    """The `optimize` subcommand; `command` registers it the way every other subcommand is (`_command`)."""
    from pipeline.cli.options import DEVICES, EXECUTORS, FRAMEWORKS, with_choices

    optimize = command(sub, common, "optimize", "find the smallest (or fastest) artifact of a model for a device "
                       "within an accuracy budget: techniques searched over the targets, cheapest first, through the "
                       "sweep's cache (a re-run is instant, a killed run resumes)", cmd_optimize,
                       "print the search's result as JSON")
    optimize.add_argument("model", help="zoo model name (see `pipeline zoo`), .keras file, SavedModel dir, .pt2 file "
                          "or package.module:factory")
    with_choices(optimize.add_argument("--framework", help="zoo model: the framework to build it in (default: the "
                                       "only one, or keras)"), FRAMEWORKS)
    with_choices(optimize.add_argument("--device", default="host", help="device profile (default: host)"),
                 DEVICES)
    optimize.add_argument("--max-accuracy-drop", type=float, default=1.0, metavar="PTS",
                          help="budget in points: accuracy points with labels, else 100 x (1 - top-1 agreement), "
                               "100 x (1 - cosine) for embeddings, 100 x relative L2 for dense outputs (default: 1)")
    optimize.add_argument("--objective", default="size", choices=["size", "latency"],
                          help="what the pick minimises (default: size; latency measures on --device)")
    optimize.add_argument("--targets", help="comma-separated targets (default: every target the model has a route to)")
    with_choices(optimize.add_argument("--executor", default="local", help="where cells run (default: local)"),
                 EXECUTORS)
    optimize.add_argument("--address", help="Ray cluster address for --executor ray")
    optimize.add_argument("--workers", type=int, metavar="N", help="exports side by side (as `pipeline sweep`)")
    optimize.add_argument("--store", help="SQLite results store (default: WORKSPACE/results.sqlite)")
    for name, text in (("eval-data", "evaluation data"), ("calibration", "int8 calibration data"),
                       ("train-data", "training data for pruning and QAT")):
        optimize.add_argument(f"--{name}", metavar="FILE.npz", help=f"model file: {text} (one array per input name)")
    optimize.add_argument("--input-spec", metavar="NAME:SHAPE:DTYPE[,...]", help="model file: every input's spec")
    optimize.add_argument("--task", help="model file: how validation judges outputs (default: auto)")


def cmd_optimize(args: argparse.Namespace) -> int:
    from pipeline.cli.commands import _lines, framework_output
    from pipeline.cli.options import store_path
    from pipeline.optimize import OptimizeRequest, model_spec, optimize, state_path, targets_for
    from pipeline.optimize.report import format_result
    from pipeline.sweep.executors import make_executor

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}.")
    model = model_spec(args.model, framework=args.framework, eval_data=args.eval_data, calibration=args.calibration,
                       train_data=args.train_data, input_spec=args.input_spec, task=args.task)
    request = OptimizeRequest(model, args.device, args.max_accuracy_drop, args.objective,
                              targets_for(model.framework, args.targets.split(",") if args.targets else None))
    workspace = Path(args.workspace)
    with framework_output(args) as terminal:
        executor = make_executor(args.executor, args.address, workers=args.workers)
        try:
            out = _lines(args, sys.stderr if args.json else terminal)  # stdout holds only the JSON
            result = optimize(request, workspace, store_path(args), executor, out=out,
                              cell_out=out if args.verbosity == "verbose" else None)
        finally:
            executor.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(format_result(result))
    print(f"search: {state_path(workspace, request)}; report: {', '.join(result['report'])}")
    return 0
