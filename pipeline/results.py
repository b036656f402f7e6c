"""The SQLite results store: one row per measurement, schema-versioned, WAL mode, safe for concurrent writers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.records import NUMERIC_FIELDS

SCHEMA_VERSION = 2
DEFAULT_STORE = Path("workspace/results.sqlite")


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('measured', 'emulated')),
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'unavailable')),
    error TEXT,
    artifact_dir TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    target TEXT NOT NULL,
    runtime TEXT NOT NULL,
    delegate_requested TEXT NOT NULL,
    delegate_used TEXT,
    threads INTEGER,
    device_profile TEXT NOT NULL,
    {", ".join(f"{name} REAL" for name in NUMERIC_FIELDS)},
    result_json TEXT NOT NULL,
    context_json TEXT NOT NULL,
    cell_key TEXT
);
CREATE INDEX IF NOT EXISTS measurements_by_artifact ON measurements (manifest_sha256);
CREATE INDEX IF NOT EXISTS measurements_by_cell ON measurements (cell_key);
CREATE TABLE IF NOT EXISTS exports (
    key TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    model TEXT NOT NULL,
    framework TEXT NOT NULL,
    variant TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    artifact_dir TEXT,
    manifest_sha256 TEXT,
    error TEXT,
    seconds REAL
);
"""


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring an older store up to SCHEMA_VERSION in place (v1 -> v2: sweep cell keys + exports table)."""
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        return
    row = connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:  # another writer created the tables a moment ago and has not stamped them yet
        return
    if int(row[0]) == 1:
        connection.execute("ALTER TABLE measurements ADD COLUMN cell_key TEXT")
        connection.execute("UPDATE meta SET value='2' WHERE key='schema_version'")


def connect(path: Path = DEFAULT_STORE) -> sqlite3.Connection:
    """Open (creating if needed) the store at `path`; ConfigError for a newer or foreign file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = sqlite3.connect(path, timeout=30.0)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA busy_timeout=30000")
        with connection:
            _migrate(connection)
            connection.executescript(SCHEMA)
            connection.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        version = int(connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path} is not a usable results store ({exc}); pass another --store path.") from None
    if version != SCHEMA_VERSION:
        connection.close()
        raise ConfigError(f"{path} has results schema {version}; this pipeline reads schema {SCHEMA_VERSION}.")
    connection.row_factory = sqlite3.Row
    return connection


@contextmanager
def open_store(path: Path = DEFAULT_STORE) -> Iterator[sqlite3.Connection]:
    connection = connect(path)
    try:
        yield connection
    finally:
        connection.close()


FINAL_STATUSES = ("ok", "unavailable")  # a cell with one of these is not measured again


def insert_measurement(connection: sqlite3.Connection, record: dict[str, Any]) -> int | None:
    """Append one measurement (as produced by Measurement.to_json) in its own transaction; returns its id.

    A sweep cell (`cell_key`) gets one final row: if another writer stored one first, nothing is
    inserted and None is returned.
    """
    result = record.get("result") or {}
    row = {
        "created_at": record.get("created_at") or datetime.now(UTC).isoformat(timespec="seconds"),
        **{key: record[key] for key in ("kind", "status", "artifact_dir", "manifest_sha256", "target", "runtime",
                                        "delegate_requested", "device_profile")},
        "error": record.get("error"), "delegate_used": record.get("delegate_used"), "threads": record.get("threads"),
        **{name: result.get(name) for name in NUMERIC_FIELDS},
        "result_json": json.dumps(result), "context_json": json.dumps(record.get("context") or {}),
        "cell_key": record.get("cell_key"),
    }
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    final = row["cell_key"] is not None and row["status"] in FINAL_STATUSES
    with connection:
        if final:  # a sweep cell is measured once, whichever writer finishes first
            connection.execute("BEGIN IMMEDIATE")  # holds the write lock from the check to the insert
            if cached_cell(connection, row["cell_key"]) is not None:
                return None
        cursor = connection.execute(f"INSERT INTO measurements ({columns}) VALUES ({marks})", tuple(row.values()))
    return int(cursor.lastrowid)


EXPORT_COLUMNS = ("key", "created_at", "model", "framework", "variant", "target", "status", "artifact_dir",
                  "manifest_sha256", "error", "seconds")


def record_export(connection: sqlite3.Connection, row: dict[str, Any]) -> None:
    """Insert or replace the outcome of one export cell (keyed by its content hash)."""
    row = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), **row}
    row = {column: row.get(column) for column in EXPORT_COLUMNS}
    columns = ", ".join(row)
    with connection:
        connection.execute(f"INSERT OR REPLACE INTO exports ({columns}) VALUES ({', '.join('?' for _ in row)})",
                           tuple(row.values()))


def fetch_exports(connection: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in connection.execute("SELECT * FROM exports ORDER BY model, framework, target, variant")]


def cached_cell(connection: sqlite3.Connection, cell_key: str) -> dict[str, Any] | None:
    """The newest final (ok or unavailable) measurement of a benchmark cell, if any."""
    row = connection.execute(
        f"SELECT * FROM measurements WHERE cell_key = ? AND status IN {FINAL_STATUSES} ORDER BY id DESC LIMIT 1",
        (cell_key,),
    ).fetchone()
    return dict(row) if row else None


def fetch_measurements(connection: sqlite3.Connection, **where: Any) -> list[dict[str, Any]]:
    """Rows as dicts, newest first, filtered by equality on the given columns."""
    unknown = set(where) - {"kind", "status", "target", "runtime", "device_profile", "manifest_sha256", "artifact_dir"}
    if unknown:
        raise ConfigError(f"Cannot filter results by {sorted(unknown)}.")
    clauses = " AND ".join(f"{column} = ?" for column in where)
    sql = "SELECT * FROM measurements" + (f" WHERE {clauses}" if clauses else "") + " ORDER BY id DESC"
    return [dict(row) for row in connection.execute(sql, tuple(where.values()))]
