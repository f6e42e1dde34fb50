"""What ``pot-zk verify`` does with a ``zk-groth16`` proof: find a verifying key the verifier
holds, and check a proof file against the commitments the run recorded.

Keys (docs/proofs.md): a verifying key is only as good as whoever ran the setup.

* ``key_dir`` given (``verify --keys DIR``, or a key directory the verifier names): the key
  directory for the statement, opened and checked by :func:`~pot_zk.backends.groth16.keys.load_verifying_key`
  (its circuit source must be the one this code generates for the run's spec); provenance
  ``auditor`` (the verifier ran the setup: sound for it) or ``zkey`` (a ceremony) as its
  record says -- whoever wrote the directory wrote that record -- and a directory whose record
  says ``dev`` (e.g. the trainer's cache, named with ``--srs``) gets the dev-key policy below;
* otherwise the ``dev`` key in the verifier's cache (``<cache>/groth16/<circuit id>``, where a
  training run on this machine made it) whose verifying key is the one the run declares. Its
  maker knows the trapdoor and can forge proofs: a note says so, and a production-mode run is
  refused (``dev-keys-refused``) unless the verifier allows dev keys explicitly. A cache holds
  only setups run there (``keys.ensure_keys``), so a key found in it is ``dev`` whatever its
  provenance.json says: whoever can write the cache can write that label too.

Nothing in the bundle chooses the key: the declared ``vk_sha256`` only selects which cached
dev key to try, and a proof that verifies under it is still labelled ``dev``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pot_zk.backends.groth16 import adapter, keys as groth16_keys
from pot_zk.backends.groth16.statement import Groth16Statement
from pot_zk.backends.groth16.verify import verify_groth16
from pot_zk.exceptions import ConfigurationError, ProofVerificationError

DEV_KEY_NOTE = (
    "zk-groth16 proofs were checked with a dev key (a setup the prover ran itself): whoever ran it knows "
    "the trapdoor and could forge proofs. Use keys you generated instead (pot-zk keys new prover=groth16 ..., then pot-zk verify RUN --keys DIR)."
)


@dataclass(frozen=True)
class Groth16VerifierKey:
    """A verifying key the verifier settled on, and how to report it."""

    key: groth16_keys.CircuitVerifyingKey
    record: dict[str, Any]
    notes: tuple[str, ...] = field(default=())


def verifier_key(
    spec: Groth16Statement, declared: Mapping[str, Any] | None, cache_dir: Path, key_dir: Path | None, allow_dev: bool, *, trusted: bool = False
) -> Groth16VerifierKey:
    """The verifying key for proofs of ``spec``. ``declared`` is the run's manifest (None for a
    single step outside a run); ``trusted``: ``key_dir`` is a key set the auditor's trust store
    knows (``--keys``), else its provenance record is its own word. Raises ProofVerificationError
    (``reason``: ``keys-unavailable``, ``dev-keys-refused``) when the verifier holds no acceptable key."""
    if key_dir is not None:
        key = _open(spec, Path(key_dir))
        if key.provenance == "dev":
            return _dev_policy(key, declared, allow_dev)
        if not trusted and _production(declared) and not allow_dev:
            # review57: the trainer relabelled its dev key directory "auditor" and a production run verified
            raise ProofVerificationError(
                f"a production-mode run checked with the key directory {key_dir}, whose provenance {key.provenance!r} is its own word, "
                "not checked: whoever wrote it may know the key's trapdoor (pass --keys DIR with key sets your trust store knows, "
                "or --allow-dev-srs to accept it)",
                reason="dev-keys-refused",
            )
        return Groth16VerifierKey(key, _record(key))
    directory = groth16_keys.key_directory(cache_dir, spec)
    recorded = (declared or {}).get("keys") or {}
    if not directory.is_dir():  # review23: the usual case of an export verified on another machine
        raise ProofVerificationError(
            f"no zk-groth16 key for circuit {spec.circuit_id()} in your cache ({directory}): pass yours with --keys DIR, or "
            "the trainer's dev key directory with --srs DIR (its word: it ran that setup)",
            reason="keys-unavailable",
        )
    key = dataclasses.replace(_open(spec, directory), provenance="dev")
    if declared is not None and key.vk_sha256 != recorded.get("vk_sha256"):
        raise ProofVerificationError(
            f"no key given (--keys) and the dev key in {directory} is not the one the run declares "
            f"(vk {str(recorded.get('vk_sha256'))[:16]}...)",
            reason="keys-unavailable",
        )
    return _dev_policy(key, declared, allow_dev)


def _dev_policy(key: groth16_keys.CircuitVerifyingKey, declared: Mapping[str, Any] | None, allow_dev: bool) -> Groth16VerifierKey:
    """A dev key (from the cache, or a directory whose record says dev): noted, and refused for a
    production-mode run unless the verifier allows dev keys."""
    if _production(declared) and not allow_dev:
        raise ProofVerificationError(
            "a production-mode run proven with a dev key (pass --allow-dev-srs to accept, or --keys with your own)",
            reason="dev-keys-refused",
        )
    return Groth16VerifierKey(key, _record(key), (DEV_KEY_NOTE,))


def _production(declared: Mapping[str, Any] | None) -> bool:
    return declared is not None and declared.get("mode") == "production"


def verify_proof_file(spec: Groth16Statement, commitments: Mapping[str, Any], proof: Path, key: Groth16VerifierKey) -> None:
    """Raise ProofVerificationError (with the verdict's reason) unless the 256-byte proof in
    ``proof`` shows the step committed as ``commitments`` (the verifier's records; a scheduled
    step's ``learning_rate`` the verifier recomputed) under ``key``."""
    verify_proof_bytes(spec, commitments, read_proof(proof), key)


def read_proof(proof: Path) -> bytes:
    """The 256 bytes of a proof file; ProofVerificationError (``malformed-proof``) for a file of
    another size, which is not read whole (review31), or one that cannot be read."""
    try:
        with open(proof, "rb") as opened:
            size = os.fstat(opened.fileno()).st_size
            data = opened.read(adapter.PROOF_BYTES) if size == adapter.PROOF_BYTES else b""
    except OSError as exc:
        raise ProofVerificationError(f"cannot read the proof file {proof}: {exc}", reason="malformed-proof") from exc
    if len(data) != adapter.PROOF_BYTES:
        raise ProofVerificationError(f"a Groth16 proof is {adapter.PROOF_BYTES} bytes, the proof file has {size}", reason="malformed-proof")
    return data


def verify_proof_bytes(spec: Groth16Statement, commitments: Mapping[str, Any], data: bytes, key: Groth16VerifierKey) -> None:
    """:func:`verify_proof_file` of proof bytes already read."""
    public = spec.public_values(commitments, commitments.get("learning_rate"))
    missing = [name for name, value in public.items() if value is None]
    if missing:
        raise ProofVerificationError(f"the step's record has no {missing} commitment", reason="malformed-commitment")
    verdict = verify_groth16(spec, data, public, key.key)
    if not verdict.ok:
        raise ProofVerificationError(verdict.message, reason=verdict.reason or "invalid-proof")


def _open(spec: Groth16Statement, directory: Path) -> groth16_keys.CircuitVerifyingKey:
    if not directory.is_dir():
        raise ProofVerificationError(f"no zk-groth16 key for circuit {spec.circuit_id()} in {directory}", reason="keys-unavailable")
    try:
        return groth16_keys.load_verifying_key(spec, directory)
    except ConfigurationError as exc:
        raise ProofVerificationError(exc.message, reason="keys-unavailable") from exc


def _record(key: groth16_keys.CircuitVerifyingKey) -> dict[str, Any]:
    return {"provenance": key.provenance, "circuit_id": key.circuit_id, "vk_sha256": key.vk_sha256, "directory": str(key.directory)}
