"""``pot-zk verify RUN``: check a whole run from its bundle.

What is checked (each failure is named; docs/runs.md):

* ``audit-chain``: the audit trail's hash chain is intact and closed by ``run.end``;
* ``statement``: the declared circuit spec parses; the verifier derives circuit and keys from it;
* ``dataset-root``: the batch commitments, then the held-out set's commitment, hash to the
  declared Merkle root;
* ``steps``: one commitment record per step, 0..n-1, none missing or duplicated, the count the
  declared training plan implies; batches visited in the declared seeded order, each a leaf
  (a run with ``batch_order: recorded``, from a user loop, declares no schedule: only
  "each step's batch is a leaf" is checked, and the report says so in a note);
* ``commitment-chain``: W_t+1 of each step is W_t of the next;
* ``initial-model`` / ``final-model``: the model files hash to the first / last commitment
  (for a LoRA run: their adapters do, and their frozen base hashes to the declared base);
* ``base-model``: every step of a LoRA run commits to the declared base; an SGD run has none;
* ``policy``: the steps marked for proving are exactly those the declared policy selects;
* ``holdout`` / ``evaluation``: the held-out set and the scores recorded on it
  (:mod:`pot_zk.verify.holdout`);
* ``proofs``: every selected step has an outcome; every outcome in proofs.jsonl is the one the
  audit trail recorded (``record-mismatch``); every proof verifies against the statement
  (for zk-halo2: circuit and key derived by the verifier, kept in its own cache; the run's
  commitments) and carries the label the audit trail recorded for it;
* ``keys`` (with ``--keys DIR``): the run was proven with the auditor's own key material
  (pot_zk/verify/keys.py), which the ``proofs`` check then uses;
* ``challenge`` (with ``--challenge C.json``): the auditor's challenge fits the bundle and every
  challenged step has a proof that verified (pot_zk/verify/challenge.py);
* the auditor's references (:mod:`pot_zk.verify.references`): the dataset root and initial
  model recomputed where they can be, ``--expect-root``, ``--expect-head``, ``--expect-base``,
  ``--max-tolerance-ulps``, ``--min-proven``.

The verdict is ``VERIFIED`` (exit 0), ``FAILED`` (a check failed, exit 1) or ``UNPROVEN``
(every check passed but no step carries a verified proof, exit 3).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pot_zk.backends.base import StepStatement, VerifierKeys, VerifierOptions
from pot_zk.backends.keys import KeySet
from pot_zk.backends.registry import PROOF_TYPES, spec_from_dict
from pot_zk.core.audit_verify import verify_audit
from pot_zk.exceptions import PotZkError, ProofVerificationError
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import RunBundle, load_model, read_jsonl
from pot_zk.core.challenge import Challenge
from pot_zk.verify.challenge import check_challenge
from pot_zk.verify.keys import check_keys
from pot_zk.verify.holdout import check_holdout
from pot_zk.verify.references import (
    Expectations,
    check_base_reference,
    check_dataset_reference,
    check_head,
    check_initial_reference,
    check_min_proven,
    check_tolerance,
    record_plan,
)
from pot_zk.verify.run_checks import check_base, check_models, check_outcomes_recorded, check_steps, note_free_velocity
from pot_zk.verify.statement import check_statement
from pot_zk.verify.step import verify_step


EXIT_CODES = {"VERIFIED": 0, "FAILED": 1, "UNPROVEN": 3}
NOT_PROVEN = ("failed", "parked", "commitment-only")


def default_cache_dir() -> Path:
    return Path(os.environ.get("POT_ZK_CACHE", Path.home() / ".cache" / "pot-zk"))


@functools.cache
def verifier_workdir() -> Path:
    """Where this process compiles zk-halo2 circuits and derives their verifying keys when it
    does not use the verifier's cache (``verify --no-verifier-cache``, or a cache others can
    write): a directory of its own (mode 0700, removed at exit). Nothing the trainer cached is
    read either way (docs/runs.md, "Circuits and keys")."""
    path = Path(tempfile.mkdtemp(prefix="pot-zk-verifier-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@dataclass(frozen=True)
class Finding:
    check: str
    reason: str
    message: str
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "reason": self.reason, "message": self.message, "step": self.step}


@dataclass
class RunReport:
    run: Path
    findings: list[Finding] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    coverage: dict[str, int] = field(default_factory=dict)
    statement: dict[str, Any] = field(default_factory=dict)
    verifier_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The key material each proof type was verified with (e.g. the SRS of zk-halo2)."""
    notes: list[str] = field(default_factory=list)
    keys: dict[str, Any] | None = None
    """The auditor's own key material (``--keys``), when given."""
    verified_steps: set[int] = field(default_factory=set)
    """Steps whose proof the ``proofs`` check verified."""
    references: dict[str, Any] = field(default_factory=dict)
    """What the auditor's references found: dataset root, commitment head, plan, ..."""

    @property
    def ok(self) -> bool:
        """No check failed (see :attr:`verdict` for whether anything was proven)."""
        return not self.findings

    @property
    def proven(self) -> int:
        """Steps whose proof (of any type) verified."""
        return sum(count for outcome, count in self.coverage.items() if outcome not in NOT_PROVEN)

    @property
    def verdict(self) -> str:
        if self.findings:
            return "FAILED"
        return "VERIFIED" if self.proven else "UNPROVEN"

    def fail(self, check: str, reason: str, message: str, step: int | None = None) -> None:
        self.findings.append(Finding(check, reason, message, step))

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run),
            "ok": self.ok,
            "verdict": self.verdict,
            "proven": self.proven,
            "references": self.references,
            "passed": self.passed,
            "findings": [f.to_dict() for f in self.findings],
            "coverage": self.coverage,
            "statement": self.statement,
            "verifier_keys": self.verifier_keys,
            "keys": self.keys,
            "notes": self.notes,
        }

    def summary(self) -> str:
        lines = [f"run: {self.run}", f"result: {self.verdict}"]
        if self.verdict == "UNPROVEN":
            lines.append("no step carries a verified proof: the bundle shows commitments only, not that any update was computed correctly")
        if self.statement:
            lines.append(f"statement: {self.statement}")
        if self.keys:
            keys = self.keys
            made = "imported by you from a ceremony's zkey" if keys.get("provenance") == "zkey" else "generated by you"
            lines.append(f"keys: {made} ({keys['directory']}, by {keys['generated_by']} at {keys['generated_at']}); proofs checked with them")
        lines += [f"key provenance ({proof_type}): {record['provenance']}" for proof_type, record in self.verifier_keys.items() if "provenance" in record]
        lines += [f"{name.replace('_', ' ')}: {value}" for name, value in self.references.items()]
        if self.coverage:
            lines.append("coverage: " + ", ".join(f"{k}={v}" for k, v in self.coverage.items()))
        lines += [f"passed: {name}" for name in self.passed]
        lines += [f"FAILED {f.check} ({f.reason}){'' if f.step is None else f' step {f.step}'}: {f.message}" for f in self.findings]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def verify_run(
    run: Path,
    *,
    cache_dir: Path,
    srs_path: Path | None = None,
    allow_dev_srs: bool = False,
    challenge: Challenge | None = None,
    keys: KeySet | None = None,
    expect_root: str | None = None,
    expect_head: str | None = None,
    max_tolerance_ulps: int | None = None,
    min_proven: int = 0,
    accept_settings: Mapping[str, str] | None = None,
    expect_base: str | None = None,
    verifier_cache: bool = True,
) -> RunReport:
    """Check the run in ``run``. ``cache_dir`` is where a dev SRS is looked up; ``challenge`` (the
    auditor's C.json) adds the ``challenge`` check and ``keys`` (from ``pot-zk keys new``) the
    ``keys`` check, proofs then verified with them; the other keywords are the auditor's
    references (:class:`~pot_zk.verify.references.Expectations`; a malformed one raises
    ConfigurationError before anything is read), and ``accept_settings`` the statement settings
    the auditor accepts other than their defaults (:mod:`pot_zk.verify.statement`).
    ``verifier_cache=False`` derives zk-halo2 circuits and keys afresh instead of reusing the
    verifier's cache under ``cache_dir`` (:mod:`pot_zk.backends.ezkl.verifier_cache`)."""
    expected = Expectations(expect_root, expect_head, max_tolerance_ulps, min_proven, expect_base)
    report = RunReport(Path(run))
    try:
        bundle = RunBundle.open(Path(run))
        manifest = bundle.manifest()
        spec = spec_from_dict(manifest["circuit"])
    except (PotZkError, OSError, ValueError, KeyError) as exc:
        report.fail("statement", "unreadable-bundle", str(exc))
        return report
    report.statement = spec.to_dict()
    check_statement(report, manifest, spec, accept_settings or {})
    check_tolerance(report, spec, expected.max_tolerance_ulps)
    audit_events = _check_audit(bundle, report)
    try:
        commitments = bundle.commitments()
        proofs = bundle.proofs()
        dataset = bundle.dataset()
    except (OSError, ValueError) as exc:
        report.fail("steps", "unreadable-records", str(exc))
        return report
    by_step = check_steps(report, manifest, dataset, commitments, spec, audit_events)
    check_dataset_reference(report, manifest, dataset, spec, expected.expect_root)
    check_initial_reference(report, manifest, by_step, spec)
    record_plan(report, manifest, commitments)
    check_head(report, manifest, commitments, expected.expect_head)
    check_models(report, bundle, by_step, spec, load_model)
    check_base(report, manifest, by_step, spec)
    check_base_reference(report, manifest, spec, expected.expect_base)
    check_outcomes_recorded(report, proofs, audit_events)
    if keys is not None:
        srs_path = check_keys(report, manifest, proofs, keys).get("key_path", srs_path)
    check_holdout(report, bundle, manifest, dataset, spec, audit_events, load_model)
    options = VerifierOptions(Path(cache_dir), verifier_workdir(), srs_path, allow_dev_srs, verifier_cache)
    _check_proofs(report, bundle, manifest, spec, by_step, proofs, audit_events, options)
    note_free_velocity(report, spec)
    if challenge is not None:
        check_challenge(report, manifest, commitments, proofs, challenge)
    check_min_proven(report, expected.min_proven)
    return report


