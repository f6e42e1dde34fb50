"""The auditor's references in ``pot-zk verify``: what it recomputes itself or brings along,
instead of taking the trainer's word from the bundle.

* ``dataset-root``, ``initial-model``: recomputed, or pinned with ``--expect-root`` and
  ``--expect-initial`` (:mod:`pot_zk.verify.recomputed`);
* ``commitment-head``: ``--expect-head`` must equal the run's commitment head
  (``unexpected-head``; :func:`pot_zk.core.challenge.commitment_head`).
* ``base-model``: a run on a frozen base (LoRA) names its base by commitment only, so
  ``--expect-base`` (the last commitment of the base run the auditor verified, or that run
  itself: :class:`BaseRun`) must equal the declared one (``unexpected-base``); the run's own
  checks tie every step and both model files to the declared base, not the declared base to any
  base run. A commitment pins the base's values and their count; the base run pins its layer
  shapes too (the architecture it trained must be the statement's base).
* ``statement``: the declared tolerance may not exceed ``--max-tolerance-ulps``, whose default
  is the statement's own default, never the manifest's (``tolerance-above-limit``).
* ``proofs``: at least ``--min-proven`` steps must carry a proof verified here
  (``too-few-proven``); by default as many as the declared policy selects, so the auditor
  opts out (``--min-proven N``), not in.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from pot_zk.core.challenge import commitment_head
from pot_zk.core.scratch import remove_scratch, scratch_directory
from pot_zk.exceptions import ConfigurationError, PotZkError
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.verify.recomputed import COMMITMENT, is_model_file, looks_like_commitment, same_commitment
from pot_zk.verify.report import RunReport

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
COMMITMENT_KEYS = ("expect_base", "expect_initial")


@dataclass(frozen=True)
class BaseRun:
    """``--expect-base RUN``: the base run the auditor verified (its directory or export), read
    for what a LoRA run's frozen base must be: its last commitment (W_t+1 of its last step) and
    the architecture it trained, and verified here as a run of its own (review50: a base bundle
    with one edited record, or an edited held-out fraction in its manifest, passed
    ``base-reference`` and ``trained-by-base``: every value read from it was the trainer's)."""

    path: Path
    commitment: str | None
    """None: the base run failed its own checks (:attr:`report`), and nothing more of it was read."""
    architecture: Mapping[str, Any]
    circuit: Mapping[str, Any]
    """Its statement (manifest ``circuit``): the grid its weights are committed on."""
    manifest: Mapping[str, Any] | None = None
    """Its whole manifest: the data set it declares it trained on (``check_base_holdout``)."""
    report: RunReport | None = None
    """What verify found of the base run on its own (None: read without ``verify``, unchecked)."""

    def scheme(self) -> Any:
        """The commitment scheme its last commitment is made with (its W_t+1's)."""
        from pot_zk.backends.registry import commitments_of, spec_from_dict

        return commitments_of(spec_from_dict(dict(self.circuit))).tensor("w_after")

    @classmethod
    def read(cls, path: str | Path, verify: "Callable[[Path], RunReport] | None" = None) -> "BaseRun":
        """ConfigurationError when ``path`` is not a run (or an export of one) with steps.
        ``verify`` checks the run first (unpacked, for an export) and its report is kept; of a
        run that fails it nothing more is read (review51: its commitments.jsonl, a named pipe,
        hung verify; ten million lines were parsed past ``--max-records``; a manifest nested
        100,000 deep raised)."""
        from pot_zk.backends.registry import spec_from_dict
        from pot_zk.bundle.layout import BundleReader, not_regular
        from pot_zk.runs.base_run import base_commitment
        from pot_zk.runs.export import is_export_archive, unpack_export

        path = Path(path)
        if not path.exists():
            raise ConfigurationError(f"--expect-base: {path}: no such file or directory (give the base run, its export, or its last commitment)", key="expect_base")
        scratch = scratch_directory("pot-zk-base-") if is_export_archive(path) else None
        try:
            run = unpack_export(path, scratch) if scratch is not None else path
            if not (run / "manifest.json").is_file():
                raise ConfigurationError(f"--expect-base: {path} is not a pot-zk run directory (no manifest.json)", key="expect_base")
            checked = None if verify is None else verify(run)
            if checked is not None and checked.verdict == "FAILED":
                return cls(path, None, {}, {}, None, checked)
            linked = not_regular(run)
            if linked:
                raise ConfigurationError(f"--expect-base: cannot read the base run {path}: {linked}", key="expect_base")
            try:
                manifest = BundleReader(run).manifest()
                circuit = manifest["circuit"]
                spec_from_dict(circuit)
                commitment = base_commitment(run).lower()
            except ConfigurationError:
                raise
            except (PotZkError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigurationError(f"--expect-base: cannot read the base run {path}: its manifest or last commitment record is malformed ({exc!r})", key="expect_base") from exc
            return cls(path, commitment, circuit["architecture"], circuit, manifest, checked)
        finally:
            if scratch is not None:
                remove_scratch(scratch)


def base_reference(text: str | Path | None, verify: "Callable[[Path], RunReport] | None" = None) -> "str | BaseRun | None":
    """What ``--expect-base`` names: a commitment (64 hex digits, 0x optional: always, even where
    a file or directory of that name exists, which the trainer may have planted; review29), else
    a base run (a path), checked with ``verify``."""
    if text is None or isinstance(text, BaseRun):
        return text
    if isinstance(text, str) and looks_like_commitment(text):
        return text.strip()
    return BaseRun.read(text, verify)


@dataclass(frozen=True)
class Expectations:
    """What the auditor brings to ``pot-zk verify`` (never read from the bundle)."""

    expect_root: str | None = None
    expect_head: str | None = None
    max_tolerance_ulps: int | None = None
    """None: the default tolerance of the declared statement's kind."""
    min_proven: int | None = None
    """None: as many steps as the declared policy selects."""
    expect_base: "str | BaseRun | None" = None
    """A commitment, or the base run it is read from (:func:`base_reference`)."""
    expect_initial: str | None = None
    """W_0's commitment (step 0's ``w_before``), or the path of the agreed initial model's file."""

    def __post_init__(self) -> None:
        for key in ("expect_root", "expect_head", *COMMITMENT_KEYS):
            value = getattr(self, key)
            if isinstance(value, BaseRun):
                continue
            if key == "expect_initial" and is_model_file(value):
                object.__setattr__(self, key, os.fspath(value))
                continue  # the agreed initial model's file: committed under the run's statement (check_initial_reference)
            if isinstance(value, str):
                value = value.strip()  # review30: "HEX " is the commitment HEX, never a file of that name
            commitment = key in COMMITMENT_KEYS
            if value is not None and not (COMMITMENT if commitment else _HEX64).fullmatch(value.lower()):
                files = " or a model file" if key == "expect_initial" else ""
                raise ConfigurationError(f"--{key.replace('_', '-')} must be 64 hex digits{' (0x optional)' if commitment else ''}{files}, got {value!r}", key=key)
            if value is not None:
                object.__setattr__(self, key, value.lower())
        if self.max_tolerance_ulps is not None and self.max_tolerance_ulps < 0:
            raise ConfigurationError("--max-tolerance-ulps must be >= 0", key="max_tolerance_ulps")
        if self.min_proven is not None and self.min_proven < 0:
            raise ConfigurationError("--min-proven must be >= 0", key="min_proven")


def default_tolerance(spec: Any) -> int | None:
    """The tolerance a statement of ``spec``'s kind has unless its maker chose another."""
    for field in dataclasses.fields(type(spec)):
        if field.name == "tolerance_ulps" and field.default is not dataclasses.MISSING:
            return int(field.default)
    return None


def check_tolerance(report, spec: Any, limit: int | None) -> None:
    declared = getattr(spec, "tolerance_ulps", None)
    limit = default_tolerance(spec) if limit is None else limit
    if declared is None or limit is None:
        return
    report.references["max_tolerance_ulps"] = limit
    if declared > limit:
        report.fail(
            "statement",
            "tolerance-above-limit",
            f"the manifest declares a tolerance of {declared} ulps, above the {limit} you accept "
            f"(--max-tolerance-ulps; default: the {spec.kind} statement's default)",
        )
    else:
        report.passed.append("tolerance")


def declared_dataset(dataset: Mapping[str, Any]) -> str:
    """``digits (part all, 179 batches; 359 of 1797 samples held out)``."""
    batches = dataset.get("num_batches")  # review23: a streamed loop's data set declares none ("None batches")
    said = [f"part {dataset.get('part', 'all')}", *([f"{batches} batches"] if batches is not None else [])]
    if "num_samples" in dataset:
        said.append(f"{dataset['num_samples']} samples made from seed {dataset.get('seed')}")
    holdout = dataset.get("holdout")
    if isinstance(holdout, Mapping) and holdout:  # anything else is plan-not-canonical
        said.append(f"{holdout.get('samples')} of {holdout.get('of')} samples held out, chosen with seed {holdout.get('seed')} and fraction {holdout.get('fraction')}")
    return f"{dataset.get('name')} ({'; '.join(said)})"


def record_plan(report, manifest: Mapping[str, Any], commitments: list[Mapping[str, Any]]) -> None:
    """What the run declares it did, printed for the auditor to compare with what was agreed
    (the commitment head covers all of it: a rewrite changes the head)."""
    report.references.setdefault("dataset", declared_dataset(manifest["dataset"]))  # undeclared data stays so (samples.py)
    training = {k: v for k, v in manifest["training"].items() if k != "optimizer"}
    policy = " ".join([str(manifest["policy"].get("name")), *(f"{k}={v}" for k, v in manifest["policy"].items() if k != "name")])
    schedule = ", ".join(f"{k}={v}" for k, v in training.items())
    proving = "" if manifest.get("proving_enabled", True) else " (proving disabled: the policy selected no step)"
    report.references["plan"] = f"{len(commitments)} steps ({schedule}); policy {policy}{proving}; mode {manifest.get('mode')}"


def check_head(report, manifest: Mapping[str, Any], commitments: list[Mapping[str, Any]], expect_head: str | None) -> None:
    head = commitment_head(manifest, commitments)
    report.references["commitment_head"] = head
    if expect_head is None:
        report.notes.append(
            "commitment head: not anchored; pass --expect-head with the head you received when the run ended "
            "(without it a consistent rewrite of the steps, e.g. a run cut short, cannot be told)"
        )
    elif head != expect_head:
        report.fail("commitment-head", "unexpected-head", f"the run's commitment head is {head}, you expect {expect_head}{_earlier_head(manifest, commitments, expect_head)}")
    else:
        report.passed.append("commitment-head")


def _earlier_head(manifest: Mapping[str, Any], commitments: list[Mapping[str, Any]], expect_head: str) -> str:
    """Why an expected head differs, when it is this streamed run's head as pot-zk computed it
    before the head hashed the data set's sample count and leaf (review39: such runs failed
    with nothing to tell a changed definition from a rewritten run)."""
    dataset = manifest.get("dataset") or {}
    if "size" not in dataset or commitment_head(manifest, commitments, streamed_fields=False) != expect_head:
        return ""
    return (
        f"; the head you expect is this run's as pot-zk computed it before 2026-12-07, without the declared sample count "
        f"(size {dataset.get('size')!r}) that verify reads: if that is the count you agreed on, pin the head above"
    )


def check_base_reference(report, manifest: Mapping[str, Any], spec: Any, expect_base: "str | BaseRun | None") -> None:
    """The declared frozen base is the one the auditor expects (``--expect-base``: a commitment,
    or a base run, whose trained architecture must be the statement's base too); without it the
    base is the trainer's word, most of the model: ``base-not-pinned``, as an initial model no
    seed recomputes is ``initial-not-pinned``."""
    expected = (expect_base.commitment or expect_base.path) if isinstance(expect_base, BaseRun) else expect_base
    if "base" not in STEP_KINDS.get(spec.kind).constant_inputs:
        if expect_base is not None:
            report.fail("base-model", "unexpected-base", f"you expect base {expected}; a {spec.kind} run has no frozen base")
        return
    base = manifest.get("base") or {}
    declared = base.get("commitment")
    report.references["base_commitment"] = declared
    if expect_base is None:
        report.fail(
            "base-model", "base-not-pinned",
            f"the frozen base is the trainer's word (commitment {declared}, declared from run {base.get('run')!r}): pin it with "
            "--expect-base and the base run you verified (or its last commitment, which pins the values, not the layer shapes)",
        )
        return
    if isinstance(expect_base, BaseRun) and expect_base.commitment is None:  # it failed its own checks: nothing of it is a reference
        _check_base_run_verified(report, expect_base)
        return
    failed = False
    if not same_commitment(declared, expected):
        report.fail("base-model", "unexpected-base", f"the run's frozen base commits to {declared}, you expect {expected}")
        failed = True
    if isinstance(expect_base, BaseRun):
        from pot_zk.backends.registry import commitments_of

        failed = _check_base_run_verified(report, expect_base) or failed

        statement_base = STEP_KINDS.get(spec.kind).base_architecture(spec.architecture)
        if statement_base is None or dict(statement_base.to_dict()) != dict(expect_base.architecture):
            report.fail(
                "base-model", "unexpected-base",
                f"the run's frozen base is {None if statement_base is None else statement_base.to_dict()}, the base run you expect "
                f"({expect_base.path}) trained {dict(expect_base.architecture)}",
            )
            failed = True
        ours, theirs = _one_grid(commitments_of(spec).tensor("base")), _one_grid(expect_base.scheme())
        if ours != theirs:  # the same integers on another grid are other weights (say, all halved at scale + 1)
            report.fail(
                "base-model", "unexpected-base",
                f"the run reads its frozen base's committed integers as {ours}, the base run you expect ({expect_base.path}) "
                f"committed its weights as {theirs}: the same commitment would be other weights",
            )
            failed = True
    elif not failed:
        report.notes.append(
            "base model: --expect-base HEX pins the base's committed integers and their count, not its layer shapes nor the grid "
            "they were committed on: pass the base run itself to pin those too"
        )
    if not failed:
        report.passed.append("base-reference")


def _check_base_run_verified(report, base: BaseRun) -> bool:
    """The base run given as ``--expect-base RUN`` passes verify's checks on its own (True: it
    does not, named ``base-not-verified``); its verdict and commitment head are stated, for the
    auditor to compare with the base run it verified (a base bundle of another run that verifies
    is told from the agreed one by its head alone)."""
    verdict = base.report
    if verdict is None:
        return False
    head = verdict.references.get("commitment_head")
    report.references["base_run"] = f"{base.path}: {verdict.verdict_line} when verified here, commitment head {head}"
    if verdict.verdict == "FAILED":
        named = sorted({f"{f.check} ({f.reason})" for f in verdict.findings})
        report.fail(
            "base-model", "base-not-verified",
            f"the base run you expect ({base.path}) fails its own checks here: {', '.join(named[:6])}{' ...' if len(named) > 6 else ''}: "
            "what verify reads of it (its last commitment, architecture and held-out set) is not the record of a run; "
            "verify it on its own (with the options it needs) and pin its last commitment with --expect-base HEX",
        )
        return True
    report.notes.append(
        f"base run {base.path}: {verdict.verdict} when verified here (commitment head {head}): compare the head with the one of the base "
        "run you agreed on" + (
            "; no step of it carries a verified proof: its weights are its trainer's word, bound by commitments only"
            if verdict.verdict == "UNPROVEN" else ""
        )
    )
    return False


def _one_grid(scheme: Any) -> Any:
    """The scheme of one tensor, without the grids other tensors of its statement have."""
    if dataclasses.is_dataclass(scheme) and any(f.name == "grids" for f in dataclasses.fields(scheme)):
        return dataclasses.replace(scheme, grids=())
    return scheme


def check_min_proven(report: RunReport, min_proven: int | None) -> None:
    """At least ``min_proven`` proofs verified here; None: every step the policy selects proven
    (proofs of other steps do not stand in for them: the trainer knows the policy in advance)."""
    wanted = len(report.selected_steps) if min_proven is None else min_proven
    report.references["min_proven"] = f"{wanted} ({'the steps the declared policy selects' if min_proven is None else '--min-proven'})"
    if not report.selected_steps and min_proven is None:  # a review: a policy selecting nothing, and a proof the trainer chose, read as VERIFIED
        report.notes.append(
            "the declared policy selects no step: nothing had to be proven, and any proof here is of a step the trainer "
            "(or a challenge) chose; require proofs with --min-proven N or --challenge"
        )
    missing = report.selected_without_proof
    if min_proven is None and missing and report.proven >= wanted:
        report.fail(
            "proofs", "too-few-proven",
            f"{len(missing)} of the {len(report.selected_steps)} steps the declared policy selects carry no verified proof "
            f"({missing[:10]}{' ...' if len(missing) > 10 else ''}; proofs of other steps do not stand in for them); "
            "accept fewer with --min-proven N",
        )
    elif report.proven < wanted:
        report.fail(
            "proofs", "too-few-proven",
            f"{report.proven} steps carry a verified proof (verified here); you require at least {wanted}"
            + (f" (selected steps without one: {missing[:10]}{' ...' if len(missing) > 10 else ''})" if missing else "")
            + ("" if min_proven is not None else "; accept fewer with --min-proven N"),
        )
