"""The ``proofs`` check of ``pot-zk verify``: only proofs this process verified count.

Each outcome in proofs.jsonl has the status ``proved``, ``failed`` or ``parked``; any other is
``unknown-status`` (a status is the trainer's word, never evidence). A step counts as proven
only when its final ``proved`` outcome names a proof type the run's backend states
(``proof-type-mismatch`` otherwise), its proof file is in the bundle, and that proof verifies
here against the statement and the step's recorded commitments, with key material the
verifier chose. A verifier that raises anything unexpected is a finding of that step
(``verifier-error``), never a crash: the report is still written.
"""

from __future__ import annotations

from collections import Counter

from typing import Any, Mapping

from pot_zk.backends.base import StepStatement, VerifierKeys, VerifierOptions
from pot_zk.backends.registry import PROOF_TYPES, backend_of
from pot_zk.bundle.layout import BundleReader, own_file
from pot_zk.exceptions import ProofVerificationError
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.verify.report import RunReport
from pot_zk.verify.step import verify_step

OUTCOME_STATUSES = ("proved", "failed", "parked")


def check_proofs(
    report: RunReport,
    bundle: BundleReader,
    manifest: Mapping[str, Any],
    spec: Any,
    by_step: Mapping[int, Mapping[str, Any]],
    proofs: list[dict[str, Any]],
    audit_events: list[dict[str, Any]],
    options: VerifierOptions,
    rates: Mapping[int, float] | None = None,
) -> None:
    """Every outcome; each proof verified against the step's records (a scheduled step: at the
    learning rate ``rates`` holds for it, which verify recomputed, never the recorded one)."""
    failures_before = report.failures
    final = _final_outcomes(report, by_step, proofs)
    labels = {  # the sweep rerun in session 22: a proof type that is a list raised (unhashable)
        (e.get("step"), e.get("proof_type")) for e in audit_events
        if e.get("event") == "proof.result" and e.get("status") == "proved" and all(_key(e.get(k)) for k in ("step", "proof_type"))
    }
    stated = backend_of(spec).stated_proof_types()
    keys: dict[str, VerifierKeys | None | Exception] = {}
    coverage: Counter = Counter()
    steps = sorted(s for s in by_step if isinstance(s, int) and not isinstance(s, bool))
    for step, commitment_record in ((s, by_step[s]) for s in steps):
        record = final.get(step)  # other steps are findings of check_steps; a boolean step was counted as verified (review36)
        if commitment_record.get("scheduled") and record is None:
            report.fail("proofs", "missing-proof", "the policy selected this step but it has no proof outcome", step)
        status = None if record is None else record.get("status")
        if status != "proved":
            coverage["commitment-only" if record is None else status if status in OUTCOME_STATUSES else "unknown-status"] += 1
            continue
        proof_type = record.get("proof_type")
        if audit_events and (not _key(proof_type) or (step, proof_type) not in labels):  # no events: the audit-chain check already failed
            report.fail("proofs", "label-mismatch", f"proof labelled {proof_type!r} but the audit trail recorded no such proof", step)
        recomputed = {**commitment_record, "learning_rate": (rates or {}).get(step)}
        if _verified(report, bundle, manifest, spec, step, recomputed, record, stated, keys, options):
            coverage[str(proof_type)] += 1
            report.verified_steps.add(step)
        else:
            coverage["rejected"] += 1
    report.coverage = dict(coverage)
    if report.failures == failures_before:
        report.passed.append("proofs")


def _final_outcomes(report: RunReport, by_step: Mapping[int, Any], proofs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each step's last outcome; ``unknown-status``, ``unknown-step`` and ``duplicate-proof`` named."""
    final: dict[int, dict[str, Any]] = {}
    for record in proofs:
        step, status = record.get("step"), record.get("status")
        if status not in OUTCOME_STATUSES:
            report.fail("proofs", "unknown-status", f"outcome status {status!r} is none of {', '.join(OUTCOME_STATUSES)}", step)
        if type(step) is not int or step not in by_step:  # review51: a step [] raised TypeError here
            report.fail("proofs", "unknown-step", "a proof record names a step without a commitment", step)
            continue
        if status == "proved" and final.get(step, {}).get("status") == "proved":
            report.fail("proofs", "duplicate-proof", "two proofs recorded for one step", step)
        final[step] = record
    return final


def _key(value: Any) -> bool:
    """Whether a record's value can be a set member or dict key (a crafted one may be a list)."""
    return value is None or isinstance(value, (str, int, float))


def _verified(report, bundle, manifest, spec, step: int, commitment_record, record, stated, keys: dict, options: VerifierOptions) -> bool:
    """Whether the step's proof verifies here; every reason it does not is a finding."""
    proof_type = record.get("proof_type")
    if proof_type not in stated:
        report.fail("proofs", "proof-type-mismatch", f"proof type {proof_type!r} is not one the {spec.backend} backend states ({', '.join(stated)})", step)
        return False
    path = own_file(bundle.root, str(record.get("proof")))
    if isinstance(path, str):
        report.fail("proofs", "missing-proof-file", f"proof file {path}", step)
        return False
    if proof_type not in keys:
        keys[proof_type] = _keys_for(report, proof_type, spec, manifest, options)
    if isinstance(keys[proof_type], Exception):  # named once, when the keys were sought
        return False
    try:
        commitment = StepCommitment.from_dict(dict(commitment_record))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # review51: a NaN scale (record-not-canonical names it too)
        report.fail("proofs", "unreadable-records", f"the step's commitment record cannot be read for its proof: {type(exc).__name__}: {str(exc)[:200]}", step)
        return False
    try:
        verdict = verify_step(StepStatement(spec, commitment), proof_type, path, cache_dir=options.workdir, keys=keys[proof_type])
    except Exception as exc:  # noqa: BLE001 -- a crafted bundle must not crash the verifier: a finding, not a traceback
        report.fail("proofs", "verifier-error", f"the {proof_type} verifier raised {type(exc).__name__}: {exc}", step)
        return False
    if not verdict.ok:
        report.fail("proofs", verdict.reason or "invalid", verdict.message, step)
    return verdict.ok


def _keys_for(report: RunReport, proof_type: str, spec: Any, manifest: Mapping[str, Any], options: VerifierOptions) -> VerifierKeys | None | Exception:
    """The verifier's keys for ``proof_type``, or the error (named as a finding) why there are none."""
    try:
        keys = PROOF_TYPES.get(proof_type).verifier_keys(spec, manifest, options)
    except ProofVerificationError as exc:
        report.fail("proofs", exc.reason, exc.message)
        return exc
    except Exception as exc:  # noqa: BLE001 -- as in _verified
        report.fail("proofs", "verifier-error", f"finding {proof_type} keys raised {type(exc).__name__}: {exc}")
        return exc
    if keys is not None:
        report.verifier_keys[proof_type] = keys.record
        report.notes.extend(keys.notes)
    return keys