def _check_audit(bundle: RunBundle, report: RunReport) -> list[dict[str, Any]]:
    audit = verify_audit(bundle.path(files.AUDIT))
    if not audit.ok:
        report.fail("audit-chain", audit.problem or "broken", audit.summary())
        return []
    if not audit.closed:
        report.fail("audit-chain", "not-closed", "the audit trail does not end with run.end (run unfinished or truncated)")
    events = read_jsonl(bundle.path(files.AUDIT))
    ends = [e for e in events if e.get("event") == "run.end"]
    if ends and ends[-1].get("status") != "completed":
        report.fail("audit-chain", "run-not-completed", f"the run ended with status {ends[-1].get('status')!r}")
    if audit.ok and audit.closed:
        report.passed.append("audit-chain")
    _check_manifest_recorded(bundle, report, events)
    return events


def _check_manifest_recorded(bundle: RunBundle, report: RunReport, events: list[dict[str, Any]]) -> None:
    """The manifest is the statement; the run.start record fixed it when the run began. A
    manifest edited afterwards (mode, policy, dataset root, SRS, hyper-parameters) differs."""
    recorded = next((e["manifest"] for e in events if e.get("event") == "run.start" and "manifest" in e), None)
    if recorded is None:  # e.g. the disk filled up before run.start; a rewrite of the chain could drop it anyway
        report.notes.append("the audit trail has no run.start record of the manifest: manifest.json is not cross-checked")
    elif recorded != bundle.manifest():
        report.fail("statement", "manifest-mismatch", "manifest.json differs from the manifest the run.start audit record fixed")


