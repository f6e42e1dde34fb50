"""Atomic file writes: a reader sees the old file or the complete new one, never a half."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pot_zk.exceptions import PotZkError


class StorageError(PotZkError):
    """A file could not be written (disk full, read-only or failing file system). Not retryable
    here: free space or fix the directory, then run the command again (a run that had started:
    ``pot-zk resume RUN``); every file is written atomically or cut back, so nothing half-written
    stays behind."""

    def __init__(self, path: Path | str, error: BaseException) -> None:
        errno_name = getattr(error, "errno", None)
        super().__init__(
            f"cannot write {path}: {error}. Free space (or fix the directory), then run the command again "
            "(a run that had started: `pot-zk resume RUN`).",
            path=str(path),
            errno=errno_name,
            cause=f"{type(error).__name__}: {error}",
        )
        self.path = str(path)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise StorageError(path, error) from error
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as error:
            raise StorageError(path, error) from error
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def staging_directory(parent: Path) -> Iterator[Path]:
    """A private (0700) directory in ``parent`` (the file system of the entry it becomes: a
    rename publishes it), removed on exit with whatever was not published out of it."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(staged: Path, entry: Path) -> None:
    """Rename ``staged`` (a file or a directory) to ``entry``; an existing directory ``entry``
    is replaced whole (moved aside, then removed), so a reader sees the old entry or the new."""
    entry = Path(entry)
    if entry.is_dir():
        rejected = Path(tempfile.mkdtemp(prefix=".rejected-", dir=entry.parent))
        os.replace(entry, rejected / entry.name)
        shutil.rmtree(rejected, ignore_errors=True)
    os.replace(staged, entry)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: Path, value: Any) -> None:
    write_bytes_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def append_line(path: Path, line: bytes) -> None:
    """Append one complete line durably; on failure cut the file back to where it was, so a
    full disk never leaves half a record that a later append would glue onto."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(28, f"short write ({written} of {len(line)} bytes)")
            os.fsync(fd)
        except OSError as error:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass  # a later resume cuts an incomplete last line
            raise StorageError(path, error) from error
    finally:
        os.close(fd)
