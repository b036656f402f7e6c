"""The `pipeline` command. Heavy frameworks are imported inside the subcommands only."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError, PipelineError

EXIT_VALIDATION_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def _quiet_frameworks() -> None:
    """Silence framework start-up chatter; real failures still surface as exceptions."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("torchao").setLevel(logging.ERROR)


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,3,64,64' -> (1, 3, 64, 64); ConfigError on anything else."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise ConfigError(f"--input-shape '{text}' must be positive integers separated by commas, batch first, e.g. 1,3,64,64.")
    return shape


def cmd_zoo(args: argparse.Namespace) -> int:
    from pipeline.core.table import format_table
    from pipeline.zoo import ZOO

    rows = [(name, e.dataset, ", ".join(e.builders), f"{e.min_test_accuracy:.0%}", e.description) for name, e in ZOO.items()]
    print(format_table(["model", "dataset", "frameworks", "min accuracy", "description"], rows))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from pipeline.zoo.train import train_zoo_model

    trained = train_zoo_model(args.name, args.framework, Path(args.out) if args.out else None, args.seed)
    print(f"Trained {args.name} ({trained.framework}) in {trained.train_seconds:.1f} s: "
          f"test accuracy {trained.test_accuracy:.2%}. Saved {trained.path} (+ card).")
    return 0


def _load_bundle(args: argparse.Namespace) -> Any:
    from pipeline.core.datasets.npz import load_npz
    from pipeline.intake import load_model

    shape = parse_shape(args.input_shape) if args.input_shape else None
    bundle = load_model(args.model, weights=Path(args.weights) if args.weights else None, input_shape=shape)
    layout = bundle.input_spec.layout
    eval_data = load_npz(Path(args.eval_data), layout) if args.eval_data else None
    calibration = load_npz(Path(args.calibration), layout) if args.calibration else None
    return bundle.with_data(eval_data=eval_data, calibration_data=calibration)


def cmd_export(args: argparse.Namespace) -> int:
    from exporters import EXPORTERS
    from pipeline.export import export_bundle
    from quantize import quantization_config
    from quantize.pruning import parse_prune

    exporter = EXPORTERS.get(args.target)  # fail fast on a bad target, before loading any model
    options = {"calibration_samples": args.calibration_samples} if args.quantize == "int8" else {}
    quantization = quantization_config(args.quantize, **options)
    config = _exporter_config(exporter, args)
    stages = [parse_prune(args.prune)] if args.prune else []
    out = Path(args.out) if args.out else Path("workspace/artifacts") / f"{Path(args.model).stem}-{args.target}-{args.quantize}"
    with contextlib.redirect_stdout(sys.stderr):  # converters print progress; stdout stays for results
        bundle = _load_bundle(args)
        result = export_bundle(bundle, args.target, quantization, out, config=config, stages=stages,
                               run_validation=not args.no_validate)
    manifest = result.manifest
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        _print_export_summary(result.out_dir, manifest)
    if result.validation_passed is False:
        print(f"VALIDATION FAILED for {out}: {'; '.join(manifest['validation']['failures'])}. "
              "The artifact was written with validation.passed = false.", file=sys.stderr)
        return EXIT_VALIDATION_FAILED
    return 0


TARGET_OPTIONS = {"delegate": "--delegate", "shard_size_bytes": "--shard-size"}


def _exporter_config(exporter: Any, args: argparse.Namespace) -> Any:
    """The target's config from the flags that were given; a flag the target does not take is an error."""
    import dataclasses

    given = {name: getattr(args, name) for name in TARGET_OPTIONS if getattr(args, name) is not None}
    accepted = {field.name for field in dataclasses.fields(exporter.config_cls)}
    for name in given.keys() - accepted:
        takes = ", ".join(TARGET_OPTIONS[a] for a in sorted(accepted & TARGET_OPTIONS.keys())) or "no target options"
        raise ConfigError(f"{TARGET_OPTIONS[name]} does not apply to target {exporter.target} (it takes {takes}).")
    return exporter.config_cls(**given)


def _print_export_summary(out_dir: Path, manifest: dict[str, Any]) -> None:
    validation = manifest["validation"]
    print(f"Exported {manifest['source']['path']} -> {out_dir / manifest['model_file']}")
    print(f"  size {manifest['size_bytes']:,} B (gzip {manifest['size_bytes_gzip']:,} B), "
          f"export {manifest['export_seconds']:.2f} s")
    if validation.get("skipped"):
        print("  validation skipped (--no-validate)")
        return
    accuracy = ""
    if validation["source_accuracy"] is not None:
        accuracy = f", accuracy {validation['source_accuracy']:.2%} -> {validation['artifact_accuracy']:.2%}"
    print(f"  validation {'passed' if validation['passed'] else 'FAILED'} on {validation['samples']} samples "
          f"({validation['runtime']}/{validation['delegate']}): top-1 agreement {validation['top1_agreement']:.2%}, "
          f"max abs error {validation['max_abs_error']:.3g}{accuracy}")
    delegation = manifest.get("delegation") or {}
    if delegation:
        print(f"  delegation: {delegation['ops_delegated']}/{delegation['ops_total']} ops on {delegation['delegate']}"
              + (f"; not delegated: {', '.join(delegation['ops_not_delegated'])}" if delegation["ops_not_delegated"] else ""))
    if "warning" in delegation:
        print(f"  WARNING: {delegation['warning']}")


