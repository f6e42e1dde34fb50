"""Reading a file someone else wrote without letting it choose the reader's time or memory:
:func:`read_small_file` opens only a regular file (not a link, not a pipe, not a device) of at
most a given size. Verify reads the notes it takes from a bundle (review34) and the trainer's
key directory it is pointed at (review49) through it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

SMALL_FILE_BYTES = 1 << 16
"""The most :func:`read_small_file` reads."""


def read_small_file(path: Path, limit: int = SMALL_FILE_BYTES) -> str | None:
    """The text of ``path`` when it is a regular file (not a link, not a pipe) of at most
    ``limit`` bytes; None otherwise, or when it cannot be read. review34 made verify block on a
    lock record that was a named pipe and read a link to /dev/zero until memory ran out."""
    data = read_small_bytes(path, limit)
    return None if data is None else data.decode("utf-8", errors="replace")


def read_small_bytes(path: Path, limit: int = SMALL_FILE_BYTES) -> bytes | None:
    """:func:`read_small_file`'s bytes, read once (a verifying key is loaded from the bytes whose
    hash was checked: review56)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode) or status.st_size > limit:
                return None
            return handle.read(limit + 1)[:limit]
        except OSError:
            return None
