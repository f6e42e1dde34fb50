"""The zk-groth16 key holder: one process keeps a proving key (and the framework) loaded and
proves on every core.

``ProvingKey.load`` costs ~15 s of CPU for the digits cross-entropy statement (a 67 MB key),
proving ~2.5 s, and a prover program that starts per step also pays ~1.5 s of CPU importing
torch. With ``pot-zk-groth16-prover --keep-key-s N`` the program forwards the request
(:mod:`provers.groth16_held`) to the holder of its key: a process of its own session (so the
prover's process group can be killed without it; its pid in ``<socket>.pid``) that sets up or
opens the key once and answers requests over a Unix socket exactly as the one-shot program
would (:func:`pot_zk.core.prover_program.answer` with :func:`~pot_zk.backends.groth16.request.prove_request`:
witness check, proof, verification with the key's own verifying key). It answers up to
``provers`` requests at once, each on a thread of its own sharing the one loaded key (groth16py
and wasmtime release the GIL while they compute); more wait their turn. It exits once no
request has come and none has been in progress for N seconds. It only serves requests for its
own circuit and key location, and only while the key files it loaded are still the ones in
its key directory: keys replaced under it (a cache deleted and made again, an auditor's key set
copied over) retire it before it answers (its socket removed first, so the prover's retry starts
a holder of the new key; found by a review: every proof failed until the old holder exited).

The holder is a cache, not a trust boundary: it proves what the one-shot program would, with the
same checks. A holder that dies fails its requests as retryable; the next request starts a new
one. An unexpected error in any request stops the holder (after its other proofs in progress).

A holder that has held a request :data:`ABANDONED_S` after its prover went retires: a proof hung
inside the prover is not waited for forever.

It greets each connection the moment it accepts it (:data:`GREETING`): a prover that gets no
greeting in time takes the holder for wedged (stopped, hung) and replaces it
(:mod:`provers.groth16_held`). It does not prove a request whose prover has gone meanwhile (killed
on a timeout or an interruption: its connection hung up). SIGTERM (an interrupted run stopping the
holders its provers used, :func:`pot_zk.core.prover_processes.stop_provers`) ends it at once
when it is idle, else :data:`STOP_GRACE_S` later if by then every request it holds has lost its
prover (abandoning proofs in progress); while any request's prover still waits (another run on
the same key), it goes on as before, until it is idle for N seconds. Told while it starts (its
imports, its key load), it decides STOP_GRACE_S after it listens (the prover that started it
connects meanwhile, unless it was killed too): provers start it with
:data:`provers.groth16_held.HOLDER_BOOT`, which catches SIGTERM before anything is imported.

    python -m pot_zk.backends.groth16.warm SOCKET KEEP_S PROVERS < first-request.json
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

from pot_zk.backends.groth16.prove import load_key
from pot_zk.backends.groth16.request import keys_of, prove_request, provable_kinds, spec_of
from pot_zk.core.process_exit import exit_now
from pot_zk.core.prover_program import answer, parse_request
from pot_zk.core.protocol import ProverResponse
from pot_zk.core.stages import reporting_to, stage
from pot_zk.exceptions import ConfigurationError

POLL_S = 0.2
"""How often the accept loop looks at the idle clock, for a failed request and for SIGTERM."""
GREETING = b"pot-zk-groth16-holder\n"
"""Sent on every connection as it is accepted: the holder is alive and listening."""
STOP_GRACE_S = 2.0
"""After SIGTERM, how long the holder waits for the provers of its requests to hang up (the
interrupted run's are being killed as it is told to stop) before it decides another run needs it."""
ABANDONED_S = 60.0
"""How long a request the holder holds may go on after its prover has gone (its connection hung
up: killed on a timeout or an interruption) before the holder retires: it stops listening (a later
attempt starts a new holder), closes the connections of the requests still waiting for a thread
(their provers start a new holder too), lets the proofs whose provers wait finish, and exits. A
proof that has lost its prover stops at its next stage (``wanted``); one that never gets there
(hung inside the prover) kept the holder alive forever, holding its prover thread, answering
nothing, and serving its socket to every later request until each timed out (review48: waiting
until *every* request had lost its prover, the holder never retired while attempts kept coming)."""
REQUEST_TIMEOUT_S = 60.0
"""How long a connection has, once a prover thread takes it, to send its request line (a prover
program sends it as soon as it is greeted; a queued one's is already waiting): a local process
that connects and sends nothing is closed then, instead of holding a prover thread and keeping
the holder from ever being idle."""
_HUNG_UP = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


class StopCount:
    """The SIGTERMs a holder was sent, counted by its signal handler (``count``): the holder
    compares the count with the last it saw. No lock: a handler runs in the main thread between two
    bytecodes, and a :class:`threading.Event` (whose ``set`` in the handler waited for the lock its
    own thread held in ``clear``) deadlocked a holder told to stop twice (review44: one Ctrl-C
    stops a run's provers twice). :data:`provers.groth16_held.HOLDER_BOOT` counts the same way
    before anything is imported."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1


def hold(path: Path, keep_s: float, first_request: str, provers: int = 1, told_to_stop: StopCount | None = None, starter: int | None = None) -> None:
    """Open the first request's key, listen on ``path`` (appearing only once listening; pid in
    ``<path>.pid``), answer up to ``provers`` requests at once, exit after ``keep_s`` idle seconds.
    ``told_to_stop``: the SIGTERMs counted by the handler the holder's start-up installed
    (:data:`provers.groth16_held.HOLDER_BOOT`); without one, it is installed here. ``starter``:
    the pid of the prover that started it; gone by the time it listens (killed with its
    interrupted run before it could report the holder to that run: review44), it decides
    STOP_GRACE_S later as if told to stop (it stops unless some prover connected meanwhile)."""
    if provers < 1:
        raise ConfigurationError(f"a key holder needs at least one prover thread, got {provers}", key="provers")
    if told_to_stop is None:
        told_to_stop = StopCount()
        signal.signal(signal.SIGTERM, told_to_stop)  # before the key load: a run waiting for this holder may need it
    request = parse_request(first_request, provable_kinds(), "groth16")
    spec = spec_of(request)
    with reporting_to(request.get("progress_path")):
        stage("keys")
        key_dir = keys_of(spec, request)
        key = load_key(key_dir)
    location = (request.get("options") or {}).get("keys_dir") or request["cache_dir"]
    loaded = key_files(key_dir.path)
    retiring = threading.Event()

    def prove(incoming: dict[str, Any], connection: socket.socket) -> ProverResponse:
        incoming_location = (incoming.get("options") or {}).get("keys_dir") or incoming["cache_dir"]
        if spec_of(incoming).circuit_id() != spec.circuit_id() or Path(incoming_location).resolve() != Path(location).resolve():
            raise ConfigurationError("this key holder serves another circuit or key location", key="circuit")
        if retiring.is_set() or key_files(key_dir.path) != loaded:
            retiring.set()
            _unlisten(path, inode)
            raise StaleKey(key_dir.path)
        return prove_request(incoming, key_dir=key_dir, key=key, wanted=lambda: not hung_up(connection))

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    listener.bind(str(staging))
    listener.listen(64)
    Path(f"{path}.pid").write_text(f"{os.getpid()}\n")
    os.rename(staging, path)
    inode = path.stat().st_ino
    listener.settimeout(POLL_S)
    pool = ThreadPoolExecutor(max_workers=provers, thread_name_prefix="pot-zk-groth16-prover")
    requests = _Requests()
    # SIGTERM: stop once no request has a prover waiting for it, judged STOP_GRACE_S after the
    # signal (the interrupted run's provers are being killed meanwhile; told while the key loaded,
    # the prover that started this holder connects meanwhile), at once when idle and listening.
    seen = told_to_stop.count  # compared, never reset: a SIGTERM between a look and a reset was lost (the holder lived keep_s on)
    decide_at = time.monotonic() + STOP_GRACE_S if seen or (starter is not None and os.getppid() != starter) else None
    try:
        while not requests.idle_for(keep_s) and not retiring.is_set():
            requests.raise_failure()
            abandoned = requests.abandoned_for()
            if abandoned >= ABANDONED_S:
                sys.stderr.write(f"pot-zk key holder: a request has gone on {abandoned:.0f} s after its prover went; retiring\n")
                sys.stderr.flush()
                _unlisten(path, inode)
                listener.close()  # connections not yet accepted are refused: their provers start a new holder
                requests.drop_queued()
                while requests.running_waited():
                    time.sleep(POLL_S)
                tidy(path)
                os._exit(0)  # a thread that never returns cannot be joined: nobody waits for its proof
            if told_to_stop.count != seen:
                seen = told_to_stop.count
                decide_at = time.monotonic() + (STOP_GRACE_S if requests.in_progress() else 0.0)
            if decide_at is not None and time.monotonic() >= decide_at:
                decide_at = None
                if requests.unwaited():
                    _unlisten(path, inode)
                    tidy(path)
                    os._exit(0)  # abandons proofs in progress: nobody waits for them
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                continue
            connection.settimeout(None)
            try:
                connection.sendall(GREETING)
            except OSError:
                connection.close()
                continue
            requests.add(pool.submit(_serve, connection, prove), connection)
        requests.raise_failure()
    except BaseException as error:
        # into the log while the socket still stands (review48: written after the proofs in progress,
        # it could go to a log another holder of this key had removed as empty meanwhile, tidy)
        traceback.print_exc()
        sys.stderr.flush()
        error.pot_zk_logged = True  # main ends the process without printing it again
        raise
    finally:
        _unlisten(path, inode)
        listener.close()
        pool.shutdown(wait=True)
    tidy(path)  # not after an error: its traceback goes to the log


class StaleKey(Exception):
    """The key files in the holder's key directory are no longer the ones it loaded."""


