"""One process at a time per run directory: an exclusive lock that train, resume, respond,
prove-pending, export and :func:`pot_zk.hooks.proven_training` take before they read or write
anything of the run.

The lock is filelock's ``FileLock`` on ``RUN/.pot-zk.lock`` (``flock`` on Unix), so the
operating system drops it when its holder exits or is killed. While it is held,
``RUN/.pot-zk.lock.json`` names the holder (pid, host, command, since); a second process gets a
:class:`RunInUseError` naming it, before it writes anything. A holder record found without a
held lock was left by a process that is gone (killed before it could remove it): the next
process takes the lock and says so (:attr:`RunLock.previous`). A command that does not audit
the takeover (``pot-zk export``: ``keep_killed_record=True``) puts that record back as it lets
go, so the next command that does (a resume) still finds it.

    with RunLock(run_dir, "train") as lock:     # RunInUseError when another process holds it
        if lock.previous is not None: ...       # the holder that was killed
        ...

Within one thread, taking the lock of a directory that thread already holds nests (the
``pot-zk train`` command holds it while the run it starts takes it again); another thread of
the same process is refused like another process.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock, Timeout

from pot_zk.core.atomic import write_json_atomic
from pot_zk.exceptions import ConfigurationError

LOCK_FILE = ".pot-zk.lock"
HOLDER_FILE = ".pot-zk.lock.json"


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a run directory's lock."""

    pid: int
    host: str
    command: str
    since: str

    @classmethod
    def current(cls, command: str) -> "LockHolder":
        return cls(os.getpid(), socket.gethostname(), command, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @classmethod
    def read(cls, path: Path) -> "LockHolder | None":
        """The record at ``path``; None when there is none or it is not one (cut short, edited)."""
        try:
            return cls.parse(path.read_text())
        except OSError:
            return None

    @classmethod
    def parse(cls, text: str | None) -> "LockHolder | None":
        """The record in ``text``; None when it is not one."""
        try:
            data = json.loads(text or "")
            return cls(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["since"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} ({self.command}, since {self.since})"

    def gone(self) -> bool:
        """The holder is a process of this host that no longer runs (another host's: unknown, False)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


class RunInUseError(ConfigurationError):
    """Another process holds the run directory's lock. ``holder`` names it (None when it had not
    recorded itself yet)."""

    def __init__(self, run_dir: Path, holder: LockHolder | None) -> None:
        who = holder.describe() if holder is not None else "another process (it has not recorded its pid yet)"
        super().__init__(
            f"{run_dir} is in use by {who}; wait for it to end, or stop it first",
            key="run_dir",
            run_dir=str(run_dir),
            holder=None if holder is None else asdict(holder),
        )
        self.run_dir = run_dir
        self.holder = holder


@dataclass
class _Held:
    thread: int
    count: int
    lock: FileLock
    holder: LockHolder
    previous: LockHolder | None = None
    """The killed holder the first acquisition took over from (a nested one reports it: ``pot-zk
    train`` takes the lock before the run's lifecycle, which audits the takeover)."""


_HELD: dict[Path, _Held] = {}
_GUARD = threading.Lock()


class RunLock:
    """The exclusive lock of ``run_dir`` for ``command`` (a name for messages: ``pot-zk train``).
    :meth:`acquire` creates the directory if needed; use as a context manager."""

    def __init__(self, run_dir: str | Path, command: str, keep_killed_record: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.command = command
        self.keep_killed_record = keep_killed_record
        """Put a killed holder's record back on release (for a command that does not audit the takeover)."""
        self.previous: LockHolder | None = None
        """The holder a killed process left on record, when this lock took over from it."""
        self._key: Path | None = None
        self._created = False

    def acquire(self) -> "RunLock":
        if self._key is not None:
            raise RuntimeError(f"the lock of {self.run_dir} is already taken by this RunLock")
        self._created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        key = self.run_dir.resolve()
        with _GUARD:
            held = _HELD.get(key)
            if held is not None:
                if held.thread != threading.get_ident():
                    raise RunInUseError(self.run_dir, held.holder)
                held.count += 1
                self._key = key
                self.previous = held.previous
                return self
            lock = FileLock(str(key / LOCK_FILE), timeout=0)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                raise RunInUseError(self.run_dir, LockHolder.read(key / HOLDER_FILE)) from None
            try:
                self.previous = LockHolder.read(key / HOLDER_FILE)
                holder = LockHolder.current(self.command)
                write_json_atomic(key / HOLDER_FILE, asdict(holder))
            except BaseException:
                lock.release()
                raise
            _HELD[key] = _Held(threading.get_ident(), 1, lock, holder, self.previous)
            self._key = key
        return self

    def release(self) -> None:
        """Let go of the lock (the last of nested acquisitions removes the holder record and
        unlocks). Releasing a lock that is not held does nothing."""
        key, self._key = self._key, None
        if key is None:
            return
        with _GUARD:
            held = _HELD[key]
            held.count -= 1
            if held.count:
                return
            del _HELD[key]
            left_empty = False
            try:
                if self.keep_killed_record and held.previous is not None:
                    write_json_atomic(key / HOLDER_FILE, asdict(held.previous))
                else:
                    (key / HOLDER_FILE).unlink(missing_ok=True)
                left_empty = self._created and [entry.name for entry in key.iterdir()] == [LOCK_FILE]
                if left_empty:  # refused before anything was written: leave no directory behind
                    (key / LOCK_FILE).unlink(missing_ok=True)
            finally:
                held.lock.release()
            if left_empty:
                try:
                    key.rmdir()
                except OSError:  # another process made something there meanwhile
                    pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


@contextmanager
def shared_lock(run_dir: str | Path) -> Iterator[None]:
    """For a reader that cannot take :class:`RunLock` (``pot-zk export`` of a run another
    account owns, or on a read-only file system): a shared ``flock`` on the lock file, opened
    read-only, for the duration. RunInUseError when a process holds the run's lock now (the
    exclusive lock excludes the shared one); a trainer starting meanwhile is refused the same
    way. Without a lock file (never locked, or deleted), a holder record names the process that
    holds it, unless that process is gone (a pid of this host no longer running): RunInUseError
    then too, also when the record cannot be read (another account's is private)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        record = Path(run_dir) / HOLDER_FILE
        if record.exists():
            holder = LockHolder.read(record)
            if holder is None or not holder.gone():
                raise RunInUseError(Path(run_dir), holder) from None
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUseError(Path(run_dir), LockHolder.read(Path(run_dir) / HOLDER_FILE)) from None
        yield
    finally:
        os.close(fd)
