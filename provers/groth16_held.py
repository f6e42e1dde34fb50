"""The client side of the zk-groth16 key holder: standard library only, so a held step costs an
interpreter start-up (~0.1 s) and the proof, not the framework's imports and a key load.

:func:`forward` sends the raw request to the holder of its key (one per key location and
circuit: ``options.keys_dir`` or ``cache_dir``, and the SHA-256 of the canonical circuit spec,
which is its circuit id), starting one if none listens (with ``provers`` prover threads: the
holder proves that many requests at once; a holder already running keeps its own number), and
returns the holder's (exit code, response document). The holder (:mod:`pot_zk.backends.groth16.warm`) checks and answers the
request exactly as the one-shot program would. A request that names no routable key (not
JSON, no circuit), or one for which no holder could start (e.g. a malformed spec), returns
None: the program answers it itself, with the exit code of its class. A holder that dies
while proving is a transient failure (exit 75): the retry starts a new one. A holder greets each
connection as it accepts it; one that sends no greeting within :data:`GREETING_TIMEOUT_S` is
wedged (stopped, hung: the kernel still queues connections for it) and is killed and replaced.

Every holder a prover starts or uses is reported to pot-zk (a line ``PID START`` in the file
named by ``$POT_ZK_HELPER_PIDS``: :mod:`pot_zk.core.prover_processes`), so that an interrupted
run stops it with its provers.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

START_TIMEOUT_S = 900.0
"""How long a prover waits for a new holder to set up or load its key and listen."""
GREETING_TIMEOUT_S = 30.0
"""How long a prover waits for a listening holder's greeting before it replaces the holder."""
GREETING = b"pot-zk-groth16-holder\n"
"""What a holder sends on every connection it accepts (pot_zk.backends.groth16.warm.GREETING)."""
HOLDER_MODULE = "pot_zk.backends.groth16.warm"
HOLDER_PROTOCOL = "pot-zk-groth16-holder/2"
"""Part of the socket's name: a client and a holder of another protocol (the one before the
greeting, say, left running by an earlier install) never meet (found by a review)."""
EXIT_TRANSIENT = 75


