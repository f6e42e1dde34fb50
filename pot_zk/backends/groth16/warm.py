"""The zk-groth16 key holder: one process keeps a proving key (and the framework) loaded.

``ProvingKey.load`` costs ~5 s of CPU for the digits statement (a 35 MB key), proving ~2 s,
and a prover program that starts per step also pays ~1.5 s of CPU importing torch. With
``pot-zk-groth16-prover --keep-key-s N`` the program forwards the request
(:mod:`provers.groth16_held`) to the holder of its key: a process of its own session (so the
prover's process group can be killed without it) that sets up or opens the key once, answers
one request at a time over a Unix socket exactly as the one-shot program would
(:func:`pot_zk.core.prover_program.answer` with :func:`~pot_zk.backends.groth16.request.prove_request`:
witness check, proof, verification with the key's own verifying key), and exits after N seconds
without a request. It only serves requests for its own circuit and key location.

The holder is a cache, not a trust boundary: it proves what the one-shot program would, with the
same checks. A holder that dies fails its request as retryable; the next request starts a new one.

    python -m pot_zk.backends.groth16.warm SOCKET KEEP_S < first-request.json
"""

from __future__ import annotations

import json
import os
import socket
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from pot_zk.backends.groth16.request import keys_of, prove_request, provable_kinds, spec_of
from pot_zk.core.prover_program import answer, parse_request
from pot_zk.core.protocol import ProverResponse
from pot_zk.core.stages import reporting_to, stage
from pot_zk.exceptions import ConfigurationError


def hold(path: Path, keep_s: float, first_request: str) -> None:
    """Open the first request's key, listen on ``path`` (appearing only once listening; pid in
    ``<path>.pid``), answer requests one at a time, exit after ``keep_s`` idle seconds."""
    request = parse_request(first_request, provable_kinds(), "groth16")
    spec = spec_of(request)
    with reporting_to(request.get("progress_path")):
        stage("keys")
        key_dir = keys_of(spec, request)
        pk = key_dir.load_proving_key()
    location = (request.get("options") or {}).get("keys_dir") or request["cache_dir"]

    def prove(incoming: dict[str, Any]) -> ProverResponse:
        incoming_location = (incoming.get("options") or {}).get("keys_dir") or incoming["cache_dir"]
        if spec_of(incoming).circuit_id() != spec.circuit_id() or Path(incoming_location).resolve() != Path(location).resolve():
            raise ConfigurationError("this key holder serves another circuit or key location", key="circuit")
        return prove_request(incoming, key_dir=key_dir, pk=pk)

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
                _answer(connection, prove)
    finally:
        if path.exists() and path.stat().st_ino == inode:
            path.unlink()
            Path(f"{path}.pid").unlink(missing_ok=True)
        listener.close()


def _answer(connection: socket.socket, prove) -> None:
    try:
        raw = json.loads(read_line(connection))["request"]
    except (ValueError, KeyError, TypeError, OSError):
        return
    code, document = answer(raw, provable_kinds(), prove, backend="groth16")
    try:
        connection.sendall(json.dumps({"code": code, "document": document}).encode() + b"\n")
    except OSError:
        return  # the prover was killed (timeout) while this proof ran


def read_line(connection: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = connection.recv(1 << 16)
        if not chunk:
            return b""
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)


if __name__ == "__main__":
    hold(Path(sys.argv[1]), float(sys.argv[2]), sys.stdin.read())
