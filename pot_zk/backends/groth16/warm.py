"""A proving key kept in memory between steps: loading it costs more CPU than proving.

``ProvingKey.load`` takes ~5 s of CPU for the digits statement (a 35 MB key), proving ~2 s. A
prover program that runs once per step (the protocol: a crash, a hang or an out-of-memory
kill never takes the trainer down) pays the load every step. With ``keep_s > 0`` the prover
program hands the proof to a *key holder* instead: a process of its own session (so the
prover's process group can be killed without it) that loads the key once, proves one request
at a time over a Unix socket, and exits after ``keep_s`` seconds without a request.

The key holder is a cache, not a trust boundary: the prover program still checks the witness
before and verifies every proof with the key directory's own verifying key after. If the
holder dies, the request fails as a retryable ProofGenerationError and the next one starts a
new holder. Its socket is named after the key directory and its verifying key's hash, so
other keys never reach it.

    python -m pot_zk.backends.groth16.warm KEY_DIR SOCKET KEEP_S    (the holder; started by :func:`prove_warm`)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from pot_zk.backends.groth16 import adapter
from pot_zk.exceptions import ProofGenerationError, WitnessBuilderError

START_TIMEOUT_S = 600.0
"""How long a prover waits for a new holder to load its key and listen."""


def socket_path(key_dir: Path, vk_sha256: str) -> Path:
    """A short path (Unix sockets allow ~100 bytes) private to this user and this key."""
    digest = hashlib.sha256(f"{Path(key_dir).resolve()}\0{vk_sha256}".encode()).hexdigest()[:24]
    directory = Path(tempfile.gettempdir()) / f"pot-zk-groth16-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory / f"{digest}.sock"


def prove_warm(key_dir: Path, vk_sha256: str, inputs: dict[str, Any], keep_s: float) -> tuple[bytes, dict[str, float]]:
    """A proof of ``inputs`` from the holder of ``key_dir``'s proving key (started if none
    listens). NOT verified here, like :func:`adapter.prove`. Timings: ``key_wait_s`` (connect,
    including a new holder's key load) and ``prove_s``."""
    path = socket_path(key_dir, vk_sha256)
    started = time.perf_counter()
    for attempt in range(2):
        connection = _connect(path) or _start_holder(key_dir, path, keep_s)
        waited = time.perf_counter() - started
        with closing(connection):
            reply = _exchange(connection, {"inputs": inputs})
        if reply is not None:
            break
    else:
        raise ProofGenerationError(f"the key holder at {path} closed the connection without an answer (it died)", retryable=True, socket=str(path))
    if "error" in reply:
        error_class = WitnessBuilderError if reply.get("kind") == "witness" else ProofGenerationError
        context = {"expected": "circuit inputs", "actual": reply["error"]} if error_class is WitnessBuilderError else {"retryable": True}
        raise error_class(f"the key holder could not prove: {reply['error']}", **context)
    return bytes.fromhex(reply["proof"]), {"key_wait_s": waited, "prove_s": float(reply["prove_s"])}


def _connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        return None
    return connection


def _start_holder(key_dir: Path, path: Path, keep_s: float) -> socket.socket:
    """Start a holder (one at a time: others wait on the lock, then connect to it)."""
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        connection = _connect(path)
        if connection is not None:
            return connection
        path.unlink(missing_ok=True)  # a dead holder's socket
        with open(f"{path}.log", "ab") as log:
            holder = subprocess.Popen(
                [sys.executable, "-m", "pot_zk.backends.groth16.warm", str(key_dir), str(path), str(keep_s)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        threading.Thread(target=holder.wait, daemon=True).start()  # reaped when it exits, if this process lives on
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            connection = _connect(path)
            if connection is not None:
                return connection
            if holder.poll() is not None:
                raise ProofGenerationError(f"the key holder for {key_dir} exited with {holder.returncode} before listening (see {path}.log)", retryable=True)
            time.sleep(0.05)
        raise ProofGenerationError(f"the key holder for {key_dir} did not listen within {START_TIMEOUT_S} s", retryable=True)


def _exchange(connection: socket.socket, message: dict[str, Any]) -> dict[str, Any] | None:
    try:
        connection.sendall((json.dumps(message) + "\n").encode())
        data = _read_line(connection)
    except OSError:
        return None
    return json.loads(data) if data else None


def _read_line(connection: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = connection.recv(1 << 16)
        if not chunk:
            return b""
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)


def hold(key_dir: Path, path: Path, keep_s: float) -> None:
    """The holder: load the key, listen on ``path`` (appearing only once listening), prove
    one request at a time, exit after ``keep_s`` idle seconds. Its pid is in ``<path>.pid``."""
    pk = adapter.load_proving_key(Path(key_dir) / "pk.bin")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    listener.bind(str(staging))
    listener.listen(8)
    Path(f"{path}.pid").write_text(f"{os.getpid()}\n")
    os.rename(staging, path)
    inode = path.stat().st_ino
    listener.settimeout(keep_s)
    try:
        while True:
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                return
            with closing(connection):
                connection.settimeout(None)
                _answer(connection, pk)
    finally:
        if path.exists() and path.stat().st_ino == inode:
            path.unlink()
            Path(f"{path}.pid").unlink(missing_ok=True)
        listener.close()


def _answer(connection: socket.socket, pk: adapter.ProvingKey) -> None:
    try:
        request = json.loads(_read_line(connection))
        started = time.perf_counter()
        reply: dict[str, Any] = {"proof": adapter.prove(pk, request["inputs"]).hex(), "prove_s": time.perf_counter() - started}
    except WitnessBuilderError as exc:
        reply = {"error": exc.message, "kind": "witness"}
    except (ValueError, KeyError, TypeError) as exc:
        reply = {"error": f"bad request: {exc!r}", "kind": "request"}
    try:
        connection.sendall((json.dumps(reply) + "\n").encode())
    except OSError:
        return  # the prover was killed (timeout) while this proof ran


if __name__ == "__main__":
    hold(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
