"""``pot-zk-ezkl-prover``: proves one SGD or LoRA step with ezkl (Halo2 + KZG).

Reads one protocol request (pot_zk.core.protocol) on stdin, prints one response on stdout. The
request's ``kind`` is ``"sgd"`` or ``"lora"``; its ``circuit`` the matching circuit spec dict
(SgdCircuitSpec / LoraCircuitSpec); ``witness_path`` a step file written by
pot_zk.kinds.registry.save_training_step; ``options.srs_path`` an SRS file (provenance ``configured``), absent
for the cached locally generated dev SRS (provenance ``dev-srs``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from pot_zk.core import protocol


_RESPONSE_FD = 1
PROVABLE_KINDS = ("sgd", "lora")


def _respond(document: dict[str, Any]) -> None:
    os.write(_RESPONSE_FD, (json.dumps(document) + "\n").encode())


def _exit(code: int, message: str, **context: Any) -> NoReturn:
    _respond({"protocol": protocol.PROTOCOL, "status": "error", "message": message, **context})
    sys.stderr.write(message + "\n")
    sys.exit(code)


def _keep_stdout_for_the_response() -> None:
    """Native libraries may print to fd 1; send all of that to stderr so stdout carries
    exactly one JSON document."""
    global _RESPONSE_FD
    _RESPONSE_FD = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def _parse_request(raw: str) -> dict[str, Any]:
    try:
        request = json.loads(raw)
    except ValueError as exc:
        _exit(protocol.EXIT_BAD_REQUEST, f"request is not JSON: {exc}")
    if not isinstance(request, dict) or request.get("protocol") != protocol.PROTOCOL:
        _exit(protocol.EXIT_BAD_REQUEST, f"expected protocol {protocol.PROTOCOL}")
    missing = [k for k in ("kind", "step", "circuit", "witness_path", "cache_dir", "output_dir") if k not in request]
    if missing:
        _exit(protocol.EXIT_BAD_REQUEST, f"request lacks {missing}")
    if request["kind"] not in PROVABLE_KINDS:
        _exit(protocol.EXIT_BAD_REQUEST, f"this prover proves {list(PROVABLE_KINDS)} steps, not {request['kind']!r}")
    if not isinstance(request["circuit"], dict) or request["circuit"].get("kind") != request["kind"]:
        _exit(protocol.EXIT_BAD_REQUEST, f"the circuit spec is not a {request['kind']!r} spec")
    return request


def main() -> None:
    _keep_stdout_for_the_response()
    request = _parse_request(sys.stdin.read())
    from pot_zk.backends.ezkl import adapter as ezkl_adapter
    from pot_zk.backends.ezkl import halo2
    from pot_zk.exceptions import ConfigurationError, ProofGenerationError, InvalidModelStateError, WitnessBuilderError
    from pot_zk.kinds.registry import check_spec_from_dict, load_training_step

    options = request.get("options") or {}
    try:
        spec = check_spec_from_dict(request["circuit"])
        step = load_training_step(Path(request["witness_path"]), spec.kind)
        cache_dir = Path(request["cache_dir"])
        srs = None
        if options.get("srs_path"):
            circuit = halo2.compiled_circuit(spec, cache_dir)
            srs = ezkl_adapter.configured_srs(Path(options["srs_path"]), circuit.logrows)
        proof = halo2.prove_step(step, spec, cache_dir, srs, Path(request["output_dir"]))
    except ConfigurationError as exc:
        _exit(protocol.EXIT_BAD_REQUEST, exc.message, error=exc.to_record())
    except (WitnessBuilderError, InvalidModelStateError) as exc:
        _exit(protocol.EXIT_INVALID_WITNESS, exc.message, error=exc.to_record())
    except ProofGenerationError as exc:
        _exit(protocol.EXIT_TRANSIENT if exc.retryable else protocol.EXIT_PROOF_FAILED, exc.message, error=exc.to_record())
    except MemoryError:
        _exit(protocol.EXIT_TRANSIENT, "out of memory while proving")
    response = protocol.ProverResponse(
        proof_type=halo2.PROOF_TYPE,
        artifacts={"proof": str(proof.proof_path)},
        public={
            "commitment": proof.commitment.to_dict(),
            "circuit_id": proof.circuit_id,
            "srs": {"provenance": proof.srs.provenance, "sha256": proof.srs.sha256, "logrows": proof.srs.logrows},
        },
        timings=proof.timings,
        sizes={"proof_bytes": proof.proof_path.stat().st_size},
    )
    _respond(response.to_json_dict())


if __name__ == "__main__":
    main()
