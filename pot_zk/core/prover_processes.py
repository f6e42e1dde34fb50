"""The prover processes this process started, so that an interruption can end them all.

A prover runs in a session of its own (:mod:`pot_zk.core.runner`), out of reach of the
terminal's Ctrl-C. :func:`start_prover` starts one and tracks its process group until
:func:`forget`; :func:`stop_provers`, callable from any thread (the CLI's signal handling calls
it the moment a signal arrives), kills every tracked group, tells every helper process the
provers reported to stop, and marks the process as stopping: from then on :func:`start_prover` refuses
and a prover's waiting thread raises :class:`Interrupted` rather than recording an outcome or
retrying, until :func:`allow_provers`.

Helper processes: a prover program that starts a process outside its own group (the zk-groth16
key holder, :mod:`provers.groth16_held`) appends one line ``PID START`` to the file named by
``$POT_ZK_HELPER_PIDS``, START being :func:`process_start` of PID. :func:`stop_provers` sends
SIGTERM (and SIGCONT) to the group of each PID whose start time is still START, so a pid the
system has reused since is left alone (where there is no ``/proc`` nothing is reported and
helpers outlive an interruption until they time out). A helper may serve other runs too (a key
holder is shared by every run proving with its key): told to stop, it ends unless another run's
prover is waiting for it (:mod:`pot_zk.backends.groth16.warm`).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

HELPERS_ENV = "POT_ZK_HELPER_PIDS"


class Interrupted(KeyboardInterrupt):
    """pot-zk is being interrupted: raised in the main thread by the CLI's signal handler
    (``signal_name`` SIGINT or SIGTERM), and in a prover's waiting thread (``"stopped"``) once
    :func:`stop_provers` ran."""

    def __init__(self, signal_name: str = "SIGINT", after_end: bool = False) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.after_end = after_end
        """Raised by :func:`closing_run` once the run's end was written: the command's work is done."""


_closing: list[list[str | None]] = []
"""One entry per open :func:`closing_run` block of the main thread: [the signal it deferred, what it finishes]."""


@contextmanager
def closing_run(raise_deferred: bool = True, *, finishing: str = "the run's end", ends_run: bool = True) -> Iterator[None]:
    """Writing the end of a run (its final records and ``run.end``), or records that belong
    together (``finishing`` names them; ``ends_run=False``: not the end of the command's run): the
    CLI's first SIGINT or SIGTERM that comes meanwhile is deferred (:func:`defer_interrupt`) and
    raised as :class:`Interrupted` when the outermost block ends without an error of its own, so a
    run's trail is never left without its ``run.end``, nor a proof's outcome in the audit trail
    without its record in ``proofs.jsonl`` (review44), by a signal; ``raise_deferred=False`` (the
    run ends with an error that is on its way out): dropped. A second signal still ends the
    process at once (:mod:`pot_zk.cli.interrupt`). Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _closing.append([None, finishing])
    try:
        yield
    finally:
        deferred = _closing.pop()[0]
        if _closing and deferred is not None:
            _closing[-1][0] = deferred
    if deferred is not None and not _closing and raise_deferred:
        raise Interrupted(deferred, after_end=ends_run)


def defer_interrupt(signal_name: str) -> str | None:
    """Called by the CLI's signal handler (main thread): while a :func:`closing_run` block is
    open, what the outermost one finishes (it then raises the interruption when it ends); else None."""
    if not _closing:
        return None
    _closing[-1][0] = signal_name
    return _closing[0][1]


_live: dict[int, subprocess.Popen[bytes]] = {}
_lock = threading.Lock()
_stopped = threading.Event()
_helpers_file: str | None = None


def start_prover(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start a prover program in a new session with pipes for stdin, stdout and stderr, and
    track it; raises :class:`Interrupted` while stopping, OSError when it cannot start."""
    environment = {**os.environ, HELPERS_ENV: _helpers_path()}
    with _lock:
        if _stopped.is_set():
            raise Interrupted("stopped")
        process = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=environment
        )
        _live[process.pid] = process
    return process


def forget(process: subprocess.Popen[bytes]) -> None:
    """Stop tracking a prover that has been waited for."""
    with _lock:
        _live.pop(process.pid, None)


def stopping() -> bool:
    return _stopped.is_set()


def stop_provers() -> list[int]:
    """Kill every tracked prover group, tell every reported helper process to stop (SIGTERM);
    refuse new provers until :func:`allow_provers`. Returns the prover groups killed."""
    with _lock:
        _stopped.set()
        groups = list(_live)
    for pgid in groups:
        kill_group(pgid)
    for pid in _reported_helpers():
        kill_group(pid, signal.SIGTERM)
        kill_group(pid, signal.SIGCONT)  # a stopped helper handles it too
    return groups


def allow_provers() -> None:
    """Let provers start again after :func:`stop_provers`."""
    _stopped.clear()


def kill_group(pgid: int, signal_number: int = signal.SIGKILL) -> None:
    """Send ``signal_number`` (SIGKILL) to every process of process group ``pgid`` (no-op when none is left)."""
    try:
        os.killpg(pgid, signal_number)
    except (ProcessLookupError, PermissionError):
        pass


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, field 22 of ``/proc/PID/stat``);
    None when there is no such process or no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None


def owner_tag(pid: int | None = None) -> str | None:
    """``HOST-PID-START`` naming a process (this one by default) in the names of files it leaves
    only when killed (HOST: 8 hex digits of the SHA-256 of the host name and this process's pid
    namespace, so that containers sharing a host name and a volume never judge each other's pids:
    found by a review; START: :func:`process_start`); None where the start time cannot be read
    (no ``/proc``)."""
    pid = os.getpid() if pid is None else pid
    start = process_start(pid)
    if start is None:
        return None
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{hashlib.sha256(f'{socket.gethostname()}/{namespace}'.encode()).hexdigest()[:8]}-{pid}-{start}"


def tag_of_a_gone_process(tag: str) -> bool:
    """``tag`` (:func:`owner_tag`) names a process of this host that no longer runs; False for
    another host's, for a running one, for what is not a tag, and where this cannot be told."""
    own = owner_tag()
    parts = tag.split("-")
    if own is None or len(parts) != 3 or parts[0] != own.split("-")[0] or not parts[1].isdigit():
        return False
    return owner_tag(int(parts[1])) != tag


def _reported_helpers() -> list[int]:
    if _helpers_file is None:
        return []
    try:
        with open(_helpers_file) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    alive = set()
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and process_start(int(parts[0])) == parts[1]:
            alive.add(int(parts[0]))
    return sorted(alive)


def _helpers_path() -> str:
    """This process's helper report file, ``$TMPDIR/pot-zk-helpers-TAG-XXXX.txt`` (removed at exit;
    those of processes killed since are removed as it is made)."""
    global _helpers_file
    with _lock:
        if _helpers_file is None:
            for left in Path(tempfile.gettempdir()).glob("pot-zk-helpers-*-*-*-*.txt"):
                if tag_of_a_gone_process("-".join(left.name.split("-")[3:6])):
                    _remove(str(left))
            fd, _helpers_file = tempfile.mkstemp(prefix=f"pot-zk-helpers-{owner_tag() or 'process'}-", suffix=".txt")
            os.close(fd)
            atexit.register(_remove, _helpers_file)
        return _helpers_file


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def pause(seconds: float) -> None:
    """``time.sleep`` that :func:`stop_provers` cuts short, raising :class:`Interrupted` (the
    pause between a prover's retries)."""
    if _stopped.wait(seconds):
        raise Interrupted("stopped")
