"""Proving one exact step of any zk-groth16 statement, and checking the proof before anyone sees it.

The witness is checked by the statement's own integer step first (tensors after the step that
are not exactly its ``exact_step`` are refused before any proving), the circuit's witness is
computed by circom's witness program under wasmtime (:mod:`~pot_zk.backends.groth16.witness`;
groth16py's wasmi without it) and proven with ``prove_wtns``, and the proof is verified with the
key directory's own verifying key before it is returned: groth16py 0.2.0 returns a proof even
for a witness that violates the constraints. A :class:`LoadedKey` (proving key and compiled
witness program) is loaded once and shared by every thread of a key holder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from pot_zk.backends.groth16 import adapter
from pot_zk.backends.groth16.commit import StepCommitments
from pot_zk.backends.groth16.statement import Groth16Statement
from pot_zk.backends.groth16.witness import WitnessEngine, witness_engine
from pot_zk.core.atomic import write_bytes_atomic
from pot_zk.core.scratch import remove_scratch, scratch_directory
from pot_zk.core.stages import stage
from pot_zk.exceptions import ProofGenerationError

if TYPE_CHECKING:
    from pot_zk.backends.groth16.keys import KeyDirectory

PROOF_TYPE = "zk-groth16"


@dataclass(frozen=True)
class LoadedKey:
    """A proving key in memory with the engine that computes its witnesses: load once, then
    prove many steps, from several threads at once."""

    pk: adapter.ProvingKey
    witness: WitnessEngine


def load_key(keys: KeyDirectory, *, many_proofs: bool = True) -> LoadedKey:
    """The proving key of ``keys`` and its witness engine: wasmtime when the key will serve
    ``many_proofs`` (a key holder: the program is compiled once), else groth16py's wasmi."""
    return LoadedKey(keys.load_proving_key(), witness_engine(keys.path / "pk.bin", compile_program=many_proofs))


def make_proof(key: LoadedKey, inputs: dict[str, Any]) -> tuple[bytes, dict[str, float]]:
    """(an UNCHECKED proof of ``inputs``, timings): ``witness_s`` the witness computed by
    wasmtime, ``prove_s`` the proof from it (with groth16py's wasmi: ``prove_s`` only, both)."""
    started = time.perf_counter()
    if key.witness.program is None:
        proof = adapter.prove(key.pk, inputs)
        return proof, {"prove_s": time.perf_counter() - started}
    scratch = scratch_directory("pot-zk-witness-")  # the step's private inputs: one a SIGKILL left is removed by the next (review56)
    try:
        path = scratch / "witness.wtns"
        key.witness.program.write_wtns(adapter.field_inputs(inputs), path)
        witness_s = time.perf_counter() - started
        started = time.perf_counter()
        proof = adapter.prove_wtns(key.pk, path)
    finally:
        remove_scratch(scratch)
    return proof, {"witness_s": witness_s, "prove_s": time.perf_counter() - started}


@dataclass(frozen=True)
class Groth16Proof:
    proof: bytes
    commitments: StepCommitments
    circuit_id: str
    key_provenance: str
    witness_engine: str
    timings: dict[str, float] = field(default_factory=dict)

    def write(self, directory: Path) -> dict[str, Path]:
        """Write ``proof.bin`` (the 256 proof bytes) and ``public.json``; returns their paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"proof": directory / "proof.bin", "public": directory / "public.json"}
        write_bytes_atomic(paths["proof"], self.proof)  # a holder killed meanwhile leaves no torn proof (review40)
        public = {
            "proof_type": PROOF_TYPE,
            "circuit_id": self.circuit_id,
            "commitments": self.commitments.to_dict(),
            "public_inputs": [str(v) for v in self.commitments.public_inputs()],
        }
        write_bytes_atomic(paths["public"], (json.dumps(public, indent=2) + "\n").encode())
        return paths


def prove_step(spec: Groth16Statement, keys: KeyDirectory, integers: Mapping[str, np.ndarray], *, key: LoadedKey | None = None) -> Groth16Proof:
    """Prove one step from its integers (:meth:`Groth16Statement.integers`); the proof returned
    verifies under ``keys``. ``key``: the proving key of ``keys``, already loaded (else it is
    loaded from disk)."""
    started = time.perf_counter()
    spec.check_witness(integers)
    commitments = spec.commitments(integers)
    checked_s = time.perf_counter() - started
    return _prove(spec, keys, spec.circuit_inputs(integers), commitments, checked_s, key)


def _prove(
    spec: Groth16Statement, keys: KeyDirectory, inputs: dict[str, Any], commitments: StepCommitments, checked_s: float, key: LoadedKey | None
) -> Groth16Proof:
    timings = {"witness_check_s": checked_s}
    vk = keys.load_verifying_key()
    if key is None:
        started = time.perf_counter()
        key = load_key(keys, many_proofs=False)
        timings["key_load_s"] = time.perf_counter() - started
    stage("prove")
    proof, proving = make_proof(key, inputs)
    timings.update(proving)
    started = time.perf_counter()
    stage("verify")
    accepted, reason = adapter.verify(vk, proof, commitments.public_inputs())
    timings["self_verify_s"] = time.perf_counter() - started
    if not accepted:
        raise ProofGenerationError(
            f"the proof does not verify under its own key ({reason}): the circuit rejected a witness the "
            "reference accepted, or the key directory is inconsistent",
            retryable=False,
            reason=reason,
            circuit_id=spec.circuit_id(),
            keys_dir=str(keys.path),
        )
    return Groth16Proof(proof, commitments, spec.circuit_id(), keys.provenance, key.witness.name, timings)
