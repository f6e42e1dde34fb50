"""The prover-program side of the protocol (docs/protocol.md), shared by every prover program.

A prover program (``provers/ezkl_prover.py``, ``provers/groth16_prover.py``) is one call of
:func:`serve`: it keeps stdout for the response (native libraries that print to fd 1 are sent
to stderr), reads and checks one request from stdin, runs the backend's ``prove`` function and
answers with one JSON document and the exit code of the outcome's class. Backend code is
imported by ``prove`` only, after the request parsed, so a bad request is answered at once.
:func:`answer` is the same without the process around it (a key holder answers with it).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Sequence

from pot_zk.core import protocol
from pot_zk.core.process_exit import exit_now
from pot_zk.core.stages import reporting_to

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


class Refusal(Exception):
    """A request answered with an error document and a non-zero exit code."""

    def __init__(self, code: int, message: str, **context: Any) -> None:
        super().__init__(message)
        self.code = code
        self.document = {"protocol": protocol.PROTOCOL, "status": "error", "message": message, **context}


def parse_request(raw: str, kinds: tuple[str, ...], backend: str | None) -> dict[str, Any]:
    """The request as a dict, or a Refusal with EXIT_BAD_REQUEST: not JSON, another protocol, a
    missing field, a kind this program does not prove, a circuit spec of another kind (or,
    when ``backend`` is given, of another backend), options that are not an object."""
    try:
        request = json.loads(raw)
    except ValueError as exc:
        raise Refusal(protocol.EXIT_BAD_REQUEST, f"request is not JSON: {exc}") from None
    if not isinstance(request, dict) or request.get("protocol") != protocol.PROTOCOL:
        raise Refusal(protocol.EXIT_BAD_REQUEST, f"expected protocol {protocol.PROTOCOL}")
    missing = [k for k in REQUIRED if k not in request]
    if missing:
        raise Refusal(protocol.EXIT_BAD_REQUEST, f"request lacks {missing}")
    if request["kind"] not in kinds:
        raise Refusal(protocol.EXIT_BAD_REQUEST, f"this prover proves {list(kinds)} steps, not {request['kind']!r}")
    circuit = request["circuit"]
    if not isinstance(circuit, dict) or circuit.get("kind") != request["kind"]:
        raise Refusal(protocol.EXIT_BAD_REQUEST, f"the circuit spec is not a {request['kind']!r} spec")
    if backend is not None and circuit.get("backend") != backend:
        raise Refusal(protocol.EXIT_BAD_REQUEST, f"the circuit spec is not a {backend} spec", backend=circuit.get("backend"))
    if not isinstance(request.get("options") or {}, dict):
        raise Refusal(protocol.EXIT_BAD_REQUEST, "options must be an object")
    if not isinstance(request.get("progress_path") or "", str):
        raise Refusal(protocol.EXIT_BAD_REQUEST, "progress_path must be a string")
    return request


def answer(raw: str, kinds: tuple[str, ...], prove: Callable[[dict[str, Any]], protocol.ProverResponse], backend: str | None = None) -> tuple[int, dict[str, Any]]:
    """(exit code, response document) for one raw request: ``prove(request)``'s response, or
    the error its typed exception stands for: ConfigurationError 64, WitnessBuilderError and
    InvalidModelStateError 65, ProofGenerationError 75 when retryable else 70, MemoryError 75.
    The stages ``prove`` reports go to the request's ``progress_path``, if it names one."""
    from pot_zk.exceptions import ConfigurationError, InvalidModelStateError, ProofGenerationError, WitnessBuilderError

    try:
        request = parse_request(raw, kinds, backend)
        try:
            with reporting_to(request.get("progress_path")):
                response = prove(request)
        except ConfigurationError as exc:
            raise Refusal(protocol.EXIT_BAD_REQUEST, exc.message, error=exc.to_record()) from exc
        except (WitnessBuilderError, InvalidModelStateError) as exc:
            raise Refusal(protocol.EXIT_INVALID_WITNESS, exc.message, error=exc.to_record()) from exc
        except ProofGenerationError as exc:
            raise Refusal(protocol.EXIT_TRANSIENT if exc.retryable else protocol.EXIT_PROOF_FAILED, exc.message, error=exc.to_record()) from exc
        except MemoryError as exc:
            raise Refusal(protocol.EXIT_TRANSIENT, "out of memory while proving") from exc
    except Refusal as refusal:
        return refusal.code, refusal.document
    return protocol.EXIT_OK, response.to_json_dict()


def serve(
    kinds: tuple[str, ...], prove: Callable[[dict[str, Any]], protocol.ProverResponse], backend: str | None = None, raw: str | None = None,
    notes: Sequence[str] = (),
) -> None:
    """Answer one request (``raw``, else stdin) with ``prove(request)`` and exit with its code
    (a prover program's ``main``); a proof's response carries ``notes`` (the response's ``notes``)."""
    channel = ResponseChannel()
    code, document = answer(sys.stdin.read() if raw is None else raw, kinds, prove, backend)
    if code == protocol.EXIT_OK and notes:
        document["notes"] = [*document.get("notes", []), *notes]
    channel.respond(document)
    if code != protocol.EXIT_OK:
        sys.stderr.write(str(document.get("message")) + "\n")
    exit_now(code)  # no second of interpreter teardown per proof
