"""File helpers: content hashes, gzip sizes and atomic writes."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.locks import LockOwner, exclusive_lock

log = logging.getLogger("pipeline")

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of one file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_path(path: Path) -> str:
    """Hex SHA-256 of a file, or of a directory's relative names and file bytes."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(path)).encode())
        digest.update(sha256_file(item).encode())
    return digest.hexdigest()


def gzip_size(path: Path, level: int = 9) -> int:
    """Bytes of `path` after gzip at `level` (what a download over HTTP would carry)."""
    return len(gzip.compress(path.read_bytes(), compresslevel=level, mtime=0))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON next to `path` and rename it into place, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; manifests are meant to be read
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def lock_path(path: Path) -> Path:
    """The lock file that guards writes to `path` (hidden, beside it; gone when nobody writes)."""
    return path.parent / f".{path.name}.lock"


def _waiting(path: Path) -> Callable[[LockOwner], None]:
    return lambda owner: log.warning("%s is being written by %s; waiting for it to finish.", path, owner.describe())


@contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    Writers of the same path take turns (a lock beside it), so the temporary name is never shared.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.partial{path.suffix}"
    with exclusive_lock(lock_path(path), on_wait=_waiting(path)):
        tmp.unlink(missing_ok=True)  # left by a killed writer: the lock proves it is gone
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _check_out_dir(out_dir: Path, marker: str) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"Output path {out_dir} is a file; pass a directory for --out.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / marker).exists():
        raise ConfigError(
            f"Output directory {out_dir} is not empty and holds no {marker}; "
            "choose a new --out directory so nothing of yours is overwritten."
        )


@contextmanager
def staged_directory(out_dir: Path, marker: str = "manifest.json") -> Iterator[Path]:
    """Yield an empty temporary directory that replaces `out_dir` only if the block succeeds.

    An existing `out_dir` is replaced only when it is empty or holds `marker`
    (a previous artifact); anything else raises ConfigError and is left untouched.
    Writers of one `out_dir` take turns (a lock beside it): the last to finish wins, and a
    `.partial` directory is removed only under the lock, when its writer is known to be gone.
    """
    _check_out_dir(out_dir, marker)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock_path(out_dir), on_wait=_waiting(out_dir)):
        _check_out_dir(out_dir, marker)  # again: it may have changed while we waited
        for stale in out_dir.parent.glob(f".{out_dir.name}.*.partial"):  # left by a killed writer
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".partial"))
        tmp.chmod(0o755)  # mkdtemp's 0700 would make the published artifact private
        try:
            yield tmp
            if out_dir.exists():
                old = out_dir.with_name(f".{out_dir.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(out_dir, old)
                os.replace(tmp, out_dir)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
