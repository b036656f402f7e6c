"""`pipeline bench` and `pipeline import-results`: measure or import, print, and append to the results store."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.harness import BenchRequest, resolve_request, run_benchmark
from device_runtime.inputs import SYNTHETIC
from pipeline.core.errors import ConfigError, DataError
from pipeline.core.records import Measurement
from pipeline.core.table import format_table
from pipeline.results import insert_measurement, open_store


def _row(m: Measurement) -> tuple[Any, ...]:
    r = m.result

    def fmt(key: str) -> float | None:
        return round(r[key], 3) if r.get(key) is not None else None

    return (Path(m.artifact_dir).name, m.runtime, m.delegate_used or m.delegate_requested, m.threads, m.device_profile,
            m.kind, m.status, fmt("latency_ms_p50"), fmt("latency_ms_p90"), fmt("latency_ms_p99"),
            round(r["latency_cv"], 3) if r.get("latency_cv") is not None else None, r.get("runs"),
            round(r["peak_rss_bytes"] / 2**20, 1) if r.get("peak_rss_bytes") else None,
            f"{r['accuracy']:.2%}" if r.get("accuracy") is not None else None,
            Path(str(m.context.get("inputs") or "eval.npz")).name)


HEADERS = ["artifact", "runtime", "delegate", "threads", "device", "kind", "status", "p50 ms", "p90 ms", "p99 ms",
           "cv", "runs", "peak RSS MiB", "accuracy", "inputs"]
# `--use_xnnpack=false` (benchmark_model's spelling): the runtime's kernels without XNNPACK
WITHOUT_XNNPACK = {"litert": "cpu", "executorch": "portable"}


def requested_delegate(delegate: str | None, use_xnnpack: bool | None, use_gpu: bool | None) -> str | None:
    """--delegate, or what benchmark_model's --use_xnnpack/--use_gpu ask for; ConfigError when they disagree.

    Returns 'no-xnnpack' for --use_xnnpack=false, resolved per runtime by `without_xnnpack`.
    """
    asked = {flag: value for flag, value in (("--use_gpu", "gpu" if use_gpu else None),
                                             ("--use_xnnpack", {True: "xnnpack", False: "no-xnnpack"}.get(use_xnnpack)))
             if value}
    if len(asked) > 1:
        raise ConfigError("--use_gpu and --use_xnnpack ask for different delegates; pass one of them (or --delegate).")
    for flag, value in asked.items():
        if delegate and delegate != value:
            raise ConfigError(f"--delegate {delegate} and {flag} ask for different delegates; pass one of them.")
        return value
    return delegate


def without_xnnpack(request: BenchRequest) -> BenchRequest:
    """A request's delegate for --use_xnnpack=false: the runtime's own kernels (ConfigError where it has none)."""
    if request.runtime not in WITHOUT_XNNPACK:
        raise ConfigError(f"--use_xnnpack=false applies to {' and '.join(WITHOUT_XNNPACK)}; {request.runtime} does not "
                          "use XNNPACK (pass --delegate).")
    return replace(request, delegate=WITHOUT_XNNPACK[request.runtime])


def bench_requests(args: argparse.Namespace) -> list[BenchRequest]:
    """Every request resolved before any work, so a bad one fails first; each with its worker's log file."""
    try:
        protocol = Protocol(args.warmup_runs, args.min_runs, args.min_duration_s)
    except ValueError as exc:
        raise ConfigError(f"{exc}.") from None
    delegate = requested_delegate(args.delegate, args.use_xnnpack, args.use_gpu)
    requests = []
    for path in args.artifacts:
        request = resolve_request(Path(path), args.runtime, None if delegate == "no-xnnpack" else delegate,
                                  args.device, args.threads, protocol, inputs=args.input)
        if delegate == "no-xnnpack":
            request = without_xnnpack(request)
        log = Path(args.workspace) / "logs" / "bench" / (
            f"{Path(path).resolve().name}.{request.runtime}-{request.delegate}-{request.profile.name}.log")
        requests.append(replace(request, timeout_s=args.timeout_s, log_file=log))
    return requests


def bench_artifacts(args: argparse.Namespace) -> list[Measurement]:
    """Measure each artifact or model file in a worker and append every outcome to the store."""
    from pipeline.calibration import calibration_for_artifact

    requests = bench_requests(args)
    measurements = []
    with open_store(Path(args.store)) as store:
        for request in requests:  # each artifact throttled by the calibration of the precision it runs in
            calibration = calibration_for_artifact(Path(args.workspace), request.profile, request.artifact_dir)
            request = replace(request, active_fraction=calibration["active_fraction"] if calibration else 1.0,
                              calibration=calibration)
            measurement = run_benchmark(request)
            insert_measurement(store, measurement.to_json())
            measurements.append(measurement)
    return measurements


def print_measurements(measurements: list[Measurement], as_json: bool) -> int:
    """The measurements as a table (or JSON) on stdout; exit code 1 unless every one succeeded."""
    if as_json:
        print(json.dumps([m.to_json() for m in measurements], indent=2))
    else:
        print(format_table(HEADERS, [_row(m) for m in measurements]))
        for m in measurements:
            if m.error:
                print(f"{Path(m.artifact_dir).name}: {m.status}: {m.error}")
            threads = m.context.get("threads") or {}
            if threads.get("granted") is not None and threads["granted"] != threads["requested"]:
                print(f"{Path(m.artifact_dir).name}: threads {threads['requested']} requested, {threads['granted']} "
                      f"granted (this host lends {m.device_profile} {threads['granted']} of its {threads['host_cores']} cores)")
            if m.result.get("unsteady"):
                print(f"{Path(m.artifact_dir).name}: unsteady: block medians differ by {m.result['block_spread']:.0%}; "
                      "the figure may not repeat (other load on this host?)")
        if any(m.context.get("inputs") == SYNTHETIC for m in measurements):
            print("inputs: synthetic = seeded random values for each input of the model's signature: floats in its value "
                  "range, masks all ones, integer inputs in [0, 100) (real token ids unknown); no labels, so no accuracy")
    return 0 if all(m.status == "ok" for m in measurements) else 1


def record_from_device(path: Path) -> dict[str, Any]:
    """A results-store record from an edge_bench.py JSON file; DataError names what is wrong."""
    from device_runtime import default_runtime

    try:
        data = json.loads(path.read_text())
        result = data["result"]
        artifact = data["artifact"]
        return Measurement(
            kind="measured", status="ok", artifact_dir=f"device:{path.name}",
            manifest_sha256=data["manifest_sha256"], target=artifact["target"],
            runtime=default_runtime(artifact["target"]),
            # scripts before delegate_used was recorded reported only the request
            delegate_requested=data["delegate"], delegate_used=data.get("delegate_used", data["delegate"]),
            threads=data["threads"], device_profile=data["device"], result=result, created_at=data.get("created_at"),
            context={"host": data.get("host"), "source": "edge_bench.py", "manifest": artifact},
        ).to_json()
    except FileNotFoundError:
        raise DataError(f"Result file {path} does not exist.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not an edge_bench.py result ({exc!r} missing or malformed); "
                        "re-run the script on the device with --out.") from None


def import_results(files: list[Path], store_path: Path) -> int:
    """Validate every file first, then append all of them; nothing is written if one is bad."""
    records = [record_from_device(path) for path in files]
    if not records:
        raise ConfigError("No result files given.")
    with open_store(store_path) as store:
        ids = [insert_measurement(store, record) for record in records]
    print(f"Imported {len(ids)} measured result(s) into {store_path} (ids {ids[0]}..{ids[-1]}).")
    return 0
