"""One execution path: the on-device script, as a user copies it, runs a model exactly as the runtimes do."""

import ast
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from device_runtime import RUNTIMES
from device_runtime.device_scripts import edge_bench

SCRIPT = Path(edge_bench.__file__)
CASES = [("tflite-fp32", "litert", "xnnpack"), ("tflite-fp32", "litert", "cpu"), ("tflite-int8", "litert", "xnnpack"),
         ("executorch-fp32", "executorch", "xnnpack")]


@pytest.fixture(scope="module")
def copied_script(tmp_path_factory):
    """edge_bench.py loaded from a copy outside the package, as it runs on a board."""
    copy = tmp_path_factory.mktemp("board") / "edge_bench.py"
    copy.write_bytes(SCRIPT.read_bytes())
    spec = importlib.util.spec_from_file_location("edge_bench_on_board", copy)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_script_imports_only_the_standard_library_at_module_level():
    tree = ast.parse(SCRIPT.read_text())
    top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert top <= set(sys.stdlib_module_names) | {"__future__"}, top


@pytest.mark.parametrize("name,runtime,delegate", CASES)
def test_script_and_runtime_session_agree(artifacts, copied_script, name, runtime, delegate):
    model_file = next(p for p in artifacts[name].iterdir() if p.suffix in (".tflite", ".pte"))
    with np.load(artifacts[name] / "eval.npz") as data:
        x = next(data[name] for name in data.files if name != "y")[:16]  # the single input, by its name
    program = copied_script.load_program(model_file, 1, delegate)
    on_board = copied_script.run_batch(program, x)
    session = RUNTIMES.get(runtime).load(model_file, delegate, threads=1)
    try:
        np.testing.assert_array_equal(session.run(x), on_board[0])
        assert session.delegate_used == program.delegate_used
    finally:
        session.close()
        program.close()


def test_delegate_used_is_read_from_the_plan(artifacts):
    model_file = artifacts["tflite-fp32"] / "model.tflite"
    xnnpack = edge_bench.load_program(model_file, 1, "xnnpack")
    cpu = edge_bench.load_program(model_file, 1, "cpu")
    assert xnnpack.delegate_used == "xnnpack" and any(op["op_name"] == "DELEGATE" for op in xnnpack.ops)
    assert cpu.delegate_used == "cpu" and all(op["op_name"] != "DELEGATE" for op in cpu.ops)


def test_a_gpu_run_is_labelled_gpu_only_when_the_accelerator_holds_the_graph(artifacts):
    """The run is labelled gpu only if the accelerator holds the whole graph, and the interpreter (which can fall
    back to CPU) is never used for it."""
    from device_runtime import worker
    from pipeline.core.errors import RuntimeUnavailableError

    with pytest.raises(ValueError, match="'xnnpack' or 'cpu'"):
        edge_bench.TFLiteProgram(artifacts["tflite-fp32"] / "model.tflite", 1, "gpu")
    request = {"artifact_dir": str(artifacts["tflite-fp32"]), "runtime": "litert", "delegate": "gpu", "threads": 1,
               "protocol": {"warmup_runs": 1, "min_runs": 5, "min_duration_s": 0.0}}
    try:
        result = worker.handle(request)
    except RuntimeUnavailableError as exc:  # no GPU adapter here: recorded as unavailable, with why
        assert "GPU delegate unavailable" in str(exc)
        return
    session = RUNTIMES.get("litert").load(artifacts["tflite-fp32"] / "model.tflite", "gpu")
    try:
        assert isinstance(session.program, edge_bench.TFLiteGpuProgram)
        assert session.program.model.is_fully_accelerated()
    finally:
        session.close()
    assert result["delegate_used"] == "gpu"


def test_executorch_honours_threads(artifacts):
    from executorch.extension.pybindings import portable_lib

    session = RUNTIMES.get("executorch").load(artifacts["executorch-fp32"] / "model.pte", "xnnpack", threads=1)
    try:
        assert session.threads_applied and portable_lib._threadpool_get_thread_count() == 1
    finally:
        session.close()


def test_pte_plan_lists_backends_and_portable_operators(artifacts, tmp_path):
    backends, operators = edge_bench.pte_plan((artifacts["executorch-fp32"] / "model.pte").read_bytes())
    assert backends == ["XnnpackBackend"]
    with pytest.raises(ValueError, match="not a .pte program"):
        edge_bench.pte_plan((artifacts["tflite-fp32"] / "model.tflite").read_bytes())
    with pytest.raises(ValueError, match="not a .pte program"):
        edge_bench.pte_plan((artifacts["executorch-fp32"] / "model.pte").read_bytes()[:64])
