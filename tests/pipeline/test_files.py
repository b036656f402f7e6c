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
