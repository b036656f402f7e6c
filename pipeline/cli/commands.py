"""The `pipeline` subcommands. Heavy frameworks are imported inside them only, while their output is captured."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from pipeline.cli.options import store_path
from pipeline.core.console import output_to, real_output, tail
from pipeline.core.errors import ConfigError

EXIT_VALIDATION_FAILED = 1
LOGS_KEPT = 20  # per command, in WORKSPACE/logs


@contextlib.contextmanager
def framework_output(args: argparse.Namespace) -> Iterator[TextIO]:
    """While frameworks run, their output (native included) goes to WORKSPACE/logs/COMMAND-TIME-PID.log.

    Yields the stream for the pipeline's own lines (progress). In verbose mode, or when this process's
    output is not its own descriptors (a test's capture), frameworks print to stderr as they like.
    """
    if args.verbosity == "verbose" or not real_output():
        terminal = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):  # converters print progress; stdout stays for results
            yield terminal
        return
    logs = Path(args.workspace) / "logs"
    log = logs / f"{args.command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    try:
        with output_to(log) as terminal:
            yield terminal
    finally:
        _tidy_logs(log, args.command)


def _tidy_logs(log: Path, command: str) -> None:
    """Drop an empty log, and all but the newest LOGS_KEPT of this command's."""
    with contextlib.suppress(OSError):
        if log.stat().st_size == 0:
            log.unlink()
        for old in sorted(log.parent.glob(f"{command}-*.log"), key=lambda p: p.stat().st_mtime)[:-LOGS_KEPT]:
            old.unlink()


def _lines(args: argparse.Namespace, terminal: TextIO) -> Callable[[str], None]:
    """Where progress and info lines go: the terminal, or nowhere with -q."""
    if args.verbosity == "quiet":
        return lambda line: None
    return lambda line: print(line, file=terminal, flush=True)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


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

    if args.json:
        _print_json([{"name": name, "dataset": e.dataset, "frameworks": list(e.builders),
                      "min_test_accuracy": e.min_test_accuracy, "description": e.description} for name, e in ZOO.items()])
        return 0
    rows = [(name, e.dataset, ", ".join(e.builders), e.task,
             "pretrained" if e.pretrained is not None else f"{e.min_test_accuracy:.0%}", e.description)
            for name, e in ZOO.items()]
    print(format_table(["model", "dataset", "frameworks", "task", "min accuracy", "description"], rows))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from pipeline.zoo.materialize import materialize
    from pipeline.zoo.train import default_model_path

    out = Path(args.out) if args.out else default_model_path(args.name, args.framework, Path(args.workspace) / "models")
    with framework_output(args):
        done = materialize(args.name, args.framework, out, retrain=True, seed=args.seed)
    print(done.describe())
    return 0


def _load_bundle(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from pipeline.core.tensors import parse_input_specs
    from pipeline.intake import load_model
    from pipeline.intake.data import with_user_data

    shape = parse_shape(args.input_shape) if args.input_shape else None
    specs = parse_input_specs(args.input_spec) if args.input_spec else None
    bundle = load_model(args.model, weights=Path(args.weights) if args.weights else None, input_shape=shape,
                        input_specs=specs)
    if args.task:
        bundle = replace(bundle, task=args.task)
    files = {name: Path(value) if value else None for name, value in
             (("eval_data", args.eval_data), ("calibration", args.calibration), ("train_data", args.train_data))}
    return with_user_data(bundle, **files)


def cmd_export(args: argparse.Namespace) -> int:
    from exporters import EXPORTERS
    from pipeline.export import export_bundle
    from quantize import quantization_config
    from quantize.pruning import parse_prune

    exporter = EXPORTERS.get(args.target)  # fail fast on a bad target, before loading any model
    from pipeline.validation import parse_tolerances

    options = {"calibration_samples": args.calibration_samples} if args.quantize == "int8" else {}
    if args.finetune_epochs is not None:
        options.update(_fine_tune_option(args))
    options.update(_selective_options(args))
    auto = options.pop("auto", None)
    quantization = quantization_config(args.quantize, **options)
    config = _exporter_config(exporter, args)
    tolerances = parse_tolerances(args.tolerance)  # a bad name fails before the model loads
    stages = [parse_prune(args.prune, fine_tune_epochs=args.finetune_epochs)] if args.prune else []
    out = Path(args.out) if args.out else (
        Path(args.workspace) / "artifacts" / f"{Path(args.model).stem}-{args.target}-{args.quantize}")
    with framework_output(args) as terminal:
        bundle = _load_bundle(args)
        annotations = {}
        if auto:
            from dataclasses import replace

            from pipeline.selective import resolve_auto

            say = _lines(args, terminal)
            say(f"--keep-float auto:{auto}: exporting plain {args.quantize} and ranking its layers first")
            names, annotations["selective_quantization"] = resolve_auto(bundle, args.target, quantization, auto,
                                                                        stages, scratch=Path(args.workspace))
            say(f"keeping in float: {', '.join(names)}")
            quantization = replace(quantization, keep_float=names)
        result = export_bundle(bundle, args.target, quantization, out, config=config, stages=stages,
                               run_validation=not args.no_validate, tolerances=tolerances,
                               debug_layers=args.debug_layers, annotations=annotations)
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


def _selective_options(args: argparse.Namespace) -> dict[str, Any]:
    """`--keep-float` (names, or 'auto': K to resolve once the model is loaded) and `--per-tensor`."""
    import dataclasses

    from quantize.techniques import QUANTIZATION_MODES

    fields = {f.name for f in dataclasses.fields(QUANTIZATION_MODES.get(args.quantize))}
    options: dict[str, Any] = {}
    if args.per_tensor:
        if "per_channel" not in fields:
            raise ConfigError(f"--per-tensor applies to --quantize int8 (one scale per tensor instead of per "
                              f"channel); --quantize {args.quantize} has no such choice.")
        options["per_channel"] = False
    if args.keep_float:
        if "keep_float" not in fields:
            able = [mode for mode, cls in QUANTIZATION_MODES.items()
                    if "keep_float" in {f.name for f in dataclasses.fields(cls)}]
            raise ConfigError(f"--keep-float applies to --quantize {', '.join(able)}; --quantize {args.quantize} "
                              "has no layers to keep in float.")
        from pipeline.selective import parse_keep_float

        names, auto = parse_keep_float(args.keep_float)
        options.update({"auto": auto} if auto else {"keep_float": names})
    return options


def _fine_tune_option(args: argparse.Namespace) -> dict[str, int]:
    """`--finetune-epochs` for the quantization mode when it fine-tunes (QAT); the prune stage takes it too."""
    import dataclasses

    from quantize.techniques import QUANTIZATION_MODES

    fields = {f.name for f in dataclasses.fields(QUANTIZATION_MODES.get(args.quantize))}
    if "fine_tune_epochs" in fields:
        return {"fine_tune_epochs": args.finetune_epochs}
    if not args.prune:
        raise ConfigError(f"--finetune-epochs applies to stages that fine-tune (--prune, --quantize qat); "
                          f"--quantize {args.quantize} without --prune does not fine-tune.")
    return {}


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
    coverage = manifest.get("quantization_coverage") or {}
    if coverage.get("quantized_share") is not None and coverage.get("mode") != "none":
        print(f"  quantization: {coverage['quantized_share']:.1%} of {coverage['weight_bytes']:,} weight bytes in "
              f"{coverage['stored_as']}, {coverage['float_share']:.1%} in float ({coverage['float_tensor_count']} tensor(s))")
    if "warning" in coverage:
        print(f"  WARNING: {coverage['warning']}")
    if validation.get("skipped"):
        print("  validation skipped (--no-validate)")
        return
    from pipeline.core.manifest import format_metric, task_metric

    label, value = task_metric(manifest)
    details = [] if label == "accuracy" else [f"{label} {format_metric(label, value)}"]
    if validation.get("source_accuracy") is not None:
        details.append(f"accuracy {format_metric('accuracy', validation['source_accuracy'])} -> "
                       f"{format_metric('accuracy', validation.get('artifact_accuracy'))}")
    if validation.get("top1_agreement") is not None and label != "agreement":
        details.append(f"top-1 agreement {format_metric('agreement', validation['top1_agreement'])}")
    print(f"  validation {'passed' if validation['passed'] else 'FAILED'} on {validation['samples']} samples "
          f"({validation['runtime']}/{validation['delegate']}, {validation.get('task', 'classification')}): "
          f"{', '.join(details)}")
    delegation = manifest.get("delegation") or {}
    if delegation:
        print(f"  delegation: {delegation['ops_delegated']}/{delegation['ops_total']} ops on {delegation['delegate']}"
              + (f"; not delegated: {', '.join(delegation['ops_not_delegated'])}" if delegation["ops_not_delegated"] else ""))
    if "warning" in delegation:
        print(f"  WARNING: {delegation['warning']}")


def cmd_debug(args: argparse.Namespace) -> int:
    from pipeline.debug import debug_artifact, format_ranking

    with framework_output(args):
        result = debug_artifact(Path(args.artifact), args.samples)
    if args.json:
        _print_json(result)
    else:
        print(format_ranking(result))
        print(f"ranking written to {Path(args.artifact) / 'debug.json'}")
    return 0


def cmd_routes(args: argparse.Namespace) -> int:
    from exporters import EXPORTERS, modes_for
    from pipeline.core.table import format_table

    routes = [(fw, target, modes_for(fw, target), chain)
              for target, exporter in EXPORTERS.items() for fw, chain in exporter.routes.items()]
    if args.json:
        _print_json([{"source": fw, "target": target, "quantize": list(modes), "chain": chain}
                     for fw, target, modes, chain in routes])
        return 0
    print(format_table(["source", "target", "--quantize", "converter chain"],
                       [(fw, target, ", ".join(modes), chain) for fw, target, modes, chain in routes]))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    with framework_output(args):
        table = run_demo(Path(args.workspace), retrain=args.retrain, models=args.model or None)
    print(table)
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from pipeline.calibration import host_key
    from pipeline.cli import devices

    workspace = Path(args.workspace)
    if args.calibrate:
        from device_runtime.profiles import PROFILES
        from pipeline.calibration import calibration_for

        names = [args.calibrate] if args.calibrate != "all" else [n for n, p in PROFILES.items() if p.anchors]
        with framework_output(args):
            records = [calibration_for(workspace, PROFILES.get(name), anchor.precision, refresh=True)
                       for name in names for anchor in PROFILES.get(name).anchors]
        if args.json:
            _print_json(records)
            return 0
        records = [r for r in records if r]
        print("\n".join([devices.calibration_rows(records), *devices.warning_lines(devices.uncalibrated(records))]))
        return 0
    if args.check is not None:
        with framework_output(args) as terminal:
            results = devices.run_device_checks(workspace, args.check, _lines(args, terminal))
        if args.json:
            _print_json(results)
            return 0
        print(devices.check_rows(results))
        print(f"kept in {workspace / 'calibration-checks.json'} (the report's emulation-accuracy table)")
        return 0
    listing, warnings = devices.list_devices(workspace, host_key(), args.json)
    if args.json:
        _print_json(listing)
        return 0
    print("\n".join([str(listing), *devices.warning_lines(warnings)]))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pipeline.bench import bench_artifacts, print_measurements

    args.store = str(store_path(args))
    with framework_output(args):
        measurements = bench_artifacts(args)
    return print_measurements(measurements, args.json)


def cmd_import_results(args: argparse.Namespace) -> int:
    from pipeline.bench import import_results

    return import_results([Path(p) for p in args.files], store_path(args))


def _progress(args: argparse.Namespace, terminal: TextIO) -> Any:
    """Plain `[i/n]` lines (pipes, CI, the app's Run page, -v), a live bar on a terminal, nothing with -q."""
    from pipeline.sweep.runner import Progress

    if args.verbosity == "normal" and terminal.isatty():
        from functools import partial

        from pipeline.sweep.live import LiveProgress, live_available

        if live_available():
            return partial(LiveProgress, stream=terminal)
    return Progress


def cmd_sweep(args: argparse.Namespace) -> int:
    from pipeline.sweep.executors import make_executor
    from pipeline.sweep.recipe import DEFAULT_RECIPE, load_recipe, recipe_schema
    from pipeline.sweep.runner import dry_run, run_sweep

    if args.print_schema:
        print(json.dumps(recipe_schema(), indent=2))
        return 0
    recipe = load_recipe(Path(args.recipe) if args.recipe else DEFAULT_RECIPE)
    workspace, store = Path(args.workspace), store_path(args)
    if args.dry_run:
        dry_run(recipe, workspace, store)
        return 0
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}.")
    with framework_output(args) as terminal:
        executor = make_executor(args.executor, args.address, workers=args.workers)
        try:
            summary = run_sweep(recipe, workspace, store, executor, wait=not args.no_wait,
                                out=_lines(args, terminal), progress=_progress(args, terminal))
        finally:
            executor.close()
    print(f"sweep {recipe.name} finished in {summary.seconds:.0f} s: exports {summary.exports}, benchmarks {summary.benches}")
    for label, error in summary.failures:
        print(f"  FAILED {label}: {error}")
        log = summary.logs.get(label)
        if log and tail(Path(log)):
            print(f"    last lines of {log}:")
            print("\n".join(f"    | {line}" for line in tail(Path(log), 8)))
    for label, reason in summary.unavailable:
        print(f"  unavailable {label}: {reason}")
    if summary.elsewhere:
        print(f"  left to another writer (in progress elsewhere, --no-wait): {len(summary.elsewhere)} cells")
    if args.report:
        from pipeline.report import write_report

        paths = write_report(store, workspace / "report", workspace)
        print("report: " + ", ".join(str(p) for p in paths))
    return 0 if not summary.failures else 1


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report import load_entries, write_report

    out = Path(args.out) if args.out else Path(args.workspace) / "report"
    paths = write_report(store_path(args), out, Path(args.workspace))
    if args.json:
        _print_json({"files": [str(p) for p in paths], "entries": [asdict(e) for e in load_entries(store_path(args))]})
        return 0
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from demo_app.launch import launch

    return launch(Path(args.workspace), args.port, args.host)


def cmd_serve_bench(args: argparse.Namespace) -> int:
    from device_runtime.device_scripts.edge_bench import Protocol
    from pipeline.serve_bench import serve

    try:
        protocol = Protocol(args.warmup_runs, args.min_runs, args.min_duration_s)
    except ValueError as exc:
        raise ConfigError(f"Measurement settings: {exc}.") from None
    stored = serve([Path(p) for p in args.artifacts], store_path(args), host=args.host, port=args.port,
                   timeout_s=args.timeout, protocol=protocol)
    print(f"{len(stored)} result(s) stored in {store_path(args)}")
    return 0
