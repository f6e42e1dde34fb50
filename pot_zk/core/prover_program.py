"""The prover-program side of the protocol (docs/protocol.md), shared by every prover program.

A prover program (``provers/ezkl_prover.py``, ``provers/groth16_prover.py``) is one call of
:func:`serve`: it keeps stdout for the response (native libraries that print to fd 1 are sent
to stderr), reads and checks one request from stdin, runs the backend's ``prove`` function and
answers with one JSON document and the exit code of the outcome's class. Backend code is
imported by ``prove`` only, after the request parsed, so a bad request is answered at once.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, NoReturn

from pot_zk.core import protocol

REQUIRED = ("kind", "step", "circuit", "witness_path", "cache_dir", "output_dir")


class ResponseChannel:
    """stdout carries exactly one JSON document: from construction on, anything written to
    fd 1 goes to stderr and the response goes to a duplicate of the original fd 1."""

    def __init__(self) -> None:
        self.fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr

    def respond(self, document: dict[str, Any]) -> None:
        os.write(self.fd, (json.dumps(document) + "\n").encode())

    def fail(self, code: int, message: str, **context: Any) -> NoReturn:
        self.respond({"protocol": protocol.PROTOCOL, "status": "error", "message": message, **context})
        sys.stderr.write(message + "\n")
        sys.exit(code)


def parse_request(raw: str, channel: ResponseChannel, kinds: tuple[str, ...], backend: str | None) -> dict[str, Any]:
    """The request as a dict, or an EXIT_BAD_REQUEST answer: not JSON, another protocol, a
    missing field, a kind this program does not prove, a circuit spec of another kind (or,
    when ``backend`` is given, of another backend), options that are not an object."""
    try:
        request = json.loads(raw)
    except ValueError as exc:
        channel.fail(protocol.EXIT_BAD_REQUEST, f"request is not JSON: {exc}")
    if not isinstance(request, dict) or request.get("protocol") != protocol.PROTOCOL:
        channel.fail(protocol.EXIT_BAD_REQUEST, f"expected protocol {protocol.PROTOCOL}")
    missing = [k for k in REQUIRED if k not in request]
    if missing:
        channel.fail(protocol.EXIT_BAD_REQUEST, f"request lacks {missing}")
    if request["kind"] not in kinds:
        channel.fail(protocol.EXIT_BAD_REQUEST, f"this prover proves {list(kinds)} steps, not {request['kind']!r}")
    circuit = request["circuit"]
    if not isinstance(circuit, dict) or circuit.get("kind") != request["kind"]:
        channel.fail(protocol.EXIT_BAD_REQUEST, f"the circuit spec is not a {request['kind']!r} spec")
    if backend is not None and circuit.get("backend") != backend:
        channel.fail(protocol.EXIT_BAD_REQUEST, f"the circuit spec is not a {backend} spec", backend=circuit.get("backend"))
    if not isinstance(request.get("options") or {}, dict):
        channel.fail(protocol.EXIT_BAD_REQUEST, "options must be an object")
    return request


def serve(kinds: tuple[str, ...], prove: Callable[[dict[str, Any]], protocol.ProverResponse], backend: str | None = None) -> None:
    """Answer one request on stdin with ``prove(request)`` (a prover program's ``main``).

    Typed errors become their exit codes: ConfigurationError 64, WitnessBuilderError and
    InvalidModelStateError 65, ProofGenerationError 75 when retryable else 70, MemoryError 75.
    """
    channel = ResponseChannel()
    request = parse_request(sys.stdin.read(), channel, kinds, backend)
    from pot_zk.exceptions import ConfigurationError, InvalidModelStateError, ProofGenerationError, WitnessBuilderError

    try:
        response = prove(request)
    except ConfigurationError as exc:
        channel.fail(protocol.EXIT_BAD_REQUEST, exc.message, error=exc.to_record())
    except (WitnessBuilderError, InvalidModelStateError) as exc:
        channel.fail(protocol.EXIT_INVALID_WITNESS, exc.message, error=exc.to_record())
    except ProofGenerationError as exc:
        channel.fail(protocol.EXIT_TRANSIENT if exc.retryable else protocol.EXIT_PROOF_FAILED, exc.message, error=exc.to_record())
    except MemoryError:
        channel.fail(protocol.EXIT_TRANSIENT, "out of memory while proving")
    channel.respond(response.to_json_dict())
