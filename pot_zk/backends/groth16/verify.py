"""Verifying a ``zk-groth16`` proof of one SGD step against a statement the verifier holds.

The verifier supplies everything but the proof: the spec (which fixes the circuit), the
three commitments it recorded for the step (never the ones a prover response claims), and a
verifying key loaded from a directory it names (``keys.load_verifying_key``, which checks
the directory belongs to the spec). Whether the key's provenance (``dev``, ``auditor``,
``zkey``) is acceptable is the caller's policy: ``vk.provenance``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pot_zk.backends.groth16 import adapter
from pot_zk.backends.groth16.commit import StepCommitments
from pot_zk.backends.groth16.keys import CircuitVerifyingKey
from pot_zk.backends.groth16.statement import Groth16Statement
from pot_zk.exceptions import ProofVerificationError


@dataclass(frozen=True)
class Groth16Verdict:
    ok: bool
    reason: str | None = None
    """None when ok; else ``malformed-proof``, ``malformed-commitment``, ``wrong-circuit`` or
    ``invalid-proof``."""
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "message": self.message}


def verify_groth16(
    spec: Groth16Statement,
    proof: bytes,
    commitments: StepCommitments | Mapping[str, Any],
    vk: CircuitVerifyingKey,
) -> Groth16Verdict:
    """Does ``proof`` show that the step committed as ``commitments`` is the exact step (SGD,
    or LoRA on the adapters) of ``spec``, under verifying key ``vk``?"""
    if vk.circuit_id != spec.circuit_id():
        return Groth16Verdict(False, "wrong-circuit", f"the verifying key is for circuit {vk.circuit_id}, not {spec.circuit_id()}")
    if not isinstance(proof, (bytes, bytearray)) or len(proof) != adapter.PROOF_BYTES:
        size = len(proof) if isinstance(proof, (bytes, bytearray)) else type(proof).__name__
        return Groth16Verdict(False, "malformed-proof", f"a Groth16 proof is {adapter.PROOF_BYTES} bytes, got {size}")
    try:
        if not isinstance(commitments, StepCommitments):
            commitments = StepCommitments.from_dict(commitments, spec.public_order)
        if commitments.names != spec.public_order:
            raise KeyError(f"got {list(commitments.names)}")
        public = commitments.public_inputs()
    except (KeyError, TypeError) as exc:
        return Groth16Verdict(False, "malformed-commitment", f"commitments need exactly {list(spec.public_order)}: {exc!r}")
    except ProofVerificationError as exc:
        return Groth16Verdict(False, exc.reason, exc.message)
    if adapter.public_count(vk.key) != len(public):
        return Groth16Verdict(False, "wrong-circuit", f"the verifying key expects {adapter.public_count(vk.key)} public values, not {len(public)}")
    accepted, reason = adapter.verify(vk.key, bytes(proof), public)
    if accepted:
        return Groth16Verdict(True)
    kind, _, detail = (reason or "invalid-proof").partition(": ")
    return Groth16Verdict(False, kind, detail or f"the proof does not verify for circuit {spec.circuit_id()} and these commitments")
