"""One process at a time per run directory: an exclusive lock that train, resume, respond,
prove-pending, export and :func:`pot_zk.hooks.proven_training` take before they read or write
anything of the run.

The lock is filelock's ``FileLock`` on ``RUN/.pot-zk.lock`` (``flock`` on Unix), so the
operating system drops it when its holder exits or is killed. While it is held,
``RUN/.pot-zk.lock.json`` names the holder (pid, host, command, since); a second process gets a
:class:`RunInUseError` naming it, before it writes anything. A holder record found without a
held lock was left by a process that is gone (killed before it could remove it): the next
process takes the lock and says so (:attr:`RunLock.killed`). Until a run's lifecycle has
audited the takeover (:meth:`RunLock.takeover_audited`: ``run.lock_taken_over``), the killed
holders stay on record: a command that lets go without auditing it (an export, a train refused
because the run exists, a respond with a bad challenge) puts the record back, and a holder that
is killed in turn keeps them in its own record (``killed_before``), so the next run that audits
names every one (found by reviews: the takeover dropped out of the audit trail).

    with RunLock(run_dir, "train") as lock:     # RunInUseError when another process holds it
        for holder in lock.killed: ...          # the holders that were killed, not yet audited
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
MAKE_ATTEMPTS = 5
"""How often :meth:`RunLock.acquire` makes the run directory again when it went while the lock
file was opened (a process that lets go of a run it had made, with nothing written, removes it)."""


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
        return cls.of(_record(path))

    @classmethod
    def parse(cls, text: str | None) -> "LockHolder | None":
        """The record in ``text``; None when it is not one."""
        try:
            return cls.of(json.loads(text or ""))
        except ValueError:
            return None

    @classmethod
    def of(cls, data: Any) -> "LockHolder | None":
        try:
            return cls(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["since"]))
        except (KeyError, TypeError, ValueError):
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
    killed: tuple[LockHolder, ...] = ()
    """The killed holders the first acquisition took over from, oldest first (a nested one
    reports them: ``pot-zk train`` takes the lock before the run's lifecycle, which audits them)."""
    record_found: dict[str, Any] | None = None
    """The holder record the first acquisition found (put back on release unless audited)."""
    audited: bool = False


_HELD: dict[Path, _Held] = {}
_GUARD = threading.Lock()


class RunLock:
    """The exclusive lock of ``run_dir`` for ``command`` (a name for messages: ``pot-zk train``).
    :meth:`acquire` creates the directory if needed; use as a context manager."""

    def __init__(self, run_dir: str | Path, command: str) -> None:
        self.run_dir = Path(run_dir)
        self.command = command
        self.killed: tuple[LockHolder, ...] = ()
        """The holders killed with the lock held, oldest first, not yet audited (empty: none)."""
        self._key: Path | None = None
        self._created = False

    def acquire(self) -> "RunLock":
        if self._key is not None:
            raise RuntimeError(f"the lock of {self.run_dir} is already taken by this RunLock")
        with _GUARD:
            for attempt in range(MAKE_ATTEMPTS):
                self._created = not self.run_dir.exists()
                self.run_dir.mkdir(parents=True, exist_ok=True)
                key = self.run_dir.resolve()
                held = _HELD.get(key)
                if held is not None:
                    if held.thread != threading.get_ident():
                        raise RunInUseError(self.run_dir, held.holder)
                    held.count += 1
                    self._key = key
                    self.killed = () if held.audited else held.killed
                    return self
                lock = FileLock(str(key / LOCK_FILE), timeout=0)
                try:
                    lock.acquire(timeout=0)
                    break
                except Timeout:
                    raise RunInUseError(self.run_dir, LockHolder.read(key / HOLDER_FILE)) from None
                except FileNotFoundError:  # review44: the process that let go of the run removed it, left empty, as the lock file was opened
                    if attempt + 1 == MAKE_ATTEMPTS:
                        raise ConfigurationError(
                            f"cannot lock {self.run_dir}: its directory was removed {MAKE_ATTEMPTS} times while its lock was taken; "
                            "is another program removing it?",
                            key="run_dir",
                            run_dir=str(self.run_dir),
                        ) from None
            try:
                found = _record(key / HOLDER_FILE)
                self.killed = _killed_in(found)
                holder = LockHolder.current(self.command)
                write_json_atomic(key / HOLDER_FILE, _with_killed(holder, self.killed))
            except BaseException:
                lock.release()
                raise
            _HELD[key] = _Held(threading.get_ident(), 1, lock, holder, self.killed, found)
            self._key = key
        return self

    def takeover_audited(self) -> None:
        """The run's audit trail now names :attr:`killed`: they leave the record."""
        if self._key is None or not self.killed:
            return
        with _GUARD:
            held = _HELD[self._key]
            held.audited = True
            write_json_atomic(self._key / HOLDER_FILE, asdict(held.holder))
        self.killed = ()

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
                if held.killed and not held.audited:  # not audited yet: the next command that can audit finds them
                    write_json_atomic(key / HOLDER_FILE, held.record_found)
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


def _record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _killed_in(record: dict[str, Any] | None) -> tuple[LockHolder, ...]:
    """The holders a record found without a held lock names, oldest first: those its own holder
    had not audited (``killed_before``), then its holder."""
    holder = LockHolder.of(record)
    if holder is None:
        return ()
    earlier = record.get("killed_before") if isinstance(record.get("killed_before"), list) else []
    return (*[h for h in map(LockHolder.of, earlier) if h is not None], holder)


def _with_killed(holder: LockHolder, killed: tuple[LockHolder, ...]) -> dict[str, Any]:
    return {**asdict(holder), **({"killed_before": [asdict(h) for h in killed]} if killed else {})}


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