def _keys_for(report: RunReport, proof_type: str, spec, manifest: dict, options: VerifierOptions) -> VerifierKeys | None:
    """The verifier's keys for ``proof_type`` (raises ProofVerificationError when none are acceptable)."""
    keys = PROOF_TYPES.get(proof_type).verifier_keys(spec, manifest, options)
    if keys is not None:
        report.verifier_keys[proof_type] = keys.record
        report.notes.extend(keys.notes)
    return keys


def _check_proofs(report, bundle, manifest, spec, by_step, proofs, audit_events, options: VerifierOptions) -> None:
    failures_before = len(report.findings)
    final: dict[int, dict[str, Any]] = {}
    for record in proofs:
        step = record.get("step")
        if step not in by_step:
            report.fail("proofs", "unknown-step", "a proof record names a step without a commitment", step)
            continue
        if record.get("status") == "proved" and final.get(step, {}).get("status") == "proved":
            report.fail("proofs", "duplicate-proof", "two proofs recorded for one step", step)
        final[step] = record
    labels = {(e.get("step"), e.get("proof_type")) for e in audit_events if e.get("event") == "proof.result" and e.get("status") == "proved"}
    coverage: Counter = Counter()
    keys: dict[str, VerifierKeys | None] = {}
    for step, commitment_record in sorted(by_step.items()):
        record = final.get(step)
        if commitment_record.get("scheduled") and record is None:
            report.fail("proofs", "missing-proof", "the policy selected this step but it has no proof outcome", step)
        if record is None or record.get("status") != "proved":
            coverage["commitment-only" if record is None else record["status"]] += 1
            continue
        proof_type = record.get("proof_type")
        if audit_events and (step, proof_type) not in labels:  # no events: the audit-chain check already failed
            report.fail("proofs", "label-mismatch", f"proof labelled {proof_type!r} but the audit trail recorded no such proof", step)
        path = (bundle.root / str(record.get("proof"))).resolve()
        if bundle.root.resolve() not in path.parents or not path.is_file():
            report.fail("proofs", "missing-proof-file", f"proof file {record.get('proof')!r} is not in the bundle", step)
            continue
        if proof_type in PROOF_TYPES and proof_type not in keys:
            try:
                keys[proof_type] = _keys_for(report, proof_type, spec, manifest, options)
            except ProofVerificationError as exc:
                report.fail("proofs", exc.reason, exc.message)
                return
        commitment = StepCommitment.from_dict({**commitment_record, "scale": commitment_record["scale"]})
        verdict = verify_step(StepStatement(spec, commitment), proof_type, path, cache_dir=options.workdir, keys=keys.get(proof_type))
        if not verdict.ok:
            report.fail("proofs", verdict.reason or "invalid", verdict.message, step)
            continue
        coverage[proof_type] += 1
        report.verified_steps.add(step)
    report.coverage = dict(coverage)
    if len(report.findings) == failures_before:
        report.passed.append("proofs")