def cmd_routes(args: argparse.Namespace) -> int:
    from exporters import EXPORTERS, modes_for
    from pipeline.core.table import format_table

    rows = [(fw, target, ", ".join(modes_for(fw, target)), chain)
            for target, exporter in EXPORTERS.items() for fw, chain in exporter.routes.items()]
    print(format_table(["source", "target", "--quantize", "converter chain"], rows))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    with contextlib.redirect_stdout(sys.stderr):
        table = run_demo(Path(args.workspace), retrain=args.retrain, models=args.model or None)
    print(table)
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from device_runtime.profiles import PROFILES
    from pipeline.core.table import format_table

    if args.calibrate:
        from pipeline.calibration import calibration_for

        names = [args.calibrate] if args.calibrate != "all" else [n for n, p in PROFILES.items() if p.anchor]
        rows = []
        for name in names:
            record = calibration_for(Path(args.workspace), PROFILES.get(name), refresh=True)
            rows.append((name, record["published_ms"], record["host_ms"], record["active_fraction"],
                         record["emulated_ms"], f"{record['prediction_error']:+.1%}", record["host_threads"]))
        print(format_table(["profile", "published ms", "host ms", "run share", "emulated ms", "error", "threads"], rows))
        return 0
    rows = [(p.name, p.cores, p.threads, p.memory_mb or "-", ", ".join(p.delegates),
             f"{p.anchor.published_ms:g} ms ({p.anchor.threads}t)" if p.anchor else "-", p.description)
            for _, p in PROFILES.items()]
    print(format_table(["profile", "cores", "threads", "memory MiB", "delegates", "anchor", "description"], rows))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pipeline.bench import bench_artifacts

    return bench_artifacts(args)


def cmd_import_results(args: argparse.Namespace) -> int:
    from pipeline.bench import import_results

    return import_results([Path(p) for p in args.files], Path(args.store))


