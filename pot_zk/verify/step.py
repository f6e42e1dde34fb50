"""Verifying one step's proof of any type against a statement the verifier declares.

The statement is the circuit spec (SGD or LoRA: architecture, batch size, learning rate,
fixed-point scale, tolerance) and the step's commitments. Nothing the prover says about its circuit,
keys or proof type is trusted: the verifier names the proof type it expects, derives the
circuit and verifying key itself, and checks the proof's public values against the declared
commitments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pot_zk.kinds.commitments import StepCommitment
from pot_zk.exceptions import ConfigurationError, ProofVerificationError
from pot_zk.backends.ezkl.adapter import SrsRef
from pot_zk.kinds.spec_base import CircuitSpec


@dataclass(frozen=True)
class StepStatement:
    spec: CircuitSpec
    commitment: StepCommitment


@dataclass(frozen=True)
class StepVerdict:
    ok: bool
    proof_type: str
    reason: str | None = None
    message: str = ""

    def to_dict(self) -> dict:
        return {"ok": self.ok, "proof_type": self.proof_type, "reason": self.reason, "message": self.message}


def _verify_halo2(statement: StepStatement, proof: Path, cache_dir: Path, srs: SrsRef | None) -> None:
    from pot_zk.backends.ezkl import halo2

    if srs is None:
        raise ConfigurationError("verifying a zk-halo2 proof needs an SRS (srs.path, or a dev SRS)", key="srs.path")
    _check_redundant_encoding(proof)
    halo2.verify_step_proof(statement.spec, statement.commitment, proof, cache_dir, srs)


def _check_redundant_encoding(proof: Path) -> None:
    """ezkl's proof file carries the proof twice: ``proof`` (bytes, what ezkl verifies) and
    ``hex_proof`` (what e.g. an EVM verifier is given). A file whose two encodings differ is
    malformed: whatever reads the other one must not see an unverified proof."""
    import json

    try:
        data = json.loads(Path(proof).read_text())
        hex_proof = data.get("hex_proof") if isinstance(data, dict) else None
        if hex_proof is not None and hex_proof.lower() != "0x" + bytes(data["proof"]).hex():
            raise ProofVerificationError("the proof file's hex_proof differs from its proof bytes", reason="malformed-proof")
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return  # unreadable files are reported by the verifier itself, with its own reason


def _verify_reexec(statement: StepStatement, proof: Path, cache_dir: Path, srs: SrsRef | None) -> None:
    from pot_zk.backends.certificates.reexec import verify_reexec

    verify_reexec(statement.spec, statement.commitment, proof)


def _verify_freivalds(statement: StepStatement, proof: Path, cache_dir: Path, srs: SrsRef | None) -> None:
    from pot_zk.backends.certificates.freivalds import verify_freivalds

    verify_freivalds(statement.spec, statement.commitment, proof)


VERIFIERS: dict[str, Callable[[StepStatement, Path, Path, SrsRef | None], None]] = {
    "zk-halo2": _verify_halo2,
    "reexec": _verify_reexec,
    "freivalds": _verify_freivalds,
}


def verify_step(
    statement: StepStatement,
    proof_type: str,
    proof: Path,
    *,
    cache_dir: Path,
    srs: SrsRef | None = None,
) -> StepVerdict:
    """Check ``proof`` (a file of type ``proof_type``) against ``statement``.

    Returns a verdict; an invalid, malformed or mismatched proof is ``ok=False`` with a
    named ``reason``, never an exception. Configuration problems (no SRS) still raise.
    """
    verifier = VERIFIERS.get(proof_type)
    if verifier is None:
        return StepVerdict(False, proof_type, "unknown-proof-type", f"no verifier for proof type {proof_type!r}")
    try:
        verifier(statement, Path(proof), Path(cache_dir), srs)
    except ProofVerificationError as exc:
        return StepVerdict(False, proof_type, exc.reason, exc.message)
    return StepVerdict(True, proof_type, None, "verified")
