"""``pot-zk verify RUN --keys DIR``: check a run with key material the auditor generated.

The ``keys`` check fails when the run's statement is not one the keys were made for
(``keys-statement-mismatch``), when the keys are of a proof system this verifier cannot check
with (``keys-backend-unsupported``), or when the run declares, or a proof record reports,
other key material than the auditor's (``foreign-keys``). Independently of what the bundle
declares, every proof is then verified with the auditor's own material (for ``zk-halo2``: the
SRS in DIR; for ``zk-groth16``: the verifying key in DIR's key directory of the run's circuit),
so a proof made under other keys also fails the ``proofs`` check.

A backend plugs in with one function in :data:`KEY_CHECKS`, keyed by proof type::

    def check(report, manifest, proofs, keys: KeySet) -> dict   # verifier material, e.g. {"key_path": Path}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pot_zk.backends.keys import KeySet
from pot_zk.core.registry import Registry


def _check_ezkl(report, manifest: dict[str, Any], proofs: list[dict[str, Any]], keys: KeySet) -> dict[str, Path]:
    ours = keys.sha256["srs"]
    declared = (manifest.get("srs") or {}).get("sha256")
    if declared != ours:
        report.fail("keys", "foreign-keys", f"the run was proven with SRS {str(declared)[:16]}..., not yours ({ours[:16]}...)")
    for record in proofs:
        if record.get("status") != "proved" or record.get("proof_type") != keys.proof_type:
            continue
        used = ((record.get("public") or {}).get("srs") or {}).get("sha256")
        if used != ours:
            report.fail("keys", "foreign-keys", f"the prover reports SRS {str(used)[:16]}... for this proof, not yours", record.get("step"))
    return {"key_path": keys.path("srs")}


KEY_CHECKS: Registry[Callable[..., dict[str, Path]]] = Registry(
    "key check", "keys", {"zk-halo2": _check_ezkl, "zk-groth16": "pot_zk.backends.groth16.auditor_keys:check_run_keys"}
)


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
    checker = KEY_CHECKS.get(keys.proof_type) if keys.proof_type in KEY_CHECKS else None
    if checker is None:
        report.fail("keys", "keys-backend-unsupported", f"no key check for proof type {keys.proof_type!r}")
        return {}
    material = checker(report, manifest, proofs, keys)
    if len(report.findings) == failures_before:
        report.passed.append("keys")
    return material
