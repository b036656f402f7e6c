# PYTHON_ARGCOMPLETE_OK
"""The `pipeline` command: parser and entry point. Heavy frameworks are imported inside the subcommands only.

Start-up stays light: choices are read from the registries when argparse first needs them
(`pipeline.cli.options`), and the frameworks' log levels are set before any of them imports.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.cli.commands import (
    EXIT_VALIDATION_FAILED,
    cmd_app,
    cmd_bench,
    cmd_debug,
    cmd_demo,
    cmd_devices,
    cmd_export,
    cmd_import_results,
    cmd_report,
    cmd_routes,
    cmd_serve_bench,
    cmd_sweep,
    cmd_train,
    cmd_zoo,
    parse_shape,
)
from pipeline.cli.optimize import add_optimize_parser, cmd_optimize
from pipeline.cli.options import (
    CALIBRATABLE,
    DELEGATES,
    DEVICES,
    EXECUTORS,
    EXPORT_DELEGATES,
    FRAMEWORKS,
    MODES,
    RUNTIME_NAMES,
    TARGETS,
    TASKS,
    ZOO_MODELS,
    HelpFormatter,
    VersionAction,
    add_common,
    parse_bool,
    with_choices,
)
from pipeline.core.console import quiet_frameworks, quiet_python, set_verbosity
from pipeline.core.errors import PipelineError

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1

# the handlers are looked up here when the parser is built (tests replace one with monkeypatch)
__all__ = ["EXIT_INTERNAL_ERROR", "EXIT_USER_ERROR", "EXIT_VALIDATION_FAILED", "build_parser", "main", "parse_shape",
           "cmd_app", "cmd_bench", "cmd_debug", "cmd_demo", "cmd_devices", "cmd_export", "cmd_import_results", "cmd_optimize", "cmd_report",
           "cmd_routes", "cmd_serve_bench", "cmd_sweep", "cmd_train", "cmd_zoo"]


def _command(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, name: str, help: str,
             handler: object, json_help: str | None = None) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".", parents=[common],
                            formatter_class=HelpFormatter)
    if json_help:
        parser.add_argument("--json", action="store_true", help=json_help)
    parser.set_defaults(handler=handler, command=name)
    return parser


def _measurement_options(bench: argparse.ArgumentParser) -> None:
    """The recipe's `measure` names (warmup_runs, min_runs, min_duration_s, timeout_s), with benchmark_model's aliases."""
    from pipeline.sweep.recipe import MeasureSpec

    spec = MeasureSpec()
    bench.add_argument("--threads", "--num_threads", type=int, metavar="N", help="runtime threads (default: the profile's)")
    bench.add_argument("--warmup-runs", "--warmup_runs", "--warmup", dest="warmup_runs", type=int,
                       default=spec.warmup_runs, metavar="N", help="warm-up runs excluded from timing (default: %(default)s)")
    bench.add_argument("--min-runs", "--num_runs", dest="min_runs", type=int, default=spec.min_runs, metavar="N",
                       help="at least this many timed runs (default: %(default)s)")
    bench.add_argument("--min-duration-s", "--min_secs", "--min-seconds", dest="min_duration_s", type=float,
                       default=spec.min_duration_s, metavar="SECONDS", help="and at least this long (default: %(default)s)")
    bench.add_argument("--timeout-s", "--timeout", dest="timeout_s", type=float, default=spec.timeout_s,
                       metavar="SECONDS", help="kill the worker after this long (default: %(default)s)")


def _bench_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    bench = _command(sub, common, "bench", "measure artifacts or model files in an isolated worker; results go to the "
                     "results store", cmd_bench, "print the measurements as JSON")
    bench.add_argument("artifacts", nargs="+", metavar="ARTIFACT",
                       help="artifact directory written by `pipeline export`, or a model file: .tflite, .pte, "
                            "TF.js model.json")
    bench.add_argument("--input", metavar="FILE.npz|synthetic",
                       help="samples to run on: an .npz with one array per input name ('x' for a single input) and "
                            "labels 'y', or 'synthetic' (seeded values per input: floats in its range, masks all ones, "
                            "integer inputs in [0, 100); the default for a model file, recorded as such)")
    with_choices(bench.add_argument("--runtime", help="default: the artifact's"), RUNTIME_NAMES)
    with_choices(bench.add_argument("--delegate", help="default: the runtime's first"), DELEGATES)
    bench.add_argument("--use_xnnpack", type=parse_bool, nargs="?", const=True, metavar="true|false",
                       help="benchmark_model's spelling: true = --delegate xnnpack, false = the runtime's own kernels")
    bench.add_argument("--use_gpu", type=parse_bool, nargs="?", const=True, metavar="true|false",
                       help="benchmark_model's spelling of --delegate gpu")
    with_choices(bench.add_argument("--device", default="host", help="device profile (default: host)"), DEVICES)
    _measurement_options(bench)
    bench.add_argument("--store", help="SQLite results store (default: WORKSPACE/results.sqlite)")


def _export_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    export = _command(sub, common, "export", "export a model to an on-device format and validate it",
                      cmd_export, "print the manifest as JSON")
    export.add_argument("model", help=".keras file, SavedModel dir, .pt2 file, or package.module:factory")
    with_choices(export.add_argument("--target", default="tflite", help="target format (default: tflite)"), TARGETS)
    with_choices(export.add_argument("--quantize", default="none", help="quantization mode; `pipeline routes` shows "
                                     "which each route expresses (default: none)"), MODES)
    export.add_argument("--out", help="artifact directory (default: WORKSPACE/artifacts/MODEL-TARGET-MODE)")
    export.add_argument("--prune", help="prune before export: 0.5 (magnitude sparsity) or channels:0.3 (structured)")
    with_choices(export.add_argument("--delegate", help="executorch: none = portable kernels (default: xnnpack)"),
                 EXPORT_DELEGATES)
    export.add_argument("--shard-size", dest="shard_size_bytes", type=int,
                        help="tfjs: weight shard size in bytes (default: 4194304)")
    export.add_argument("--weights", help="state dict for a package.module:factory model (loaded with weights_only)")
    export.add_argument("--input-shape", help="one float input's shape, batch first, when the model cannot tell "
                        "(e.g. 1,3,64,64)")
    export.add_argument("--input-spec", metavar="NAME:SHAPE:DTYPE[,...]",
                        help="every input's name, shape and dtype (e.g. input_ids:1x128:int64,attention_mask:1x128:int64)"
                             "; fixes dynamic dimensions such as the sequence length")
    data = "(.npz: one array per input name, 'x' for a single input, optional labels 'y'; default: the model card's)"
    export.add_argument("--eval-data", metavar="FILE.npz", help=f"data to validate on {data}")
    export.add_argument("--calibration", metavar="FILE.npz", help=f"int8 calibration data {data}")
    export.add_argument("--train-data", metavar="FILE.npz", help=f"training data for stages that fine-tune {data}")
    export.add_argument("--finetune-epochs", type=int, metavar="N",
                        help="fine-tuning epochs of pruning/QAT (0 = one-shot; default: the stage's)")
    export.add_argument("--calibration-samples", type=int, default=200, help="int8 calibration samples (default: 200)")
    export.add_argument("--per-tensor", action="store_true", help="int8: one scale per tensor (default: per channel)")
    export.add_argument("--keep-float", metavar="LAYER[,LAYER...]|auto:K",
                        help="selective quantization: leave these layers in float (names from `pipeline debug`), or "
                             "auto:K, the K layers that add the most noise in a plain quantized export")
    with_choices(export.add_argument("--task", help="how validation judges outputs (default: the card's, else auto)"),
                 TASKS)
    export.add_argument("--tolerance", action="append", metavar="NAME=VALUE", default=[],
                        help="override a validation tolerance (repeatable; e.g. min_cosine_mean=0.98)")
    export.add_argument("--no-validate", action="store_true", help="skip validation (recorded in the manifest)")
    export.add_argument("--debug-layers", action="store_true",
                        help="quantized .tflite: rank the layers by their error against a float export of the same "
                             "model (manifest `layer_debug` and debug.json; see `pipeline debug`)")


def _sweep_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sweep = _command(sub, common, "sweep", "run a recipe grid (cached, resumable) into the results store",
                     cmd_sweep)
    sweep.add_argument("recipe", nargs="?", help="recipe YAML (default: the bundled default recipe)")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan and what is cached; do nothing")
    sweep.add_argument("--print-schema", action="store_true",
                       help="print the recipe's JSON Schema (for editors to complete and check recipe files); do nothing")
    sweep.add_argument("--no-wait", action="store_true",
                       help="leave cells another sweep on this workspace is working on to it, instead of waiting")
    with_choices(sweep.add_argument("--executor", default="local", help="where cells run (default: local)"), EXECUTORS)
    sweep.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local instance)")
    sweep.add_argument("--workers", type=int, metavar="N",
                       help="exports side by side (local: processes, default one per usable core; ray: CPUs of the "
                            "local instance)")
    sweep.add_argument("--store", help="SQLite results store (default: WORKSPACE/results.sqlite)")
    sweep.add_argument("--report", action="store_true", help="write the HTML + Markdown report when done")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Export Keras and PyTorch models to TFLite/LiteRT, TF.js and ExecuTorch, validated on real data, "
                    "and measure them.",
        epilog="Every command reads and writes under --workspace: models/, artifacts/, logs/, results.sqlite, "
               "calibration.json, report/.",
    )
    parser.add_argument("--version", action=VersionAction, help="print the version and exit")
    add_common(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    add_common(common, top=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(sub, common, "zoo", "list the reference models", cmd_zoo, "print the list as JSON")
    _command(sub, common, "routes", "show which source frameworks reach which targets, with the --quantize modes of "
             "each", cmd_routes, "print the routes as JSON")

    train = _command(sub, common, "train", "train a reference model on its bundled dataset", cmd_train)
    with_choices(train.add_argument("name", help="zoo model (see `pipeline zoo`)"), ZOO_MODELS)
    with_choices(train.add_argument("--framework", required=True), FRAMEWORKS)
    train.add_argument("--out", help="model file, .keras or .pt2 (default: WORKSPACE/models/NAME-FRAMEWORK.SUFFIX)")
    train.add_argument("--seed", type=int, default=None, help="training and split seed (default: the zoo's)")

    _export_parser(sub, common)
    devices = _command(sub, common, "devices", "list emulated device profiles (and calibrate their throttle)",
                       cmd_devices, "print the profiles (or calibrations) as JSON")
    action = devices.add_mutually_exclusive_group()
    with_choices(action.add_argument("--calibrate", metavar="PROFILE", help="re-calibrate PROFILE (or 'all') on "
                                     "this host, each precision it has a published figure for; kept in "
                                     "WORKSPACE/calibration.json"), CALIBRATABLE)
    with_choices(action.add_argument("--check", metavar="PROFILE", nargs="*", help="run the second published points "
                                     "of PROFILE (default: every profile that has some) under the calibrated profile "
                                     "and print published ms, emulated ms and the error; kept in "
                                     "WORKSPACE/calibration-checks.json"), DEVICES)
    _bench_parser(sub, common)
    debug = _command(sub, common, "debug", "rank a quantized artifact's layers by their error (SQNR) against a "
                     "float export of its source, on its evaluation samples", cmd_debug, "print the ranking as JSON")
    debug.add_argument("artifact", metavar="ARTIFACT_DIR", help="quantized .tflite artifact written by `pipeline export`")
    debug.add_argument("--samples", type=int, default=64, metavar="N",
                       help="evaluation samples (from ARTIFACT_DIR/eval.npz) run through both models (default: 64)")

    imports = _command(sub, common, "import-results", "load JSON results from edge_bench.py on a real device",
                       cmd_import_results)
    imports.add_argument("files", nargs="+", help="result files written by device_runtime/device_scripts/edge_bench.py")
    imports.add_argument("--store", help="SQLite results store (default: WORKSPACE/results.sqlite)")

    _sweep_parser(sub, common)
    add_optimize_parser(sub, common, _command)
    report = _command(sub, common, "report", "write the HTML + Markdown report from the results store",
                      cmd_report, "also print the report's entries as JSON")
    report.add_argument("--store", help="SQLite results store (default: WORKSPACE/results.sqlite)")
    report.add_argument("--out", help="output directory (default: WORKSPACE/report)")

    app = _command(sub, common, "app", "start the Streamlit comparison app on the workspace", cmd_app)
    app.add_argument("--port", type=int, default=8501, help="port to serve on (default: 8501)")
    app.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default: 127.0.0.1, this machine only; the app can start exports "
                          "and sweeps, so open it to a network only behind an SSH tunnel or a trusted LAN)")

    serve = _command(sub, common, "serve-bench", "serve TF.js artifacts to a phone's (or any) browser, which "
                     "measures them and posts the results", cmd_serve_bench)
    serve.add_argument("artifacts", nargs="+", help="TF.js artifact directories written by `pipeline export`")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1; 0.0.0.0 lets a phone on your network in)")
    serve.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    serve.add_argument("--timeout", type=float, default=1800.0, help="stop after this many seconds (default: 1800)")
    serve.add_argument("--store", help="SQLite results store (default: WORKSPACE/results.sqlite)")
    serve.add_argument("--warmup-runs", type=int, default=10, metavar="N", help="warm-up runs (default: %(default)s)")
    serve.add_argument("--min-runs", type=int, default=100, metavar="N", help="timed runs at least (default: %(default)s)")
    serve.add_argument("--min-duration-s", type=float, default=2.0, metavar="SECONDS",
                       help="and at least this long per backend (default: %(default)s)")

    demo = _command(sub, common, "demo", "train the reference models, export every route and mode, print a comparison",
                    cmd_demo)
    demo.add_argument("--retrain", action="store_true", help="retrain even if the models exist")
    with_choices(demo.add_argument("--model", action="append", help="zoo model to include (repeatable; default: all)"),
                 ZOO_MODELS)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    if "_ARGCOMPLETE" in os.environ:  # shell completion (argcomplete): answer and exit
        try:
            import argcomplete
        except ImportError:
            return EXIT_USER_ERROR
        argcomplete.autocomplete(parser)
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR


def main(argv: list[str] | None = None) -> int:
    parsed = _parse(build_parser(), argv)
    if isinstance(parsed, int):
        return parsed
    args = parsed
    set_verbosity(args.verbosity)  # before any framework imports, here and in every worker this run starts
    quiet_frameworks()
    quiet_python()
    try:
        return args.handler(args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; no partial artifact was published.", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: say so, keep the traceback, exit 1
        from pipeline.core.errors import internal_error_message, write_traceback

        log = write_traceback(Path(args.workspace) / "logs" / "internal-errors.log", exc)
        print(f"error: {internal_error_message(exc, log)}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
