"""Verifying one step's proof of any type against a statement the verifier declares.

The statement is the circuit spec (SGD or LoRA: architecture, batch size, learning rate,
fixed-point scale, tolerance) and the step's commitments. Nothing the prover says about its
circuit, keys or proof type is trusted: the verifier names the proof type it expects, which
selects the verifier in :data:`pot_zk.backends.registry.PROOF_TYPES`; that verifier derives
the circuit and verifying key itself, with key material the verifier chose
(:meth:`~pot_zk.backends.base.StepVerifier.verifier_keys`), and checks the proof's public
values against the declared commitments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from pot_zk.backends.base import StepStatement, VerifierKeys, VerifierOptions
from pot_zk.backends.keys import KeySet
from pot_zk.backends.registry import BACKENDS, PROOF_TYPES
from pot_zk.exceptions import ProofVerificationError
from pot_zk.verify.trust import TrustStore

__all__ = ["StepStatement", "StepVerdict", "auditor_step_keys", "step_keys", "verify_step"]


@dataclass(frozen=True)
class StepVerdict:
    ok: bool
    proof_type: str
    reason: str | None = None
    message: str = ""

    def to_dict(self) -> dict:
        return {"ok": self.ok, "proof_type": self.proof_type, "reason": self.reason, "message": self.message}


def step_keys(spec, proof_type: str, options: VerifierOptions) -> VerifierKeys | None:
    """Key material to verify one step's ``proof_type`` proof outside a run (there is no
    manifest): the verifier's key file, else the dev keys in its cache. None for a proof type
    without keys or without a verifier."""
    if proof_type not in PROOF_TYPES:
        return None
    return PROOF_TYPES.get(proof_type).verifier_keys(spec, None, options)


def auditor_step_keys(spec, proof_type: str, keys: KeySet, options: VerifierOptions) -> VerifierKeys | None:
    """``verify-step --keys DIR``: the verifier material in the auditor's ``keys`` for one
    ``proof_type`` proof of ``spec``. Raises ProofVerificationError (``keys-untrusted``: the key
    set is not in the trust store of ``options.cache_dir``; ``keys-backend-mismatch``: the keys
    are of another proof type; ``keys-statement-mismatch``: they were not made for ``spec``)."""
    trust = TrustStore.in_cache(Path(options.cache_dir))
    known = trust.known_keys(keys)
    if known is None:
        raise ProofVerificationError(
            f"the keys in {keys.directory} are not in your trust store {trust.root} (pot-zk keys new records the keys it makes "
            "there): whoever made them could know their trapdoor; verify with keys you made, with the same --cache-dir",
            reason="keys-untrusted",
        )
    if keys.proof_type != proof_type:
        raise ProofVerificationError(f"the keys in {keys.directory} are for {keys.proof_type} proofs, not {proof_type}", reason="keys-backend-mismatch")
    backend = next(b for _, b in BACKENDS.installed() if b.proof_type == proof_type)
    made_for = list(known.get("circuit_ids") or keys.circuit_ids)  # the trust store's record, not keys.json
    path = backend.auditor_key_path(keys, spec.circuit_id()) if spec.circuit_id() in made_for else None
    if path is None:
        raise ProofVerificationError(
            f"the statement {spec.circuit_id()} is not one your keys in {keys.directory} were made for {made_for}",
            reason="keys-statement-mismatch",
        )
    return step_keys(spec, proof_type, dataclasses.replace(options, key_path=path))


def verify_step(
    statement: StepStatement,
    proof_type: str,
    proof: Path,
    *,
    cache_dir: Path,
    keys: VerifierKeys | None = None,
) -> StepVerdict:
    """Check ``proof`` (a file of type ``proof_type``) against ``statement``.

    Returns a verdict; an invalid, malformed or mismatched proof is ``ok=False`` with a
    named ``reason``, never an exception (a statement whose rate is public at a rate whose
    update constant is 0: ``zero-rate``, the step trains nothing). Configuration problems (no
    keys) still raise.
    """
    if proof_type not in PROOF_TYPES:
        return StepVerdict(False, proof_type, "unknown-proof-type", f"no verifier for proof type {proof_type!r}")
    spec, rate = statement.spec, statement.commitment.learning_rate
    if getattr(spec, "rate_public", False) and rate is not None and spec.rate_constant(rate) == 0:
        return StepVerdict(
            False, proof_type, "zero-rate",
            f"the step's rate {rate!r} rounds to the update constant 0: it trains nothing, whatever its proof (W_t+1 = W_t)",
        )
    try:
        PROOF_TYPES.get(proof_type).verify(statement, Path(proof), keys, Path(cache_dir))
    except ProofVerificationError as exc:
        return StepVerdict(False, proof_type, exc.reason, exc.message)
    return StepVerdict(True, proof_type, None, "verified")