KEY_FILES = ("pk.bin", "vk.bin", "vk.json")
"""The files of a key directory a holder's proofs rest on (the proving key it loaded, the
verifying key it checks its own proofs with)."""


def key_files(directory: Path) -> dict[str, tuple[int, int, int]]:
    """The key files of a key directory by name: (inode, size, modification time in ns)."""
    found = {}
    for name in KEY_FILES:
        try:
            stat = (Path(directory) / name).stat()
        except OSError:
            continue
        found[name] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return found


def tidy(path: Path) -> None:
    """As a holder exits: remove the start lock of ``path`` and its log when empty (a log with
    anything in it is kept: a holder's errors go there), unless a prover holds the lock (it is
    starting a holder, which logs there) or another holder listens at ``path``. Provers take the
    lock with :func:`provers.groth16_held.start_lock`, which retries a removed one. Without this,
    two files per key location and circuit stayed in the holders' directory for good."""
    name = f"{path}.lock"
    try:
        handle = open(name, "a")
    except OSError:
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not os.path.samestat(os.fstat(handle.fileno()), os.stat(name)) or path.exists():
                return
            log = Path(f"{path}.log")
            if log.exists() and log.stat().st_size == 0:
                log.unlink()
            os.unlink(name)
        except OSError:  # a prover holds it, or the files went meanwhile
            return