def cmd_sweep(args: argparse.Namespace) -> int:
    from pipeline.sweep.executors import make_executor
    from pipeline.sweep.recipe import DEFAULT_RECIPE, load_recipe
    from pipeline.sweep.runner import dry_run, run_sweep

    recipe = load_recipe(Path(args.recipe) if args.recipe else DEFAULT_RECIPE)
    workspace, store = Path(args.workspace), Path(args.store or Path(args.workspace) / "results.sqlite")
    if args.dry_run:
        dry_run(recipe, workspace, store)
        return 0
    executor = make_executor(args.executor, args.address)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            summary = run_sweep(recipe, workspace, store, executor, wait=not args.no_wait,
                                out=lambda line: print(line, file=sys.__stdout__, flush=True))
    finally:
        executor.close()
    print(f"sweep {recipe.name} finished in {summary.seconds:.0f} s: exports {summary.exports}, benchmarks {summary.benches}")
    for label, error in summary.failures:
        print(f"  FAILED {label}: {error}")
    if summary.elsewhere:
        print(f"  left to another writer (in progress elsewhere, --no-wait): {len(summary.elsewhere)} cells")
    if args.report:
        from pipeline.report import write_report

        paths = write_report(store, workspace / "report")
        print("report: " + ", ".join(str(p) for p in paths))
    return 0 if not summary.failures else 1


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report import write_report

    paths = write_report(Path(args.store), Path(args.out))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from demo_app.launch import launch

    return launch(Path(args.workspace), args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Export Keras and PyTorch models to TFLite/LiteRT, TF.js and ExecuTorch, validated on real data.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("zoo", help="list the reference models").set_defaults(handler=cmd_zoo)
    sub.add_parser("routes", help="show which source frameworks reach which targets, with the --quantize modes of each").set_defaults(handler=cmd_routes)

    train = sub.add_parser("train", help="train a reference model on its bundled dataset")
    train.add_argument("name", help="zoo model name (see `pipeline zoo`)")
    train.add_argument("--framework", required=True, help="keras or torch")
    train.add_argument("--out", help="model file (.keras for keras, .pt2 for torch)")
    train.add_argument("--seed", type=int, default=None, help="training and split seed (default: the zoo's)")
    train.set_defaults(handler=cmd_train)

    export = sub.add_parser("export", help="export a model to an on-device format and validate it")
    export.add_argument("model", help=".keras file, SavedModel dir, .pt2 file, or package.module:factory")
    export.add_argument("--target", default="tflite", help="target format (default: tflite)")
    export.add_argument("--quantize", default="none", help="none, fp16, dynamic-int8, int8 (tflite, executorch); uint8, uint16 (tfjs) (default: none)")
    export.add_argument("--out", help="artifact directory (default: workspace/artifacts/MODEL-TARGET-MODE)")
    export.add_argument("--prune", help="prune before export: 0.5 (magnitude sparsity) or channels:0.3 (structured)")
    export.add_argument("--delegate", help="executorch: xnnpack (default) or none (portable kernels)")
    export.add_argument("--shard-size", dest="shard_size_bytes", type=int,
                        help="tfjs: weight shard size in bytes (default: 4194304)")
    export.add_argument("--weights", help="state dict for a package.module:factory model (loaded with weights_only)")
    export.add_argument("--input-shape", help="input shape, batch first, when the model cannot tell (e.g. 1,3,64,64)")
    export.add_argument("--eval-data", help=".npz with 'x' (and labels 'y') to validate on (default: the model card's)")
    export.add_argument("--calibration", help=".npz with 'x' for int8 calibration (default: the model card's)")
    export.add_argument("--calibration-samples", type=int, default=200, help="int8 calibration samples (default: 200)")
    export.add_argument("--no-validate", action="store_true", help="skip validation (recorded in the manifest)")
    export.add_argument("--json", action="store_true", help="print the manifest as JSON")
    export.set_defaults(handler=cmd_export)

    devices = sub.add_parser("devices", help="list emulated device profiles (and calibrate their throttle)")
    devices.add_argument("--calibrate", metavar="PROFILE", help="re-calibrate PROFILE (or 'all') on this host")
    devices.add_argument("--workspace", default="workspace", help="where the calibration is kept (default: workspace)")
    devices.set_defaults(handler=cmd_devices)

    bench = sub.add_parser("bench", help="measure artifacts in an isolated worker; results go to the SQLite store")
    bench.add_argument("artifacts", nargs="+", help="artifact directories written by `pipeline export`")
    bench.add_argument("--runtime", help="litert, executorch or tfjs-node (default: the artifact's)")
    bench.add_argument("--delegate", help="xnnpack, cpu, gpu (litert); xnnpack, portable (executorch); cpu, wasm (tfjs-node)")
    bench.add_argument("--device", default="host", help="device profile (see `pipeline devices`; default: host)")
    bench.add_argument("--threads", type=int, help="runtime threads (default: the profile's)")
    bench.add_argument("--warmup", type=int, default=10, help="warm-up runs excluded from timing (default: 10)")
    bench.add_argument("--min-runs", type=int, default=100, help="at least this many timed runs (default: 100)")
    bench.add_argument("--min-seconds", type=float, default=2.0, help="and at least this long (default: 2.0)")
    bench.add_argument("--timeout", type=float, default=600.0, help="kill the worker after this many seconds")
    bench.add_argument("--store", default="workspace/results.sqlite", help="SQLite results store")
    bench.add_argument("--workspace", default="workspace", help="where profile calibrations are kept")
    bench.add_argument("--json", action="store_true", help="print the measurements as JSON")
    bench.set_defaults(handler=cmd_bench)

    imports = sub.add_parser("import-results", help="load JSON results from edge_bench.py on a real device")
    imports.add_argument("files", nargs="+", help="result files written by device_runtime/device_scripts/edge_bench.py")
    imports.add_argument("--store", default="workspace/results.sqlite", help="SQLite results store")
    imports.set_defaults(handler=cmd_import_results)

    sweep = sub.add_parser("sweep", help="run a recipe grid (cached, resumable) into the results store")
    sweep.add_argument("recipe", nargs="?", help="recipe YAML (default: the bundled default recipe)")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan and what is cached; do nothing")
    sweep.add_argument("--no-wait", action="store_true",
                       help="leave cells another sweep on this workspace is working on to it, instead of waiting")
    sweep.add_argument("--executor", default="local", help="local (default) or ray")
    sweep.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local instance)")
    sweep.add_argument("--workspace", default="workspace", help="models, artifacts and calibrations (default: workspace)")
    sweep.add_argument("--store", help="SQLite results store (default: WORKSPACE/results.sqlite)")
    sweep.add_argument("--report", action="store_true", help="write the HTML + Markdown report when done")
    sweep.set_defaults(handler=cmd_sweep)

    report = sub.add_parser("report", help="write the HTML + Markdown report from the results store")
    report.add_argument("--store", default="workspace/results.sqlite", help="SQLite results store")
    report.add_argument("--out", default="workspace/report", help="output directory (default: workspace/report)")
    report.set_defaults(handler=cmd_report)

    app = sub.add_parser("app", help="start the Streamlit comparison app on the workspace")
    app.add_argument("--port", type=int, default=8501, help="port to serve on (default: 8501)")
    app.add_argument("--workspace", default="workspace", help="workspace with results.sqlite and artifacts")
    app.set_defaults(handler=cmd_app)

    demo = sub.add_parser("demo", help="train the reference models, export every route and mode, print a comparison")
    demo.add_argument("--workspace", default="workspace", help="where models and artifacts go (default: workspace)")
    demo.add_argument("--retrain", action="store_true", help="retrain even if the models exist")
    demo.add_argument("--model", action="append", help="zoo model to include (repeatable; default: all)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_frameworks()
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

        log = write_traceback(Path(getattr(args, "workspace", None) or "workspace") / "logs" / "internal-errors.log", exc)
        print(f"error: {internal_error_message(exc, log)}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
