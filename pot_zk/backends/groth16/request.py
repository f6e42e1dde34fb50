"""One ``pot-zk-prover/1`` request answered with a zk-groth16 proof (docs/groth16.md): what the
prover program ``pot-zk-groth16-prover`` does, in its own process or in a key holder
(:mod:`pot_zk.backends.groth16.warm`).

The request's ``circuit`` is a zk-groth16 statement's ``to_dict()`` (any kind the backend
registers); its ``witness_path`` a step file (``save_training_step``) whose committed tensors
but the batch lie exactly on the grid (exact-mode training); batch values are rounded.
``options.keys_dir`` names a key directory made by someone else (e.g. the auditor, provenance
``auditor``); without it the keys are cached under ``cache_dir`` and made on first use
(provenance ``dev``: this prover knows the trapdoor). A step whose tensors after
the step are not exactly the statement's integer step is refused before any key work
(WitnessBuilderError), and the answer is ok only with a proof that verifies under the key's own
verifying key.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from pot_zk.backends.groth16 import keys
from pot_zk.backends.groth16.prove import PROOF_TYPE, LoadedKey, prove_step
from pot_zk.backends.groth16.statement import Groth16Statement, Integers
from pot_zk.backends.groth16.statements import STATEMENTS
from pot_zk.core.atomic import StorageError
from pot_zk.core.protocol import ProverResponse
from pot_zk.core.stages import stage
from pot_zk.exceptions import ConfigurationError, ProofGenerationError


def provable_kinds() -> tuple[str, ...]:
    return tuple(STATEMENTS.names())


def spec_of(request: dict[str, Any]) -> Groth16Statement:
    """The request's statement (ConfigurationError for a kind no statement proves)."""
    kind = str(request["circuit"].get("kind"))
    if kind not in STATEMENTS:
        raise ConfigurationError(f"not a groth16 statement of a known kind: {kind!r} (known: {', '.join(STATEMENTS.names())})", key="circuit")
    return STATEMENTS.get(kind).from_dict(request["circuit"])


def keys_of(spec: Groth16Statement, request: dict[str, Any]) -> keys.KeyDirectory:
    """The request's key directory (``options.keys_dir``), else the cached dev keys (made now if missing)."""
    options = request.get("options") or {}
    if options.get("keys_dir"):
        return keys.open_keys(spec, Path(options["keys_dir"]))
    return keys.ensure_keys(spec, Path(request["cache_dir"]))


def prove_request(
    request: dict[str, Any], *, key_dir: keys.KeyDirectory | None = None, key: LoadedKey | None = None, wanted: Callable[[], bool] | None = None
) -> ProverResponse:
    """Prove the request's step; ``key_dir`` and ``key``: keys already opened and loaded (a key
    holder's); ``wanted``: whether its prover still waits for the answer (:func:`prove_integers`)."""
    from pot_zk.kinds.registry import load_training_step

    spec = spec_of(request)
    step = load_training_step(Path(request["witness_path"]), spec.kind)
    started = time.perf_counter()
    stage("witness")
    integers = witness_integers(spec, step)
    checked_s = time.perf_counter() - started
    started = time.perf_counter()
    if key_dir is None:
        stage("keys")
        key_dir = keys_of(spec, request)
    return prove_integers(spec, integers, key_dir, Path(request["output_dir"]), key=key, setup_s=time.perf_counter() - started, checked_s=checked_s, wanted=wanted)


def prove_integers(
    spec: Groth16Statement,
    integers: Integers,
    key_dir: keys.KeyDirectory,
    out_dir: Path,
    *,
    key: LoadedKey | None = None,
    setup_s: float = 0.0,
    checked_s: float = 0.0,
    wanted: Callable[[], bool] | None = None,
) -> ProverResponse:
    """Prove a step's checked integers (:func:`witness_integers`) with ``key_dir``; write the proof
    into ``out_dir``. ``public.prover`` says which witness engine ran, in which process and
    thread, and when the proving began and ended. ``wanted`` false once the proof is made (a key
    holder's prover gone meanwhile: killed with its interrupted run): nothing is written into
    ``out_dir`` (review44: the holder wrote proofs into a run its command had left)."""
    began_at = time.time()
    proof = prove_step(spec, key_dir, integers, key=key)
    if wanted is not None and not wanted():
        raise ProofGenerationError(f"its prover is gone: the proof is not written into {out_dir}", retryable=True, output_dir=str(out_dir))
    try:
        paths = proof.write(Path(out_dir))
    except (OSError, StorageError) as exc:  # review32: a full disk or an unwritable proofs/ stopped a key holder, answered as "it died"
        raise ProofGenerationError(f"cannot write the proof into {out_dir}: {exc}", retryable=True, output_dir=str(out_dir)) from exc
    prover = {
        "witness_engine": proof.witness_engine,
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "began_at": began_at,
        "ended_at": time.time(),
    }
    return ProverResponse(
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
            "prover": prover,
        },
        timings={"setup_s": setup_s, "step_check_s": checked_s, **proof.timings},
        sizes={"proof_bytes": len(proof.proof), "constraints": int(key_dir.record.get("constraints", {}).get("constraints") or 0)},
    )


def witness_integers(spec: Groth16Statement, step: Any) -> Integers:
    """The step's integers after checking the step is the statement's and the tensors after
    it are exactly its integer step (WitnessBuilderError otherwise)."""
    integers = spec.integers(step)
    spec.check_witness(integers)
    return integers