def _unlisten(path: Path, inode: int) -> None:
    """Remove the socket (and pid file) this holder made, unless another holder's replaced it."""
    try:
        if path.stat().st_ino == inode:
            path.unlink()
            Path(f"{path}.pid").unlink(missing_ok=True)
    except OSError:
        pass


def hung_up(connection: socket.socket) -> bool:
    """The prover at the other end has closed its end (it was killed, or gave up)."""
    try:
        poller = select.poll()
        poller.register(connection, _HUNG_UP)
        return bool(poller.poll(0))
    except (OSError, ValueError):  # closed meanwhile
        return True


class _Requests:
    """The requests in progress (with their connections), when the last one ended, and the first
    that failed unexpectedly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[Future, socket.socket] = {}
        self._quiet_since = time.monotonic()
        self._failure: Future | None = None
        self._gone_since: dict[Future, float] = {}

    def add(self, future: Future, connection: socket.socket) -> None:
        with self._lock:
            self._open[future] = connection
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._open.pop(future, None)
            self._gone_since.pop(future, None)
            self._quiet_since = time.monotonic()
            if self._failure is None and not future.cancelled() and future.exception() is not None:
                self._failure = future

    def idle_for(self, seconds: float) -> bool:
        with self._lock:
            return not self._open and time.monotonic() - self._quiet_since >= seconds

    def in_progress(self) -> int:
        with self._lock:
            return len(self._open)

    def unwaited(self) -> bool:
        """No request in progress has a prover waiting for it (each connection hung up)."""
        with self._lock:
            connections = list(self._open.values())
        return all(hung_up(connection) for connection in connections)

    def abandoned_for(self) -> float:
        """How long the request held longest after its prover went has been held since (0.0: none)."""
        now = time.monotonic()
        with self._lock:
            held = list(self._open.items())
        longest = 0.0
        for future, connection in held:
            if hung_up(connection):
                with self._lock:
                    since = self._gone_since.setdefault(future, now) if future in self._open else now
                longest = max(longest, now - since)
        return longest

    def drop_queued(self) -> None:
        """Cancel the requests no prover thread has taken yet and close their connections."""
        with self._lock:
            held = list(self._open.items())
        for future, connection in held:
            if future.cancel():
                connection.close()

    def running_waited(self) -> bool:
        """A request is being proven and its prover waits for it."""
        with self._lock:
            held = list(self._open.items())
        return any(future.running() and not hung_up(connection) for future, connection in held)

    def raise_failure(self) -> None:
        if self._failure is not None:
            self._failure.result()


def _serve(connection: socket.socket, prove: Callable[[dict[str, Any], socket.socket], ProverResponse]) -> None:
    with closing(connection):
        _answer(connection, prove)


def _answer(connection: socket.socket, prove) -> None:
    try:
        raw = json.loads(read_line(connection, within_s=REQUEST_TIMEOUT_S))["request"]
        connection.settimeout(None)
    except (ValueError, KeyError, TypeError, OSError):  # socket.timeout is an OSError
        return
    if hung_up(connection):
        return  # its prover is gone (a timeout, an interruption) while the request waited its turn
    try:
        code, document = answer(raw, provable_kinds(), lambda request: prove(request, connection), backend="groth16")
    except StaleKey:
        return  # no answer: the prover starts a holder of the key now in the directory
    try:
        connection.sendall(json.dumps({"code": code, "document": document}).encode() + b"\n")
    except OSError:
        return  # the prover was killed (timeout) while this proof ran


def read_line(connection: socket.socket, within_s: float | None = None) -> bytes:
    """One line from ``connection`` (b"" if it closes first); ``within_s``: the whole line within
    that many seconds, else socket.timeout (a client sending a byte now and then gains nothing)."""
    deadline = None if within_s is None else time.monotonic() + within_s
    chunks = []
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"no request line within {within_s} s")
            connection.settimeout(left)
        chunk = connection.recv(1 << 16)
        if not chunk:
            return b""
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)


def main(arguments: list[str], told_to_stop: StopCount | None = None) -> None:
    """``SOCKET KEEP_S PROVERS [STARTER_PID]``, the first request on stdin; the process ends when the holder
    does (without the interpreter's teardown: :func:`~pot_zk.core.process_exit.exit_now`)."""
    try:
        hold(Path(arguments[0]), float(arguments[1]), sys.stdin.read(), int(arguments[2]), told_to_stop, int(arguments[3]) if len(arguments) > 3 else None)
    except BaseException as error:
        if getattr(error, "pot_zk_logged", False):
            exit_now(1)
        raise
    exit_now(0)


if __name__ == "__main__":
    main(sys.argv[1:])
