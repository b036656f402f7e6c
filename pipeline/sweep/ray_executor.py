"""Run sweep cells as Ray tasks, on a local instance or an existing cluster.

Local (`address=None`): starts a private Ray instance bound to 127.0.0.1 with every usable CPU of this machine,
no dashboard, and this checkout on the workers' PYTHONPATH; `close()` shuts it down.

Remote (`address="HOST:6379"`): connects to a running cluster, which `close()` leaves running. Ray ships no
code or environment there, so every node must have:
  * the same environment: `make setup` (requirements.lock, `pip install -e .`, the TF.js runner) of the same
    commit as the driver, with the same Python;
  * the workspace on a shared filesystem at the same absolute path as on the driver (give `--workspace` an
    absolute path; the driver trains zoo models into it, workers write artifacts the driver and other nodes read);
  * the benchmark slot resource, one per node: `ray start ... --resources='{"edge_bench_slot": 1}'`, and at most
    one Ray node per physical machine (two nodes on one machine would pin benchmarks to the same CPUs).

Benchmarks (`exclusive_cpu=True`) each take the node's single `edge_bench_slot`, so at most one measurement runs
on a node at a time: its worker pins itself to the profile's first cores (`DeviceProfile.usable_cores`), which
would be the same cores for two concurrent benchmarks. Exports take one CPU each and run concurrently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.sweep.cells import OnFailure, failed_call

BENCH_RESOURCE = "edge_bench_slot"
REPO_ROOT = Path(__file__).resolve().parents[2]
OBJECT_STORE_BYTES = 128 * 2**20  # results are small dicts; keep Ray's shared memory small on a shared machine


def _run_cell(fn: Callable[..., Any], args: tuple[Any, ...], cwd: str, on_failure: OnFailure) -> Any:
    """Task body: run in the driver's working directory when this node has it; exceptions become failed results."""
    if os.path.isdir(cwd):
        os.chdir(cwd)  # relative workspace paths resolve as on the driver
    try:
        return fn(*args)
    except Exception as exc:
        return on_failure(args, f"{type(exc).__name__}: {exc}", "ray")


class RayExecutor:
    """Runs each call as a Ray task and yields (index, result) in completion order."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'ray==2.52.1'") from None
        self._ray = ray
        self._owned = not ray.is_initialized()  # close() disconnects (and stops a local instance) only if ours
        if self._owned and address is None:
            from pipeline.core.console import VERBOSITY_ENV, quiet_frameworks, verbosity

            path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
            env = {"PYTHONPATH": path, VERBOSITY_ENV: verbosity()}
            quiet_frameworks(env)  # the workers' frameworks read their log levels when they import
            ray.init(address="local", num_cpus=num_cpus or len(os.sched_getaffinity(0)), resources={BENCH_RESOURCE: 1},
                     include_dashboard=False, _node_ip_address="127.0.0.1", object_store_memory=OBJECT_STORE_BYTES,
                     runtime_env={"env_vars": env}, logging_level=logging.WARNING)
        elif self._owned:
            ray.init(address=address, logging_level=logging.WARNING)
        if not ray.cluster_resources().get(BENCH_RESOURCE):
            self.close()
            raise ConfigError(f"Ray cluster {address} has no '{BENCH_RESOURCE}' resource, so benchmarks could share "
                              f"CPUs; start each node with: ray start ... --resources='{{\"{BENCH_RESOURCE}\": 1}}'")
        self.num_cpus = int(ray.cluster_resources().get("CPU", 0))
        self._task = ray.remote(_run_cell)

    def map(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]], exclusive_cpu: bool = False,
            on_failure: OnFailure | None = None) -> Iterator[tuple[int, Any]]:
        """Submit every call at once; benchmarks (`exclusive_cpu`) run one per node, never retried."""
        ray = self._ray
        resources = {BENCH_RESOURCE: 1.0} if exclusive_cpu else {}
        task = self._task.options(num_cpus=1, resources=resources, max_retries=0 if exclusive_cpu else 1)
        cwd = os.getcwd()
        on_failure = on_failure or failed_call
        pending = {task.remote(fn, args, cwd, on_failure): index for index, args in enumerate(calls)}
        try:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:  # worker crashed, killed for memory, node lost, ...
                    result = on_failure(calls[index], f"ray task failed: {type(exc).__name__}: {exc}"[:2000], "ray")
                yield index, result
        finally:
            for ref in pending:  # the driver stopped early (Ctrl-C, an error): do not leave work running
                ray.cancel(ref)

    def close(self) -> None:
        """Stop the local instance this executor started, or disconnect from a remote cluster (which keeps running)."""
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False
