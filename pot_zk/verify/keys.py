"""``pot-zk verify RUN --keys DIR``: check a run with key material the auditor generated.

The ``keys`` check fails when the run's statement is not one the keys were made for
(``keys-statement-mismatch``), when the keys are of a proof system this verifier cannot check
with (``keys-backend-unsupported``), or when the run declares, or a proof record reports,
other key material than the auditor's (``foreign-keys``). Independently of what the bundle
declares, every proof is then verified with the auditor's own material (for ``zk-halo2``: the
SRS in DIR; for ``zk-groth16``: the verifying key in DIR's key directory of the run's circuit),
so a proof made under other keys also fails the ``proofs`` check.

The keys' backend checks the run against them
(:meth:`~pot_zk.backends.base.ProverBackend.check_run_keys`) and returns the verifier material,
e.g. ``{"key_path": Path}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pot_zk.backends.keys import KeySet
from pot_zk.backends.registry import BACKENDS


def check_keys(report, manifest: dict[str, Any], proofs: list[dict[str, Any]], keys: KeySet) -> dict[str, Path]:
    """Add the ``keys`` check to ``report``; return the verifier material the proofs check uses."""
    failures_before = len(report.findings)
    report.keys = {
        "directory": str(keys.directory),
        "generated_by": keys.generated_by,
        "generated_at": keys.generated_at,
        "provenance": keys.details.get("provenance"),
        "sha256": dict(keys.sha256),
    }
    if manifest.get("circuit_id") not in keys.circuit_ids:
        report.fail("keys", "keys-statement-mismatch", f"the run's statement {manifest.get('circuit_id')} is not one your keys were made for {list(keys.circuit_ids)}")
    backend = next((b for _, b in BACKENDS.items() if b.proof_type == keys.proof_type), None)
    if backend is None:
        report.fail("keys", "keys-backend-unsupported", f"no backend proves {keys.proof_type!r} proofs")
        return {}
    material = backend.check_run_keys(report, manifest, proofs, keys)
    if len(report.findings) == failures_before:
        report.passed.append("keys")
    return material
