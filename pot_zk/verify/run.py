"""``pot-zk verify RUN``: check a whole run from its bundle.

What is checked (each failure is named; docs/runs.md):

* ``audit-chain``: the audit trail's hash chain is intact and closed by ``run.end``;
* ``statement``: the declared circuit spec parses; the verifier derives circuit and keys from it;
* ``dataset-root``: the batch commitments, then the held-out set's commitment, hash to the
  declared Merkle root;
* ``steps``: one commitment record per step, 0..n-1, none missing or duplicated, the count the
  declared training plan implies; batches visited in the declared seeded order, each a leaf
  (a run with ``batch_order: recorded``, from a user loop, declares no schedule: it fails
  unless the auditor accepts it, and then only "each step's batch is a leaf" is checked; a loop
  that committed its batches as they came: :mod:`pot_zk.verify.samples`);
* ``commitment-chain``: W_t+1 of each step is W_t of the next;
* ``initial-model`` / ``final-model``: the model files hash to the first / last commitment
  (for a LoRA run: their adapters do, and their frozen base hashes to the declared base);
* ``base-model``: every step of a LoRA run commits to the declared base; an SGD run has none;
* ``policy``: the steps marked for proving are exactly those the declared policy selects;
* ``schedule``: a scheduled run's every step at the learning rate its declared schedule gives,
  recomputed here; its proofs are checked at that rate (:mod:`pot_zk.verify.schedule`);
* ``holdout`` / ``evaluation``: the held-out set and the scores recorded on it
  (:mod:`pot_zk.verify.holdout`);
* ``proofs`` (:mod:`pot_zk.verify.proofs`): only proofs verified here count; every selected
  step has an outcome; every outcome in proofs.jsonl is the one the audit trail recorded
  (``record-mismatch``); every proof verifies against the statement
  (for zk-halo2: circuit and key derived by the verifier, kept in its own cache; the run's
  commitments) and carries the label the audit trail recorded for it;
* ``keys`` (with ``--keys DIR``): the run was proven with the auditor's own key material, a
  key set its trust store holds (pot_zk/verify/keys.py, trust.py), which the ``proofs`` check
  then uses;
* ``challenge`` (with ``--challenge C.json``): the auditor issued the challenge (its trust
  store), it fits the bundle and every challenged step has a proof that verified
  (pot_zk/verify/challenge.py);
* the auditor's references (:mod:`pot_zk.verify.references`, :mod:`pot_zk.verify.recomputed`):
  the dataset root and initial model recomputed where they can be, else pinned
  (``--expect-root``, ``--expect-initial``), ``--expect-head``, ``--expect-base``,
  ``--max-tolerance-ulps``, ``--min-proven`` (default: the steps the declared policy selects).

The verdict is ``VERIFIED`` (exit 0), ``FAILED`` (a check failed, exit 1) or ``UNPROVEN``
(every check passed but no step carries a verified proof, exit 3). A bundle that makes a check
raise (a crafted record of an unexpected type, say) is ``FAILED`` with a ``verifier-error``
finding, never a traceback: the report and ``--json`` are still written.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
from pathlib import Path
from typing import Any, Mapping

from pot_zk.backends.base import VerifierOptions
from pot_zk.backends.keys import KeySet
from pot_zk.backends.registry import spec_from_dict
from pot_zk.core.audit_verify import verify_audit
from pot_zk.core.extras import MissingExtraError
from pot_zk.exceptions import ConfigurationError, PotZkError
from pot_zk.bundle import layout as files
from pot_zk.bundle.layout import BundleReader, load_model, not_regular, read_jsonl
from pot_zk.core.small_files import read_small_file
from pot_zk.core.scratch import remove_scratch, scratch_directory
from pot_zk.core.challenge import Challenge
from pot_zk.verify.canonical import check_plan_form, check_record_form, plan_readable
from pot_zk.verify.challenge import check_challenge
from pot_zk.verify.keys import check_keys
from pot_zk.verify.holdout import check_base_holdout, check_holdout
from pot_zk.verify.recomputed import check_dataset_reference, check_initial_reference
from pot_zk.verify.references import BaseRun, Expectations, base_reference, check_base_reference, check_head, check_min_proven, check_tolerance, record_plan
from pot_zk.verify.run_checks import check_base, check_models, check_outcomes_recorded, check_steps, note_coarse_rate, note_free_state, note_unproven_steps
from pot_zk.verify.proofs import check_proofs
from pot_zk.verify.report import EXIT_CODES, Finding, RunReport
from pot_zk.verify.limits import MAX_DATA_VALUES, MAX_RECORDS, too_large, too_many_records
from pot_zk.verify.schedule import check_schedule
from pot_zk.verify.statement import ACCEPT_SETTING, check_statement
from pot_zk.verify.trust import TrustStore, default_cache_dir

__all__ = ["EXIT_CODES", "Finding", "RunReport", "default_cache_dir", "verifier_workdir", "verify_run"]


@functools.cache
def verifier_workdir() -> Path:
    """Where this process compiles zk-halo2 circuits and derives their verifying keys when it
    does not use the verifier's cache (``verify --no-verifier-cache``, or a cache others can
    write): a directory of its own (mode 0700, removed at exit). Nothing the trainer cached is
    read either way (docs/runs.md, "Circuits and keys")."""
    path = scratch_directory("pot-zk-verifier-")
    atexit.register(remove_scratch, path)
    return path


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
    min_proven: int | None = None,
    accept_settings: Mapping[str, str] | None = None,
    expect_base: "str | Path | BaseRun | None" = None,
    expect_initial: str | None = None,
    allow_no_nonce: bool = False,
    verifier_cache: bool = True,
    max_data_values: int = MAX_DATA_VALUES,
    max_records: int = MAX_RECORDS,
) -> RunReport:
    """Check the run in ``run``. ``cache_dir`` is where a dev SRS is looked up; ``challenge`` (the
    auditor's C.json) adds the ``challenge`` check and ``keys`` (from ``pot-zk keys new``) the
    ``keys`` check, proofs then verified with them; the other keywords are the auditor's
    references (:class:`~pot_zk.verify.references.Expectations`; a malformed one raises
    ConfigurationError before anything is read), and ``accept_settings`` the statement and plan
    settings the auditor accepts other than their defaults (:mod:`pot_zk.verify.statement`).
    Keys and challenges are looked up in the trust store under ``cache_dir``
    (:mod:`pot_zk.verify.trust`); ``allow_no_nonce`` accepts a challenge without a nonce.
    ``verifier_cache=False`` derives zk-halo2 circuits and keys afresh instead of reusing the
    verifier's cache under ``cache_dir`` (:mod:`pot_zk.backends.ezkl.verifier_cache`);
    ``max_data_values``: the largest declared data set (in values) whose size the trainer chose
    that verify makes, ``max_records`` the most records of one JSON-lines file it reads
    (:mod:`pot_zk.verify.limits`)."""
    for name, limit in (("max_data_values", max_data_values), ("max_records", max_records)):
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"--{name.replace('_', '-')} must be a count >= 1, got {limit!r}", key=name)
    base_checks = functools.partial(  # review50: the base run given as --expect-base RUN is verified too, with none of this run's pins
        verify_run, cache_dir=cache_dir, allow_dev_srs=allow_dev_srs, accept_settings=accept_settings, verifier_cache=verifier_cache,
        max_data_values=max_data_values, max_records=max_records,
    )
    expected = Expectations(expect_root, expect_head, max_tolerance_ulps, min_proven, base_reference(expect_base, base_checks), expect_initial)
    report = RunReport(Path(run))
    options = {
        "srs_path": srs_path, "allow_dev_srs": allow_dev_srs, "challenge": challenge, "keys": keys, "allow_no_nonce": allow_no_nonce,
        "verifier_cache": verifier_cache, "max_data_values": max_data_values, "max_records": max_records,
    }
    try:
        _check_run(report, Path(cache_dir), expected, dict(accept_settings or {}), **options)
    except ConfigurationError as exc:
        if exc.key == ACCEPT_SETTING or isinstance(exc, MissingExtraError):  # the auditor's own option, or its install: nothing to report of the bundle
            raise
        _crashed(report, exc)
    except Exception as exc:  # noqa: BLE001 -- a crafted bundle must not crash the verifier: FAILED, with the report written
        _crashed(report, exc)
    failed = {finding.check for finding in report.findings}  # a review: a check passed early and failed later was listed as both
    report.passed = [check for check in dict.fromkeys(report.passed) if check not in failed]
    return report


def _note_in_use(report: RunReport, root: Path) -> None:
    """review32: verify of a run still training listed dozens of missing proofs and never said
    the run was in use. The lock record is the trainer's: a note, never a finding."""
    from pot_zk.runs.lock import HOLDER_FILE, LockHolder

    holder = LockHolder.parse(read_small_file(root / HOLDER_FILE))  # review34: a pipe or a link there is not read
    if holder is not None and not holder.gone():
        report.notes.append(
            f"the run is in use by {holder.describe()}: it may still be training or proving; what it lacks now may come, "
            "so verify it again when that has ended"
        )


def _crashed(report: RunReport, exc: BaseException) -> None:
    report.fail("verify", "verifier-error", f"checking the bundle raised {type(exc).__name__}: {exc}; the checks after it did not run")


def _check_run(
    report: RunReport, cache_dir: Path, expected: Expectations, accepted: dict[str, str], *, srs_path: Path | None, allow_dev_srs: bool,
    challenge: Challenge | None, keys: KeySet | None, allow_no_nonce: bool, verifier_cache: bool, max_data_values: int,
    max_records: int,
) -> None:
    linked = not_regular(Path(report.run))
    if linked:
        report.fail("statement", "unreadable-bundle", linked)
        return
    try:
        bundle = BundleReader.open(Path(report.run))
        manifest = bundle.manifest()
        spec = spec_from_dict(manifest["circuit"])
    except MissingExtraError:  # review23: the verifier's install lacks the backend, not a bad bundle
        raise
    except (PotZkError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # review51: "circuit": null raised AttributeError
        report.fail("statement", "unreadable-bundle", str(exc)[:300])
        return
    if manifest.get("format") != files.RUN_FORMAT:
        report.fail("statement", "unknown-format", f"the bundle's format is {manifest.get('format')!r}; this pot-zk reads {files.RUN_FORMAT!r}")
        return
    report.statement = spec.to_dict()
    _note_in_use(report, bundle.root)
    check_statement(report, manifest, spec, accepted)
    check_plan_form(report, manifest, spec)
    if not plan_readable(manifest):
        return  # plan-not-canonical names it; every later check reads it (review51: "training": [] raised)
    check_tolerance(report, spec, expected.max_tolerance_ulps)
    large = too_large(manifest, spec, max_data_values) or too_many_records(
        (bundle.path(name) for name in (files.AUDIT, files.COMMITMENTS, files.PROOFS, files.EVALUATIONS)), max_records,
    )
    if large is not None:
        report.fail(*large)
        return
    audit_events = _check_audit(bundle, report)
    try:
        commitments = bundle.commitments()
        proofs = bundle.proofs()
        dataset = bundle.dataset()
    except (OSError, ValueError) as exc:
        report.fail("steps", "unreadable-records", str(exc))
        return
    check_record_form(report, manifest, commitments, spec)
    by_step = check_steps(report, manifest, dataset, commitments, spec, audit_events, accepted)
    report.step_count = len(by_step) if sorted(by_step) == list(range(len(by_step))) else 0  # by_step holds integer steps only
    check_dataset_reference(report, manifest, dataset, spec, expected.expect_root)
    check_initial_reference(report, manifest, by_step, spec, expected.expect_initial)
    record_plan(report, manifest, commitments)
    check_head(report, manifest, commitments, expected.expect_head)
    _note_export_inventory(report, bundle)
    check_models(report, bundle, by_step, spec, load_model)
    check_base(report, manifest, by_step, spec)
    check_base_reference(report, manifest, spec, expected.expect_base)
    check_outcomes_recorded(report, proofs, audit_events)
    trust = TrustStore.in_cache(Path(cache_dir))
    trusted = False  # the key directory's provenance is its own word (--srs), unless your trust store knows its key set (--keys)
    if keys is not None:
        material = check_keys(report, manifest, proofs, keys, trust)
        if "key_path" in material:
            srs_path, trusted = material["key_path"], bool(report.keys.get("in_trust_store"))
    check_holdout(report, bundle, manifest, dataset, spec, audit_events, load_model, accepted)
    check_base_holdout(report, manifest, spec, expected.expect_base)
    options = VerifierOptions(Path(cache_dir), verifier_workdir(), srs_path, allow_dev_srs, verifier_cache, key_path_trusted=trusted)
    rates = check_schedule(report, manifest, spec, by_step)
    check_proofs(report, bundle, manifest, spec, by_step, proofs, audit_events, options, rates)
    if keys is None and srs_path is not None:
        _note_key_directory_word(report, srs_path)
    if keys is not None:
        keyed, verified = report.coverage.get(keys.proof_type, 0), report.proven  # a review: failed, parked and rejected steps were counted
        report.keys["said"] += f" ({keyed} of the {verified} verified steps are {keys.proof_type} proofs checked with them; the others are certificates)" if keyed < verified else ""
        report.keys["checked_with_them"] = keyed
    note_unproven_steps(report, by_step)
    note_free_state(report, spec)
    note_coarse_rate(report, spec, rates)
    if challenge is not None:
        check_challenge(report, manifest, commitments, proofs, challenge, trust, allow_no_nonce)
    check_min_proven(report, expected.min_proven)


def _note_export_inventory(report: RunReport, bundle: BundleReader) -> None:
    """An export's EXPORT.json names the commitment head; verify computes it from the records and
    notes an inventory that names another (review24: it was never read, whatever it said)."""
    path = bundle.path(files.EXPORT_INVENTORY)
    if not path.is_file():
        return
    try:
        named = json.loads(read_small_file(path) or "").get("commitment_head")  # review34: a link to a large file was read whole
    except (ValueError, AttributeError):
        named = None
    head = report.references.get("commitment_head")
    if named != head:
        report.notes.append(
            f"{files.EXPORT_INVENTORY} names commitment head {str(named)[:64]}, the records give {head}: the inventory is not evidence "
            "(the head above is computed from the records; pin the one you received with --expect-head)"
        )


def _note_key_directory_word(report: RunReport, srs_path: Path) -> None:
    """``--srs DIR`` (review24): the key's provenance is DIR's record of itself, which verify
    cannot check (``--keys`` checks keys against the auditor's trust store)."""
    for proof_type, record in report.verifier_keys.items():
        # a key directory's own provenance.json (zk-groth16); an SRS file has no record: its label ("configured") is verify's own
        if "directory" in record and record.get("provenance") not in (None, "dev"):
            record["provenance_checked"] = False
            report.notes.append(
                f"the {proof_type} key's provenance {record['provenance']!r} is what {srs_path} records about itself, not checked: "
                "whoever wrote that directory wrote it (pot-zk verify RUN --keys DIR checks keys you made against your trust store)"
            )


def _check_audit(bundle: BundleReader, report: RunReport) -> list[dict[str, Any]]:
    if not bundle.path(files.AUDIT).is_file():  # review49: verify raised FileNotFoundError
        report.fail("audit-chain", "missing", f"{files.AUDIT} is missing: the bundle has no audit trail")
        return []
    audit = verify_audit(bundle.path(files.AUDIT))
    if not audit.ok:
        report.fail("audit-chain", audit.problem or "broken", audit.summary())
        return []
    if not audit.closed:
        report.fail("audit-chain", "not-closed", "the audit trail does not end with run.end (run unfinished or truncated)")
    events = read_jsonl(bundle.path(files.AUDIT))
    ends = [e for e in events if e.get("event") == "run.end"]
    trained = files.training_ends(events)  # respond and prove-pending end their own sessions: not the training's status
    if ends and not trained:
        report.fail("audit-chain", "run-not-completed", "the audit trail has no run.end of the run's training (only of later commands)")
    elif trained and trained[-1].get("status") != "completed":
        report.fail("audit-chain", "run-not-completed", f"the run ended with status {trained[-1].get('status')!r}")
    if audit.ok and audit.closed:
        report.passed.append("audit-chain")
    _check_manifest_recorded(bundle, report, events)
    return events


def _check_manifest_recorded(bundle: BundleReader, report: RunReport, events: list[dict[str, Any]]) -> None:
    """The manifest is the statement; the run.start record fixed it when the run began. A
    manifest edited afterwards (mode, policy, dataset root, SRS, hyper-parameters) differs."""
    start = next((e for e in events if e.get("event") == "run.start" and "manifest" in e), None)
    recorded = None if start is None else start["manifest"]
    if recorded is None:  # e.g. the disk filled up before run.start; a rewrite of the chain could drop it anyway
        report.notes.append("the audit trail has no run.start record of the manifest: manifest.json is not cross-checked")
        return
    if start.get("at_resume"):
        report.notes.append("the run.start record was written when the run was resumed (a kill had cut it off): it fixes the manifest from then on")
    if recorded != bundle.manifest():
        report.fail("statement", "manifest-mismatch", "manifest.json differs from the manifest the run.start audit record fixed")
