import pytest

from pipeline.core.errors import ConfigError
from pipeline.core.files import staged_directory


def test_failed_block_publishes_nothing(tmp_path):
    out = tmp_path / "artifact"
    with pytest.raises(RuntimeError), staged_directory(out) as staging:
        (staging / "model.tflite").write_bytes(b"half")
        raise RuntimeError("converter crashed")
    assert list(tmp_path.iterdir()) == []


def test_success_replaces_a_previous_artifact(tmp_path):
    out = tmp_path / "artifact"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    (out / "stale.bin").write_bytes(b"old")
    with staged_directory(out) as staging:
        (staging / "manifest.json").write_text('{"new": true}')
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]


def test_a_foreign_directory_is_never_overwritten(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    with pytest.raises(ConfigError, match="not empty"), staged_directory(out):
        pass
    assert (out / "notes.txt").read_text() == "precious"



STAGE = """
import sys, time
from pathlib import Path
from pipeline.core.files import staged_directory
out, tag, started, seconds = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
with staged_directory(out) as staging:
    started.touch()
    (staging / "manifest.json").write_text(tag)
    time.sleep(seconds)
"""
HOLD = """
import sys, time
from pathlib import Path
from pipeline.core.locks import exclusive_lock
with exclusive_lock(Path(sys.argv[1])):
    Path(sys.argv[2]).touch()
    time.sleep(60)
"""


def _spawn(script: str, *args: object):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)])


def _wait_for(path, seconds: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_two_writers_of_one_directory_take_turns(tmp_path):
    out, marks = tmp_path / "out" / "artifact", tmp_path / "marks"
    marks.mkdir()
    first = _spawn(STAGE, out, "first", marks / "first", 2.0)
    _wait_for(marks / "first")
    second = _spawn(STAGE, out, "second", marks / "second", 0.0)
    assert first.wait(60) == 0 and second.wait(60) == 0
    assert (out / "manifest.json").read_text() == "second"  # the later writer waited, then replaced it
    assert [p.name for p in out.parent.iterdir()] == ["artifact"]  # no .partial, no lock file left


def test_a_killed_writers_partial_is_removed_by_the_next_writer(tmp_path):
    out, marks = tmp_path / "out" / "artifact", tmp_path / "marks"
    marks.mkdir()
    writer = _spawn(STAGE, out, "killed", marks / "killed", 60.0)
    _wait_for(marks / "killed")
    partials = list(out.parent.glob(".artifact.*.partial"))
    assert len(partials) == 1
    writer.kill()
    writer.wait(10)
    with staged_directory(out) as staging:
        assert not partials[0].exists()  # its writer's lock was free: the leftover was stale
        (staging / "manifest.json").write_text("{}")
    assert [p.name for p in out.parent.iterdir()] == ["artifact"]


def test_a_held_lock_names_its_owner_and_can_refuse_to_wait(tmp_path):
    import os

    from pipeline.core.locks import LockBusyError, exclusive_lock, held_by

    path = tmp_path / "cell.lock"
    assert held_by(path) is None
    with exclusive_lock(path) as waited:
        assert waited is False
        assert held_by(path).pid == os.getpid()
    assert not path.exists() and held_by(path) is None
    holder = _spawn(HOLD, path, tmp_path / "held")
    try:
        _wait_for(tmp_path / "held")
        with pytest.raises(LockBusyError, match=f"pid {holder.pid}"), exclusive_lock(path, wait=False):
            pass
    finally:
        holder.kill()
        holder.wait(10)
    with exclusive_lock(path, wait=False):  # the kernel freed the killed holder's lock
        pass
