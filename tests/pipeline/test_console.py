"""A quiet console: framework output goes to logs under the workspace, the terminal gets the pipeline's own lines."""

import io
import os
import re
import subprocess
import sys

import yaml

from pipeline.core.console import output_to, tail
from pipeline.sweep.live import LiveProgress
from pipeline.sweep.runner import Progress

# every kind of line a sweep prints on stdout; anything else is noise
SWEEP_LINES = (
    r"train  \S+/\S+: .*",
    r"skip .*",
    r"another sweep \(.*\) is running on this workspace; .*",
    r"\[\s*\d+/\d+\] (export|bench ) \S+/\S+ \S+ -> \S+.*: .*\(elapsed +\d+s, eta ~ *\d+s\)",
    r"sweep \S+ finished in \d+ s: exports \{.*\}, benchmarks \{.*\}",
    r"  FAILED .*",
    r"    last lines of .*:",
    r"    \| .*",
    r"report: .*report\.html, .*report\.md",
)
TINY = {
    "version": 1, "name": "tiny-console",
    "models": [{"zoo": "digits-cnn", "frameworks": ["torch"]}],
    "variants": [{"name": "fp32", "quantize": "none"}],
    "targets": ["tflite", "executorch"],
    "runtimes": [{"target": "tflite", "runtime": "litert", "delegate": "xnnpack", "threads": 1},
                 {"target": "executorch", "runtime": "executorch", "delegate": "xnnpack", "threads": 1}],
    "devices": ["host"],
    "measure": {"warmup_runs": 2, "min_runs": 20, "min_duration_s": 0.2},
}


def _unexpected(lines: list[str]) -> list[str]:
    return [line for line in lines if not any(re.fullmatch(kind, line) for kind in SWEEP_LINES)]


def test_a_sweep_prints_only_its_own_lines_and_logs_the_frameworks(tmp_path, torch_model_path):
    workspace = tmp_path / "ws"
    (workspace / "models").mkdir(parents=True)
    for suffix in ("", ".card.json"):  # reuse the session's trained model instead of training again
        (workspace / "models" / f"digits-cnn-torch.pt2{suffix}").write_bytes(
            torch_model_path.with_name(torch_model_path.name + suffix).read_bytes())
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")}
    command = [sys.executable, "-m", "pipeline", "sweep", str(recipe), "--workspace", str(workspace), "--report"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert _unexpected(lines) == [], done.stdout
    assert sum(line.startswith("[") for line in lines) == 4
    # the frameworks did talk: into each export cell's log beside its artifact, and each worker's log
    logs = {p.name: p.read_text() for p in (workspace / "artifacts").rglob("*.log")}
    assert any(name.startswith("executorch-") and "cpuinfo" in text for name, text in logs.items() if ".bench-" in name)
    assert len([name for name in logs if ".bench-" in name]) == 2
    quiet = subprocess.run([*command, "-q"], capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert [line.split(" finished")[0] for line in quiet.stdout.splitlines()][:1] == ["sweep tiny-console"]
    assert not any(line.startswith("[") for line in quiet.stdout.splitlines())


def test_native_output_goes_to_the_log_and_ours_to_the_terminal(tmp_path):
    probe = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from pipeline.core.console import output_to\n"
        f"with output_to(Path({str(tmp_path / 'run.log')!r})) as terminal:\n"
        "    os.write(2, b'native stderr\\n'); os.write(1, b'native stdout\\n')\n"
        "    print('python print'); print('warning', file=sys.stderr)\n"
        "    print('[1/1] ours', file=terminal)\n"
        "print('after')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["[1/1] ours", "after"] and done.stderr == ""
    assert tail(tmp_path / "run.log") == ["native stderr", "native stdout", "python print", "warning"]


def test_output_to_restores_the_descriptors_on_error(tmp_path):
    before = os.fstat(2).st_ino
    try:
        with output_to(tmp_path / "run.log"):
            raise ValueError("boom")
    except ValueError:
        pass
    assert os.fstat(2).st_ino == before


def test_progress_knows_which_cells_run():
    lines = []
    progress = Progress({"export": 3, "bench": 1}, lines.append, parallel={"export": 2})
    progress.begin("export", ["a", "b", "c"])
    assert [label for _, label, _ in progress.running_cells()] == ["a", "b"]
    progress.step("export", "b", "ok", 1.0)
    assert [label for _, label, _ in progress.running_cells()] == ["a", "c"]
    progress.step("export", "a", "ok", 1.0)
    progress.step("export", "c", "ok", 1.0)
    progress.begin("bench", ["d"])
    assert [(phase, label) for phase, label, _ in progress.running_cells()] == [("bench", "d")]
    assert lines[0].startswith("[  1/4] export b: ok")


def test_live_progress_prints_the_same_lines_above_its_bar():
    stream = io.StringIO()
    progress = LiveProgress({"export": 1}, print, stream=stream)
    progress.begin("export", ["a -> tflite"])
    progress.step("export", "a -> tflite", "ok", 2.0)
    progress.close()
    assert "[  1/1] export a -> tflite: ok    2.0s" in stream.getvalue()


def test_a_failed_cell_shows_the_tail_of_its_log(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main
    from pipeline.sweep import runner

    log = tmp_path / "cell.log"
    log.write_text("".join(f"framework line {i}\n" for i in range(30)) + "RuntimeError: the real cause\n")

    def failing(recipe, workspace, store, executor, **kwargs):
        kwargs["out"]("[  1/1] export m/torch fp32 -> tflite: failed    1.0s  (elapsed    1s, eta ~   0s)")
        return runner.SweepSummary(failures=[("export m/torch fp32 -> tflite", "boom"), ("bench x", "no log")],
                                   logs={"export m/torch fp32 -> tflite": str(log)}, seconds=1.0)

    monkeypatch.setattr(runner, "run_sweep", failing)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    assert main(["sweep", str(recipe), "--workspace", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert _unexpected(lines) == []
    assert lines[-11:-9] == ["  FAILED export m/torch fp32 -> tflite: boom", f"    last lines of {log}:"]
    assert lines[-2:] == ["    | RuntimeError: the real cause", "  FAILED bench x: no log"]
    assert sum(line.startswith("    | ") for line in lines) == 8
