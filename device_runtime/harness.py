"""Run one benchmark in an isolated worker process under a device profile, and describe the outcome."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from device_runtime.device_scripts.edge_bench import Protocol
from device_runtime.inputs import MODEL_SUFFIXES, SYNTHETIC, TFJS_MODEL, bare_model_target
from device_runtime.memory import TreeMemory, kill_tree
from device_runtime.profiles import PROFILES, DeviceProfile
from device_runtime.throttle import NO_THROTTLE, WorkerMonitor, throttle_mechanism
from device_runtime.worker import READY_FD_ENV
from pipeline.core.console import quiet_frameworks, verbosity
from pipeline.core.errors import ArtifactError, ConfigError, DataError, UnknownNameError
from pipeline.core.files import sha256_file
from pipeline.core.host import int8_features
from pipeline.core.locks import exclusive_lock
from pipeline.core.manifest import MANIFEST_FILE, read_manifest
from pipeline.core.records import Measurement
from pipeline.core.registry import unknown_name_message
from pipeline.core.versions import toolchain_versions


@dataclass(frozen=True)
class BenchRequest:
    """What to measure and under which conditions.

    `artifact_dir` is an artifact directory, or a bare model file (`.tflite`, `.pte`, TF.js `model.json` or
    its directory) measured without a manifest. `inputs` is None for the artifact's own eval.npz, 'synthetic'
    (inputs made from the model's signature) or an `.npz` path. `log_file` receives the worker's stderr.
    """

    artifact_dir: Path
    runtime: str
    delegate: str
    threads: int
    profile: DeviceProfile
    protocol: Protocol = field(default_factory=Protocol)
    timeout_s: float = 600.0
    active_fraction: float = 1.0
    calibration: dict[str, Any] | None = None
    inputs: str | None = None
    log_file: Path | None = None


def _target_and_inputs(path: Path, inputs: str | Path | None) -> tuple[str, str | None]:
    """The target of an artifact directory or bare model file, and what it runs on; raises before any work."""
    if inputs is not None and str(inputs) != SYNTHETIC and not Path(inputs).is_file():
        raise DataError(f"Input file {inputs} does not exist; pass an .npz with one array per input name ('x' for a "
                        "single input) and optional labels 'y', or leave --input out for synthetic inputs.")
    target = bare_model_target(path)
    if target is not None:
        return target, str(inputs) if inputs is not None else SYNTHETIC
    if not path.exists():
        raise ArtifactError(f"{path} does not exist; pass an artifact directory written by `pipeline export` or a "
                            f"model file ({', '.join(sorted(MODEL_SUFFIXES))}).")
    if not path.is_dir():
        raise ArtifactError(f"{path} is not a model file pipeline bench can run: it takes artifact directories and "
                            f".tflite, .pte, .onnx and TF.js {TFJS_MODEL} files.")
    manifest = read_manifest(path)
    if inputs is None and not manifest.get("eval_data"):
        raise DataError(f"{path} has no eval.npz, so there is no real input to time it on; re-export it with "
                        "evaluation data (a zoo model, or --eval-data FILE.npz), pass --input FILE.npz, "
                        "or --input synthetic.")
    return manifest["target"], str(inputs) if inputs is not None else None


def resolve_request(
    artifact_dir: Path, runtime: str | None, delegate: str | None, profile_name: str, threads: int | None,
    protocol: Protocol, active_fraction: float | None = None, calibration: dict[str, Any] | None = None,
    inputs: str | Path | None = None,
) -> BenchRequest:
    """Fill defaults from the manifest (or the model file's type) and profile; raise for impossible combinations
    before any work. `inputs`: None (an artifact's eval.npz; synthetic for a bare model file), 'synthetic', or an .npz.
    `active_fraction` defaults to the `calibration`'s (the record for the artifact's precision), else 1.0."""
    from device_runtime import RUNTIMES, default_runtime, runtimes_for

    target, inputs = _target_and_inputs(Path(artifact_dir), inputs)
    runtime = runtime or default_runtime(target)
    runtime_impl = RUNTIMES.get(runtime)
    if runtime not in runtimes_for(target):
        options = ", ".join(runtimes_for(target))
        raise ConfigError(f"Runtime {runtime} cannot run a {target} artifact; use {options}.")
    delegate = delegate or runtime_impl.default_delegate
    if delegate not in runtime_impl.delegates:
        raise UnknownNameError(unknown_name_message(f"{runtime} delegate", delegate, list(runtime_impl.delegates)))
    profile = PROFILES.get(profile_name)
    threads = threads or profile.threads
    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}.")
    if active_fraction is None:
        active_fraction = float(calibration["active_fraction"]) if calibration else 1.0
    return BenchRequest(artifact_dir, runtime, delegate, threads, profile, protocol,
                        active_fraction=active_fraction, calibration=calibration, inputs=inputs)


def _parse_reply(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


THROTTLE_PERIODS_PER_SAMPLE = 10
# Two measurements never share this machine's CPUs, whether they come from one sweep, two sweeps, the app
# or `pipeline bench` in another terminal (a Ray node has its own temp directory, so its own slot).
BENCH_SLOT = Path(tempfile.gettempdir()) / "edge-model-pipeline-bench-slot.lock"


def throttled_protocol(request: BenchRequest) -> Protocol:
    """The protocol the worker runs: under a throttle each timed sample spans several throttle periods.

    An inference shorter than the throttle's active slice would otherwise be timed inside one slice and
    show host speed at p50; over ten periods it gets its true share of stopped time.
    """
    if request.active_fraction >= 1.0:
        return request.protocol
    span_ms = THROTTLE_PERIODS_PER_SAMPLE * WorkerMonitor.period_s * 1000
    return replace(request.protocol, min_sample_ms=max(request.protocol.min_sample_ms, span_ms))


def model_file(request: BenchRequest) -> Path:
    """The file the worker loads: a bare model file itself, or the model named by the artifact's manifest."""
    path = Path(request.artifact_dir)
    if bare_model_target(path) is not None:
        return path / TFJS_MODEL if path.is_dir() else path
    return path / read_manifest(path)["model_file"]


def _payload(request: BenchRequest) -> dict[str, Any]:
    payload = {"artifact_dir": str(request.artifact_dir), "runtime": request.runtime, "delegate": request.delegate,
               "threads": request.threads, "protocol": asdict(throttled_protocol(request))}
    if throttles_itself(request):
        payload["cpu_throttling_rate"] = page_rate(request)[0]
    if request.inputs is not None or bare_model_target(Path(request.artifact_dir)) is not None:
        payload.update(model_file=str(model_file(request)), inputs=request.inputs or SYNTHETIC)
    return payload


def throttles_itself(request: BenchRequest) -> bool:
    """Whether the runtime emulates the device's CPU speed itself (a browser page through DevTools) rather than
    the worker being throttled: its processes run beside the worker's, and a process throttle on top would
    slow them twice."""
    from device_runtime import RUNTIMES

    return request.active_fraction < 1.0 and bool(getattr(RUNTIMES.get(request.runtime), "cpu_throttle", None))


BROWSER_RATE_NOTE = "browser rate not calibrated, derived from the LiteRT run share"


def page_rate(request: BenchRequest) -> tuple[float, dict[str, Any] | None, str]:
    """For a runtime that throttles its own page: (DevTools rate, the calibration record its row carries, where the
    rate comes from). The browser's own calibration (the request record's `browser`, see
    pipeline.calibration.calibrate_browser) when there is one, else 1 / active_fraction with BROWSER_RATE_NOTE."""
    calibration = request.calibration
    browser = (calibration or {}).get("browser")
    if browser and browser.get("cpu_throttling_rate"):
        return float(browser["cpu_throttling_rate"]), browser, f"the browser's own calibration ({browser.get('status')})"
    if calibration is None:
        return 1.0 / request.active_fraction, None, "1 / the requested active fraction (no calibration)"
    reason = "; ".join(part for part in (calibration.get("reason"), BROWSER_RATE_NOTE) if part)
    return 1.0 / request.active_fraction, {**calibration, "reason": reason}, BROWSER_RATE_NOTE


def memory_cap_error(profile: DeviceProfile, peak: TreeMemory | None) -> str:
    """The failure of a worker killed by its profile's memory cap: the cap, and the peak of its process tree."""
    size = peak.size_bytes / 2**20 if peak else 0.0
    return (f"worker killed by the {profile.memory_mb} MiB memory cap of profile {profile.name}: its process tree "
            f"reached {size:.0f} MiB ({peak.describe() if peak else 'no reading'})")


def _spawn(request: BenchRequest) -> tuple[dict[str, Any], TreeMemory | None]:
    """Run the worker; returns its reply (or a failure description) and the monitor's peak reading of the memory
    of its process tree.

    The worker's stderr (framework start-up output included) goes to `request.log_file` when one is given;
    a failure quotes its last lines.
    """
    cores = request.profile.usable_cores()
    payload = _payload(request)
    env = {**os.environ}
    quiet_frameworks(env)  # the worker's frameworks read their log levels when they import
    log = None
    if request.log_file:
        request.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = request.log_file.open("w")
    ready_read, ready_write = os.pipe()  # the worker writes once its runtime is imported (see worker.signal_ready)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "device_runtime.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log or subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, cores),
            start_new_session=True,  # its own process group: throttle and kills reach its children too
            pass_fds=(ready_write,), env={**env, READY_FD_ENV: str(ready_write)},
        )
    finally:
        os.close(ready_write)
        if log:
            log.close()  # the worker holds its own descriptor
    cap = request.profile.memory_mb * 1024 * 1024 if request.profile.memory_mb else None
    process_fraction = 1.0 if throttles_itself(request) else request.active_fraction
    monitor = WorkerMonitor(process.pid, active_fraction=process_fraction, memory_cap_bytes=cap,
                            ready_fd=ready_read)
    monitor.start()
    try:
        stdout, stderr = process.communicate(json.dumps(payload), timeout=request.timeout_s)
    except subprocess.TimeoutExpired:
        kill_tree(process.pid)
        process.communicate()
        return {"status": "failed", "error": f"worker timed out after {request.timeout_s:.0f} s and was killed"}, monitor.peak_memory
    finally:
        monitor.stop()
    if request.log_file:
        stderr = request.log_file.read_text(errors="replace")
        if verbosity() == "verbose":
            sys.stderr.write(stderr)
    if monitor.killed_for_memory:
        return {"status": "failed", "error": memory_cap_error(request.profile, monitor.peak_memory)}, monitor.peak_memory
    reply = _parse_reply(stdout)
    if process.returncode != 0 or reply is None:
        how = f"signal {signal.Signals(-process.returncode).name}" if process.returncode < 0 else f"exit code {process.returncode}"
        tail = " | ".join((stderr or "").strip().splitlines()[-3:])
        where = f" (log: {request.log_file})" if request.log_file else ""
        return {"status": "failed", "error": f"worker died ({how}): {tail[-600:]}{where}"}, monitor.peak_memory
    reply["throttle_mechanism"] = monitor.mechanism
    return reply, monitor.peak_memory


def run_benchmark(request: BenchRequest) -> Measurement:
    """Measure in an isolated worker; every outcome (including crashes) becomes a Measurement."""
    from device_runtime import RUNTIMES

    target, sha, manifest = _describe(Path(request.artifact_dir))
    if request.delegate not in request.profile.delegates:
        reply: dict[str, Any] = {"status": "unavailable", "error": (
            f"profile {request.profile.name} has no {request.delegate} delegate "
            f"(it has {', '.join(request.profile.delegates)})")}
        peak_seen, slot_wait = None, 0.0
    else:
        slot_wait = time.perf_counter()
        with exclusive_lock(BENCH_SLOT):  # one measurement per machine at a time, whichever process asks
            slot_wait = time.perf_counter() - slot_wait
            reply, peak_seen = _spawn(request)
            reply.setdefault("throttle_mechanism", throttle_mechanism(request.active_fraction))  # failed early
    status = reply.pop("status")
    mechanism = reply.pop("throttle_mechanism", NO_THROTTLE)
    error = reply.pop("error", None)
    used = reply.pop("delegate_used", None)
    page_throttle = reply.pop("cpu_throttle", None)  # a runtime that throttles its own page says how
    context = {
        "profile": request.profile.to_json(),
        "host_cores_used": request.profile.usable_cores(),
        "active_fraction": request.active_fraction,
        **_throttle_context(request, mechanism, page_throttle),
        "threads": thread_grant(request),
        "calibration": page_rate(request)[1] if throttles_itself(request) else request.calibration,
        "int8_features": int8_features(),
        "versions": toolchain_versions(*RUNTIMES.get(request.runtime).packages),
        "manifest": {k: manifest.get(k) for k in ("source", "stages", "route", "size_bytes", "size_bytes_gzip")}
        if manifest is not None else None,
        "inputs": _inputs_label(request),
        "monitor_peak_rss_bytes": peak_seen.size_bytes if peak_seen else 0,  # the worker's whole process tree
        "monitor_peak_by_process": peak_seen.by_label() if peak_seen else None,
        "bench_slot_wait_s": round(slot_wait, 3),
    }
    return Measurement(
        kind="emulated" if request.profile.emulated else "measured",
        status=status, artifact_dir=str(request.artifact_dir), manifest_sha256=sha, target=target,
        runtime=request.runtime, delegate_requested=request.delegate, delegate_used=used, threads=request.threads,
        device_profile=request.profile.name, result=reply, error=error, context=context,
    )


def _throttle_context(request: BenchRequest, mechanism: str, page_throttle: dict[str, Any] | None) -> dict[str, Any]:
    """How the device's CPU speed was emulated: the worker's throttle, or the runtime's own (a browser page)."""
    if throttles_itself(request):
        return {"throttle_applied": bool(page_throttle and page_throttle.get("applied")),
                "throttle_mechanism": page_throttle["mechanism"] if page_throttle else mechanism,
                "cpu_throttle": page_throttle, "cpu_throttling_rate_source": page_rate(request)[2],
                "throttle_starts": "when the page opens, before the backend starts (model load and runs are emulated)"}
    return {"throttle_applied": request.active_fraction < 1.0, "throttle_mechanism": mechanism,
            "throttle_starts": "after the runtime's Python modules are imported (model load and runs are emulated)"}


def thread_grant(request: BenchRequest) -> dict[str, Any]:
    """Threads the run asked for and host cores it was given (an rpi4 asks for 4 threads; a 2-core host grants 2)."""
    cores = len(request.profile.usable_cores())
    return {"requested": request.threads, "granted": min(request.threads, cores), "host_cores": os.cpu_count(),
            "profile_cores": request.profile.cores}


def _describe(path: Path) -> tuple[str, str, dict[str, Any] | None]:
    """(target, sha256, manifest): an artifact's manifest hash, or a bare model file's own hash and no manifest."""
    target = bare_model_target(path)
    if target is None:
        manifest = read_manifest(path)
        return manifest["target"], sha256_file(path / MANIFEST_FILE), manifest
    return target, sha256_file(path / TFJS_MODEL if path.is_dir() else path), None


def _inputs_label(request: BenchRequest) -> str:
    """What a measurement ran on: 'eval.npz' (the artifact's own samples), 'synthetic', or the .npz path given."""
    return request.inputs if request.inputs is not None else "eval.npz"
