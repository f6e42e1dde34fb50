"""Temporary directories of one process, and the removal of those a killed process left.

A command removes its temporary directories when it ends, on SIGTERM and SIGINT too; a SIGKILL
leaves them (an unpacked export, a copy of a run's records). :func:`scratch_directory` names
each after its process (``<prefix><pid>-<random>``, mode 0700, in ``$TMPDIR``), and first
removes the directories of that prefix whose process is gone: this user's only, and none
whose pid is alive (a reused pid keeps a stale directory, never removes a live one).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path


def scratch_directory(prefix: str) -> Path:
    """A new directory ``$TMPDIR/<prefix><pid>-XXXX`` of this process, after removing those of
    ``prefix`` that a process no longer running left."""
    remove_left_behind(prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def remove_left_behind(prefix: str) -> list[Path]:
    """Remove ``$TMPDIR/<prefix><pid>-*`` directories of this user whose process is gone; the
    ones removed."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)-[^/]+")
    removed = []
    try:
        entries = list(os.scandir(tempfile.gettempdir()))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        if _running(int(match.group(1))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def _running(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process's: leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
