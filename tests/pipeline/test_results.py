import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import ConfigError
from pipeline.results import SCHEMA_VERSION, fetch_measurements, insert_measurement, open_store

REPO = str(Path(__file__).resolve().parents[2])


def record(i: int = 0, status: str = "ok") -> dict:
    return {"kind": "emulated", "status": status, "artifact_dir": f"a{i}", "manifest_sha256": "f" * 64,
            "target": "tflite", "runtime": "litert", "delegate_requested": "xnnpack", "delegate_used": "xnnpack",
            "threads": 1, "device_profile": "rpi4", "result": {"latency_ms_p50": 1.5 + i, "runs": 100},
            "error": None, "context": {"profile": {"name": "rpi4"}}}


def test_insert_and_read_back(tmp_path):
    with open_store(tmp_path / "r.sqlite") as store:
        row_id = insert_measurement(store, record())
        rows = fetch_measurements(store, device_profile="rpi4")
    assert rows[0]["id"] == row_id and rows[0]["latency_ms_p50"] == 1.5 and rows[0]["kind"] == "emulated"
    assert json.loads(rows[0]["context_json"])["profile"]["name"] == "rpi4"


def test_store_is_wal_and_versioned(tmp_path):
    path = tmp_path / "r.sqlite"
    with open_store(path) as store:
        assert store.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(ConfigError, match="schema 99"), open_store(path):
        pass


def test_a_bad_row_leaves_the_store_intact(tmp_path):
    with open_store(tmp_path / "r.sqlite") as store:
        insert_measurement(store, record(0))
        with pytest.raises(sqlite3.IntegrityError):
            insert_measurement(store, record(1, status="exploded"))
        assert len(fetch_measurements(store)) == 1


def test_not_a_database(tmp_path):
    path = tmp_path / "r.sqlite"
    path.write_bytes(b"hello" * 1000)
    with pytest.raises(ConfigError, match="not a usable results store"), open_store(path):
        pass


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "r.sqlite"
    writer = (
        "import sys; from pipeline.results import open_store, insert_measurement\n"
        "from tests_record import record\n"
    )
    (tmp_path / "tests_record.py").write_text(
        "def record(i):\n"
        "    return {'kind': 'measured', 'status': 'ok', 'artifact_dir': str(i), 'manifest_sha256': 'x',\n"
        "            'target': 'tflite', 'runtime': 'litert', 'delegate_requested': 'cpu', 'device_profile': 'host',\n"
        "            'result': {'runs': i}}\n"
    )
    script = writer + f"with open_store(__import__('pathlib').Path({str(path)!r})) as s:\n    [insert_measurement(s, record(i)) for i in range(60)]\n"
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path,
                              env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"}) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with open_store(path) as store:
        assert len(fetch_measurements(store)) == 180
