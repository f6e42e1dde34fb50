"""Temporary directories of one process, and the removal of those a killed process left.

A command removes its temporary directories when it ends, on SIGTERM and SIGINT too; a SIGKILL
leaves them (an unpacked export, a key holder's witness file: a step's private inputs).
:func:`scratch_directory` makes each (``$TMPDIR/<prefix><pid>-<random>``, mode 0700) with a lock
file in it that the process holds while it lives (an advisory ``flock``, released by the kernel
when the process ends, however it ends). It first removes the directories of that prefix whose
lock it can take: their process is gone. A directory of another user's, a link, or one without
its lock file and the mark its maker writes once it holds the lock (:data:`LOCKED`: a process
between making the directory and locking it, when the lock file exists but is not locked yet)
is left alone. A pid alone
could not tell: another PID namespace (a container) or another host sharing ``$TMPDIR`` has
processes this one cannot see (review56).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

LOCK = ".pot-zk-scratch.lock"
LOCKED = ".pot-zk-scratch.locked"
"""Written by the maker once it holds :data:`LOCK`: before it, a free lock is no sign of a gone
process (filelock creates the lock file, then locks it)."""
_HELD: dict[str, FileLock] = {}
"""The locks of this process's scratch directories, held until :func:`remove_scratch`."""


def scratch_directory(prefix: str) -> Path:
    """A new directory ``$TMPDIR/<prefix><pid>-XXXX`` of this process (its lock held), after
    removing those of ``prefix`` whose process is gone."""
    remove_left_behind(prefix)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    lock = FileLock(str(path / LOCK), timeout=0)
    lock.acquire()
    _HELD[str(path)] = lock
    (path / LOCKED).touch()
    return path


def remove_scratch(path: Path) -> None:
    """Remove a directory :func:`scratch_directory` made, and release its lock."""
    shutil.rmtree(path, ignore_errors=True)
    lock = _HELD.pop(str(path), None)
    if lock is not None:
        lock.release()


def remove_left_behind(prefix: str) -> list[Path]:
    """Remove the ``$TMPDIR/<prefix><pid>-*`` directories of this user whose lock no process
    holds; the ones removed."""
    pattern = re.compile(re.escape(prefix) + r"\d+-[^/]+")
    removed = []
    try:
        entries = list(os.scandir(tempfile.gettempdir()))
    except OSError:
        return removed
    for entry in entries:
        if pattern.fullmatch(entry.name) is None or entry.path in _HELD:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            lock_path = os.path.join(entry.path, LOCK)
            if not os.path.isfile(lock_path) or os.path.islink(lock_path) or not os.path.isfile(os.path.join(entry.path, LOCKED)):
                continue
            lock = FileLock(lock_path, timeout=0)
            lock.acquire()
        except (OSError, Timeout):
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        finally:
            lock.release()
    return removed