def socket_path(location: str, circuit: dict) -> Path:
    """A short path (Unix sockets allow ~100 bytes), private to this user, for one key."""
    circuit_id = hashlib.sha256(json.dumps(circuit, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    digest = hashlib.sha256(f"{HOLDER_PROTOCOL}\0{Path(location).resolve()}\0{circuit_id}".encode()).hexdigest()[:24]
    directory = Path(tempfile.gettempdir()) / f"pot-zk-groth16-{os.getuid()}"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        status = os.lstat(directory)
    except OSError as exc:  # a dangling link or a file of that name, say
        raise NotPrivate(f"the key holders' directory {directory} cannot be used ({exc.strerror})") from None
    # review53: another user who made this directory first (its name is predictable) controlled every
    # socket, pid and log file in it: a fake holder answered "ok", named a process to kill on Ctrl-C,
    # and a pid file linked elsewhere was written through. Only a directory of this user's, 0700, is used.
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise NotPrivate(
            f"the key holders' directory {directory} is not private to this user (owner uid {status.st_uid}, "
            f"mode {stat.S_IMODE(status.st_mode):#o}{', not a directory' if not stat.S_ISDIR(status.st_mode) else ''}): "
            "remove it, or set TMPDIR to a directory of your own"
        )
    return directory / f"{digest}.sock"


class NotPrivate(Exception):
    """The holders' socket directory is not this user's alone."""


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), the default number of prover threads."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def forward(raw: str, keep_s: float, provers: int, notes: list[str] | None = None) -> tuple[int, str] | None:
    """The holder's (exit code, response document) for ``raw``; None: prove it in this process
    (a request the holder would not take, or no holder could be used: then why goes to stderr
    and to ``notes``, which the program's response carries)."""
    try:
        request = json.loads(raw)
        circuit = request["circuit"]
        location = (request.get("options") or {}).get("keys_dir") or request["cache_dir"]
        path = socket_path(str(location), dict(circuit))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    except NotPrivate as exc:
        _unheld(str(exc), notes)
        return None
    for _ in range(2):
        problem = "closed the connection without an answer (it died)"
        try:
            connection = _connect(path) or _start_holder(path, raw, keep_s, provers)
        except RuntimeError as exc:
            _unheld(str(exc), notes)
            return None
        _report_helper(_holder_pid(path))
        with closing(connection):
            greeted = _greeted(connection)
            if greeted is None:
                problem = f"did not answer within {GREETING_TIMEOUT_S:g} s (wedged)"
                _kill_wedged(path)
                continue
            reply = _exchange(connection, raw) if greeted else None
        if reply is not None:
            return int(reply["code"]), json.dumps(reply["document"])
    return EXIT_TRANSIENT, _error(f"the key holder at {path} {problem}")


def _unheld(why: str, notes: list[str] | None) -> None:
    sys.stderr.write(f"{why}; proving without a key holder\n")
    if notes is not None:
        notes.append(f"no key holder: {why}; this proof loaded its proving key itself, as each proof will until a holder starts")


def _error(message: str) -> str:
    return json.dumps({"protocol": "pot-zk-prover/1", "status": "error", "message": message})


def _greeted(connection: socket.socket) -> bool | None:
    """True: the holder greeted; False: it closed the connection (it is retiring or exiting);
    None: nothing within GREETING_TIMEOUT_S."""
    connection.settimeout(GREETING_TIMEOUT_S)
    try:
        received = b""
        while len(received) < len(GREETING):
            chunk = connection.recv(len(GREETING) - len(received))
            if not chunk:
                return False
            received += chunk
    except socket.timeout:
        return None
    except OSError:
        return False
    finally:
        connection.settimeout(None)
    return received == GREETING


def _kill_wedged(path: Path) -> None:
    """SIGKILL the holder listening at ``path`` (named by its pid file, and only if that process
    is a holder of this socket), then wait until its socket refuses connections."""
    pid = _holder_pid(path)
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except (OSError, TypeError):
        argv = []
    if HOLDER_MODULE.encode() in argv and str(path).encode() in argv:
        sys.stderr.write(f"the key holder at {path} (pid {pid}) did not answer within {GREETING_TIMEOUT_S:g} s; replacing it\n")
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        connection = _connect(path)
        if connection is None:
            return
        connection.close()
        time.sleep(0.05)


def _connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        return None
    return connection


def start_lock(path: Path):
    """The lock provers start a holder of ``path`` under, taken: ``<path>.lock``, opened and
    locked until the file locked is the one at that name (an exiting holder removes it under the
    lock, :func:`pot_zk.backends.groth16.warm.tidy`; a prover that opened it before waits, then
    takes the new one)."""
    name = f"{path}.lock"
    while True:
        handle = open(name, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(handle.fileno()), os.stat(name)):
                return handle
        except FileNotFoundError:
            pass
        handle.close()


def _start_holder(path: Path, raw: str, keep_s: float, provers: int) -> socket.socket:
    """Start a holder for the request's key (one at a time: others wait on the lock, then connect)."""
    with start_lock(path):
        connection = _connect(path)
        if connection is not None:
            return connection
        path.unlink(missing_ok=True)  # a dead holder's socket
        with open(f"{path}.log", "ab") as log:
            holder = spawn_holder(path, raw, keep_s, provers, log)
        _report_helper(holder.pid)
        threading.Thread(target=holder.wait, daemon=True).start()  # reaped when it exits, if this process lives on
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            connection = _connect(path)
            if connection is not None:
                return connection
            if holder.poll() is not None:
                raise RuntimeError(f"the key holder exited with {holder.returncode} before listening (see {path}.log)")
            time.sleep(0.05)
        raise RuntimeError(f"the key holder did not listen within {START_TIMEOUT_S} s (see {path}.log)")


HOLDER_BOOT = """\
import importlib, signal, sys
class Told:
    count = 0  # SIGTERMs so far: no lock (pot_zk.backends.groth16.warm.StopCount)
def told(*_):
    Told.count += 1
signal.signal(signal.SIGTERM, told)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
importlib.import_module(sys.argv[1]).main(sys.argv[2:], Told)
"""
"""How a holder starts: SIGTERM, blocked from before it exists, is caught from its first line on,
not only once its modules are imported (an interrupted run's SIGTERM killed a holder still
importing: found by a review; it must decide as a loaded holder does)."""


def spawn_holder(path: Path, raw: str, keep_s: float, provers: int, log) -> subprocess.Popen:
    """A new key holder process (a session of its own) for ``path``, given its first request."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # inherited by the child until it catches SIGTERM
    try:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER_BOOT, HOLDER_MODULE, str(path), str(keep_s), str(provers), str(os.getpid())],  # its starter: this prover
            stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True,
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    holder.stdin.write(raw.encode())
    holder.stdin.close()
    return holder


def _holder_pid(path: Path) -> int | None:
    try:
        return int(Path(f"{path}.pid").read_text())
    except (OSError, ValueError):
        return None


def _report_helper(pid: int | None) -> None:
    """Append ``PID START`` to ``$POT_ZK_HELPER_PIDS`` (START: field 22 of /proc/PID/stat, as
    pot_zk.core.prover_processes.process_start reads it), when both are known."""
    target = os.environ.get("POT_ZK_HELPER_PIDS")
    if not target or pid is None:
        return
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
        with open(target, "a") as report:
            report.write(f"{pid} {fields[19]}\n")
    except (OSError, IndexError):
        return


def _exchange(connection: socket.socket, raw: str) -> dict | None:
    try:
        connection.sendall(json.dumps({"request": raw}).encode() + b"\n")
        data = read_line(connection)
    except OSError:
        return None
    return json.loads(data) if data else None


def read_line(connection: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = connection.recv(1 << 16)
        if not chunk:
            return b""
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)
