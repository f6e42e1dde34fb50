"""``pot-zk-groth16-prover``: proves one SGD step exactly with Groth16 (groth16py, circom 2).

Reads one protocol request (pot_zk.protocol) on stdin, prints one response on stdout. The
request's ``kind`` is ``"sgd"``; its ``circuit`` a ``Groth16SgdSpec.to_dict()`` (``backend``
``"groth16"``); ``witness_path`` a step file written by pot_zk.specs.save_training_step.
Weights must lie exactly on the fixed-point grid (exact-mode training); batch values are
rounded. ``options.keys_dir`` names a key directory made by someone else (e.g. the auditor);
without it the keys are cached under ``cache_dir`` and made here on first use (provenance
``dev``: this prover knows the trapdoor).

The program refuses, before proving, a step whose W_t+1 is not exactly the reference step
(exit 65), and answers ok only with a proof that verifies under the key's own verifying key.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from pot_zk import protocol

_RESPONSE_FD = 1
PROVABLE_KINDS = ("sgd",)


def _respond(document: dict[str, Any]) -> None:
    os.write(_RESPONSE_FD, (json.dumps(document) + "\n").encode())


def _exit(code: int, message: str, **context: Any) -> NoReturn:
    _respond({"protocol": protocol.PROTOCOL, "status": "error", "message": message, **context})
    sys.stderr.write(message + "\n")
    sys.exit(code)


def _keep_stdout_for_the_response() -> None:
    """Native code (the circom compiler) prints to fd 1; send all of that to stderr so stdout
    carries exactly one JSON document."""
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
    circuit = request["circuit"]
    if not isinstance(circuit, dict) or circuit.get("kind") != request["kind"] or circuit.get("backend") != "groth16":
        _exit(protocol.EXIT_BAD_REQUEST, f"the circuit spec is not a groth16 {request['kind']!r} spec")
    if not isinstance(request.get("options") or {}, dict):
        _exit(protocol.EXIT_BAD_REQUEST, "options must be an object")
    return request


def _prove(request: dict[str, Any]) -> protocol.ProverResponse:
    from pot_zk.backends.groth16 import exact, keys
    from pot_zk.backends.groth16.prove import PROOF_TYPE, check_witness, prove_sgd_step
    from pot_zk.backends.groth16.spec import Groth16SgdSpec
    from pot_zk.errors import WitnessBuilderError
    from pot_zk.specs import load_training_step

    options = request.get("options") or {}
    spec = Groth16SgdSpec.from_dict(request["circuit"])
    step = load_training_step(spec, Path(request["witness_path"]))
    found = {"dims": list(step.architecture.dims), "batch_size": step.batch_size, "learning_rate": step.learning_rate}
    declared = {"dims": list(spec.dims), "batch_size": spec.batch_size, "learning_rate": spec.learning_rate}
    if found != declared:
        raise WitnessBuilderError("the step does not match the circuit spec", expected=declared, actual=found)
    bits, scale = spec.value_bits, spec.scale
    w_before = exact.quantise_weights(step.flat_before().numpy(), scale, bits, "weights before the step")
    w_after = exact.quantise_weights(step.flat_after().numpy(), scale, bits, "weights after the step")
    x = exact.quantise_batch(step.inputs.numpy(), scale, bits, "batch inputs X").reshape(step.inputs.shape)
    y = exact.quantise_batch(step.targets.numpy(), scale, bits, "batch targets Y").reshape(step.targets.shape)
    check_witness(spec, w_before, x, y, w_after)  # bounds, shapes and the exact update, before any key work
    started = time.perf_counter()
    if options.get("keys_dir"):
        key_dir = keys.open_keys(spec, Path(options["keys_dir"]))
    else:
        key_dir = keys.ensure_keys(spec, Path(request["cache_dir"]))
    setup_s = time.perf_counter() - started
    proof = prove_sgd_step(spec, key_dir, w_before, x, y, w_after)
    paths = proof.write(Path(request["output_dir"]))
    return protocol.ProverResponse(
        proof_type=PROOF_TYPE,
        artifacts={name: str(path) for name, path in paths.items()},
        public={
            "commitment": {**proof.commitments.to_dict(), "scale": spec.scale},
            "circuit_id": proof.circuit_id,
            "keys": {
                "provenance": key_dir.provenance,
                "directory": str(key_dir.path),
                "vk_sha256": key_dir.record.get("vk_sha256"),
                "created": key_dir.created,
            },
        },
        timings={"setup_s": setup_s, **proof.timings},
        sizes={"proof_bytes": len(proof.proof), "constraints": int(key_dir.record.get("constraints", {}).get("constraints") or 0)},
    )


def main() -> None:
    _keep_stdout_for_the_response()
    request = _parse_request(sys.stdin.read())
    from pot_zk.errors import ConfigurationError, InvalidModelStateError, ProofGenerationError, WitnessBuilderError

    try:
        response = _prove(request)
    except ConfigurationError as exc:
        _exit(protocol.EXIT_BAD_REQUEST, exc.message, error=exc.to_record())
    except (WitnessBuilderError, InvalidModelStateError) as exc:
        _exit(protocol.EXIT_INVALID_WITNESS, exc.message, error=exc.to_record())
    except ProofGenerationError as exc:
        _exit(protocol.EXIT_TRANSIENT if exc.retryable else protocol.EXIT_PROOF_FAILED, exc.message, error=exc.to_record())
    except MemoryError:
        _exit(protocol.EXIT_TRANSIENT, "out of memory while proving")
    _respond(response.to_json_dict())


if __name__ == "__main__":
    main()
