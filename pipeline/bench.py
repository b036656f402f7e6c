"""`pipeline bench` and `pipeline import-results`: measure or import, print, and append to the results store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.harness import resolve_request, run_benchmark
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
            f"{r['accuracy']:.2%}" if r.get("accuracy") is not None else None)


HEADERS = ["artifact", "runtime", "delegate", "threads", "device", "kind", "status", "p50 ms", "p90 ms", "p99 ms",
           "cv", "runs", "peak RSS MiB", "accuracy"]


def bench_artifacts(args: argparse.Namespace) -> int:
    """Resolve every request first (so a bad one fails before any work), then measure each in a worker."""
    from device_runtime.profiles import PROFILES
    from pipeline.calibration import calibration_for

    protocol = Protocol(args.warmup, args.min_runs, args.min_seconds)
    profile = PROFILES.get(args.device)
    requests = [resolve_request(Path(a), args.runtime, args.delegate, args.device, args.threads, protocol)
                for a in args.artifacts]
    calibration = calibration_for(Path(args.workspace), profile)
    fraction = calibration["active_fraction"] if calibration else 1.0
    measurements = []
    with open_store(Path(args.store)) as store:
        for request in requests:
            request = type(request)(**{**request.__dict__, "timeout_s": args.timeout, "active_fraction": fraction,
                                       "calibration": calibration})
            measurement = run_benchmark(request)
            insert_measurement(store, measurement.to_json())
            measurements.append(measurement)
    if args.json:
        print(json.dumps([m.to_json() for m in measurements], indent=2))
    else:
        print(format_table(HEADERS, [_row(m) for m in measurements]))
        for m in measurements:
            if m.error:
                print(f"{Path(m.artifact_dir).name}: {m.status}: {m.error}")
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
