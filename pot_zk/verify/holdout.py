"""``pot-zk verify``'s checks of the held-out set and of the scores recorded on it.

* ``holdout``: the manifest and dataset.json declare the same held-out set (its commitment is
  the last leaf of the dataset root, which ``dataset-root`` checks); its sample positions are
  the seeded choice the verifier recomputes from (``of``, ``fraction``, ``seed``); for a
  built-in data set (digits, synthetic) the verifier reloads the data itself: the declared
  part has ``of`` samples and the samples at those positions hash to the declared commitment.
* ``evaluation``: the scores in evaluations.jsonl are the ones the audit trail recorded; each
  counts the declared held-out set's size (``sample-count-mismatch``: a record's own ``samples``
  is the denominator of its accuracy) and follows a step the run has (``unknown-step``); the
  initial model and, for a completed run, the final model are among them, each step's score
  once (``duplicate-score``); for a built-in data
  set the verifier scores both model files on the held-out samples itself and gets the
  recorded number correct exactly and the recorded loss within 1e-9 (relative). Scores of
  other steps (each epoch's end) have no model file to score: a note says they are the trainer's.

A run that declares no held-out set (a user loop, or ``data.holdout=0``) gets a note, and fails
``undeclared-scores`` if its evaluations.jsonl holds any score.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Callable, Mapping

import torch

from pot_zk.bundle import layout as files
from pot_zk.data.catalog import DataSettings
from pot_zk.data.datasets import BUILT_IN, PARTS, HeldOut, holdout_indices, load_dataset, select_part
from pot_zk.bundle.evaluation import Evaluation, classification, evaluate
from pot_zk.backends.registry import commitments_of
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.verify.model_files import loaded, short

DECLARED = ("fraction", "seed", "of", "samples", "commitment")
LOSS_TOLERANCE = 1e-9


def check_holdout(
    report, bundle, manifest: dict, dataset: dict, spec, audit_events: list[dict], load_model: Callable, accepted: Mapping[str, str] | None = None,
) -> None:
    declared = manifest.get("dataset", {}).get("holdout")
    recorded = dataset.get("holdout")
    if declared is None and recorded is None:
        report.notes.append("no held-out set declared: the run's models were not scored (no accuracy)")
        _check_no_scores(report, bundle)
        return
    failures = report.failures
    _check_split_chosen(report, declared, accepted or {})
    held_out = _check_declaration(report, manifest, declared, recorded, spec)
    if report.failures == failures:
        report.passed.append("holdout")
    failures = report.failures
    _check_scores(report, bundle, manifest, spec, held_out, audit_events, load_model)
    if report.failures == failures and held_out is not None:  # a review: unscored numbers were listed as passed
        report.passed.append("evaluation")


def check_base_holdout(report, manifest: dict, spec, expect_base: Any) -> None:
    """A run on a frozen base (LoRA): no held-out sample is one the base run trained on
    (review33: a base trained on ``data.part=all`` and adapted on ``adapt`` passed with held-out
    samples the base had trained on). Checked for ``--expect-base RUN`` whose run is a seeded
    ``pot-zk train`` run on the same built-in data set: its training split is recomputed from
    its manifest (the base run itself is verified on its own). Otherwise a note says what is
    not checked."""
    if "base" not in STEP_KINDS.get(spec.kind).constant_inputs or expect_base is None:
        return  # no base, or an unpinned one (base-not-pinned)
    ours = manifest.get("dataset") or {}
    declared = ours.get("holdout")
    if not isinstance(declared, dict):
        return
    theirs = (getattr(expect_base, "manifest", None) or {}).get("dataset")
    if not isinstance(theirs, dict):
        report.notes.append(
            "held-out set: whether the base model was trained on these samples is not checked (--expect-base names a "
            "commitment): pass the base run itself to check it"
        )
        return
    if ours.get("name") not in BUILT_IN:
        report.notes.append(
            f"held-out set: whether the base model was trained on these samples is not checked ({ours.get('name')!r} is not a "
            "data set verify can recompute)"
        )
        return
    if theirs.get("name") != ours.get("name") or (
        ours.get("name") == "synthetic" and any(theirs.get(key) != ours.get(key) for key in ("num_samples", "seed"))
    ):
        return  # other samples than the base run's: nothing of this set can be among them
    training = (expect_base.manifest or {}).get("training") or {}
    base_holdout = theirs.get("holdout") if isinstance(theirs.get("holdout"), Mapping) else {}
    try:
        mlp = STEP_KINDS.get(spec.kind).mlp(spec.architecture)
        size = len(load_dataset(ours["name"], mlp.dims[0], mlp.dims[-1], int(ours.get("num_samples", 0)), int(ours.get("seed", 0)), mlp.loss)[0])
        held = {_part(ours, size).start + i for i in holdout_indices(int(declared["of"]), float(declared["fraction"]), int(declared["seed"]))}
        if training.get("batch_order", "seeded") != "seeded":  # review43: absent is seeded, as for the run itself (run_checks.batch_order)
            report.notes.append(
                f"held-out set: the base run {expect_base.path} chose its own batches (a training loop's): whether it trained on "
                "these samples is not checked"
            )
            return
        part = _part(theirs, size)
        of = int(base_holdout.get("of", part.stop - part.start))
        if not 0 <= of <= size:  # review49: the base run's own word sized a permutation (10**9 positions: gigabytes)
            raise ValueError(f"the base run's held-out set is chosen among {of:,} positions; the data set has {size:,} samples")
        kept = {part.start + i for i in holdout_indices(of, float(base_holdout.get("fraction", 0.0)), int(base_holdout.get("seed", 0)))}
    except (ConfigurationError, KeyError, TypeError, ValueError) as exc:
        report.fail("holdout", "trained-by-base", f"the base run's data set or this run's held-out set cannot be recomputed: {getattr(exc, 'message', exc)}")
        return
    trained = sorted(i for i in held if part.start <= i < part.stop and i not in kept)  # not a set of the base's whole split
    if trained:
        report.fail(
            "holdout", "trained-by-base",
            f"{len(trained)} of the {len(held)} held-out samples are in the training split of the base run {expect_base.path} "
            f"(data.part={theirs.get('part', 'all')}): the held-out scores are not on samples the model never saw (a base on "
            "data.part=base, adapted on data.part=adapt, shares none)",
        )


SPLIT_SETTINGS = {"holdout_seed": ("seed", DataSettings.seed), "holdout_fraction": ("fraction", DataSettings.holdout)}
"""The held-out choice's settings, by their ``--accept-setting`` name: its key in the declaration, and its default."""


def _check_split_chosen(report, declared: Any, accepted: Mapping[str, str]) -> None:
    """``setting-not-default``: the held-out set is chosen with another seed or fraction than the
    defaults, and the auditor did not accept it (review50: the trainer drew held-out splits with
    ten seeds and published the one its model scored best on, 15.6 % against 6.4 %; verify
    recomputed the split from the declared seed, so it showed only that the trainer was
    consistent)."""
    if not isinstance(declared, dict):
        return
    for name, (key, default) in SPLIT_SETTINGS.items():
        value = declared.get(key)
        if value == default or (name in accepted and _same_number(value, accepted[name], exact=name == "holdout_seed")):
            continue
        report.fail(
            "holdout", "setting-not-default",
            f"the held-out set is chosen with {key} {value!r}; the default is {default!r}: the trainer chose the split its models are "
            f"scored on (a split can be drawn again and again until a model scores well on it); accept it with --accept-setting {name}={value}",
        )


def _same_number(value: Any, text: str, *, exact: bool) -> bool:
    """``value`` is the number ``text`` names; ``exact``: as integers (review51: as floats, an
    accepted seed 2**53 + 1 passed a run whose split was drawn with seed 2**53)."""
    try:
        if exact:
            return type(value) is int and int(text) == value
        return isinstance(value, (int, float)) and not isinstance(value, bool) and float(text) == value
    except ValueError:
        return False


def _part(dataset: dict, size: int) -> slice:
    return PARTS.get(str(dataset.get("part", "all")))(size)


def _check_declaration(report, manifest: dict, declared: Any, recorded: Any, spec) -> HeldOut | None:
    """The held-out samples the verifier recomputed (None: not a built-in set, or a failure)."""
    if not isinstance(declared, dict) or not isinstance(recorded, dict) or any(declared.get(k) != recorded.get(k) for k in DECLARED):
        report.fail("holdout", "holdout-mismatch", "the manifest and dataset.json declare different held-out sets")
        return None
    try:
        expected = holdout_indices(int(declared["of"]), float(declared["fraction"]), int(declared["seed"]))
    except (KeyError, TypeError, ValueError, OverflowError, ConfigurationError) as exc:  # review51: a fraction of 10**29 in both files
        report.fail("holdout", "holdout-mismatch", f"malformed held-out declaration: {getattr(exc, 'message', exc)}")
        return None
    if recorded.get("indices") != expected or declared.get("samples") != len(expected):
        report.fail("holdout", "holdout-indices", "the held-out positions are not the seeded choice of the declared fraction and seed")
        return None
    data = manifest.get("dataset", {})
    if data.get("name") not in BUILT_IN:
        report.notes.append(
            f"data set {data.get('name')!r} is not built in: its held-out samples were not recomputed, and the held-out scores "
            "(evaluations.jsonl) are the trainer's: no model was scored here"
        )
        return None
    mlp = STEP_KINDS.get(spec.kind).mlp(spec.architecture)
    try:
        inputs, targets = load_dataset(data["name"], mlp.dims[0], mlp.dims[-1], int(data.get("num_samples", 0)), int(data.get("seed", 0)), mlp.loss)
        inputs, targets = select_part(inputs, targets, data.get("part", "all"))
    except (ConfigurationError, ValueError, TypeError, OverflowError, RuntimeError) as exc:  # review49: "part": "nope" raised here
        report.fail("holdout", "holdout-mismatch", f"the declared data set cannot be loaded: {getattr(exc, 'message', exc)}")
        return None
    if len(inputs) != declared["of"]:
        report.fail("holdout", "dataset-size", f"the declared data set has {len(inputs)} samples, the run says {declared['of']}")
        return None
    index = torch.tensor(expected)
    held_out = HeldOut(inputs[index], targets[index], tuple(expected), float(declared["fraction"]), int(declared["seed"]), len(inputs))
    values = torch.cat([held_out.inputs.reshape(-1), held_out.targets.reshape(-1)]).double()
    try:
        found = commitments_of(spec).commit(values, "held-out samples")
    except WitnessBuilderError:
        found = None
    if found != declared["commitment"]:
        report.fail("holdout", "holdout-commitment", "the declared held-out commitment is not that of the data set's held-out samples")
        return None
    return held_out


def _check_no_scores(report, bundle) -> None:
    """A run without a held-out set has no scores: any in evaluations.jsonl are unchecked numbers
    a report would show (a review: plotted beside VERIFIED)."""
    try:
        scores = bundle.evaluations()
    except (OSError, ValueError) as exc:
        report.fail("evaluation", "unreadable-records", f"{files.EVALUATIONS}: {exc}")
        return
    if scores:
        report.fail("evaluation", "undeclared-scores", f"{files.EVALUATIONS} holds {len(scores)} held-out score(s), but the run declares no held-out set")


def _check_scores(report, bundle, manifest: dict, spec, held_out: HeldOut | None, audit_events: list[dict], load_model: Callable) -> None:
    try:
        raw = bundle.evaluations()
        records = {int(r["after_step"]): Evaluation.from_record(r) for r in raw}
        stated = [r for r in raw if r.get("accuracy") != Evaluation.from_record(r).accuracy]  # what a report reads must be what was checked
    except (OSError, ValueError, KeyError, TypeError, OverflowError) as exc:  # review49: "after_step": 1e999; the sweep: "correct": 10**400
        report.fail("evaluation", "unreadable-records", f"{files.EVALUATIONS}: {exc}")
        return
    for r in stated:
        report.fail(
            "evaluation", "accuracy-mismatch",
            f"the score after step {r.get('after_step')} states accuracy {r.get('accuracy')!r}, its counts give "
            f"{Evaluation.from_record(r).accuracy!r} ({r.get('correct')} of {r.get('samples')})",
        )
    holdout = manifest.get("dataset", {}).get("holdout")
    declared = holdout.get("samples") if isinstance(holdout, Mapping) else None  # the sweep rerun in session 22: a holdout "x" raised
    for r in raw:  # the denominator is the declared set's size, which the head covers, not the record's word
        if r.get("samples") != declared:
            report.fail(
                "evaluation", "sample-count-mismatch",
                f"the score after step {r.get('after_step')} counts {r.get('samples')!r} held-out samples; the run declares {declared!r}",
            )
    repeated = sorted(step for step, count in Counter(int(r["after_step"]) for r in raw).items() if count > 1)
    if repeated:  # a review: a second score of a step, one verify never rescored, was the one a report showed
        report.fail("evaluation", "duplicate-score", f"more than one held-out score after steps {repeated[:10]}")
    steps = len(bundle.commitments())
    outside = sorted(step for step in records if not 0 <= step <= steps)
    if outside:
        report.fail("evaluation", "unknown-step", f"held-out scores after steps {outside[:10]}: the run has steps 0..{steps}")
    if audit_events:
        fields = Evaluation.__dataclass_fields__
        logged = sorted(json.dumps({k: e.get(k) for k in fields}, sort_keys=True) for e in audit_events if e.get("event") == "evaluation")
        written = sorted(json.dumps(vars(Evaluation.from_record(r)), sort_keys=True) for r in raw)
        if logged != written:  # lists, not one record per step: a repeated step is compared too
            report.fail("evaluation", "audit-mismatch", f"{files.EVALUATIONS} differs from the audit trail's evaluation records")
    wanted = {"initial": (0, files.INITIAL_MODEL)}
    if bundle.path(files.FINAL_MODEL).is_file():
        wanted["final"] = (steps, files.FINAL_MODEL)
    for which, (after_step, name) in wanted.items():
        record = records.get(after_step)
        if record is None:
            report.fail("evaluation", "missing-evaluation", f"no held-out score of the {which} model (after step {after_step})")
        elif held_out is not None:
            _rescore(report, which, record, held_out, manifest, spec, load_model, bundle.path(name))
    unchecked = sorted(set(records) - {after_step for after_step, _ in wanted.values()} - set(outside))
    if unchecked:
        report.notes.append(
            f"held-out scores after steps {unchecked[:10]}{' ...' if len(unchecked) > 10 else ''}: the trainer's "
            "(no model file of those steps to score); only the initial and final models are rescored"
        )


def _rescore(report, which: str, record: Evaluation, held_out: HeldOut, manifest: dict, spec, load_model: Callable, path) -> None:
    kind = STEP_KINDS.get(spec.kind)
    state = loaded(path, spec, load_model)
    try:
        if isinstance(state, str):
            raise ValueError(state)
        model = kind.build_model(spec.architecture, None)
        model.load_state_dict(state)
    except Exception as exc:  # a missing, truncated or foreign file: the model checks name it too
        report.fail("evaluation", "missing-model", f"cannot score the {which} model: {short(exc)}")
        return
    loss = kind.mlp(spec.architecture).loss
    found = evaluate(model, held_out, loss, classification(manifest["dataset"]["name"], loss), record.after_step)
    if found.correct != record.correct or found.samples != record.samples or not _same_loss(found.loss, record.loss):
        report.fail(
            "evaluation", "score-mismatch",
            f"the {which} model scores {found.correct} of {found.samples} correct, loss {found.loss:.9g} on the held-out samples; "
            f"the run recorded {record.correct} of {record.samples}, {record.loss:.9g}",
        )


def _same_loss(found: float, recorded: float) -> bool:
    """The recorded loss is the rescored one within LOSS_TOLERANCE (relative above 1); a NaN
    equals only a NaN (review43: a recorded NaN passed the ``>`` comparison)."""
    if math.isnan(found) or math.isnan(recorded):
        return math.isnan(found) and math.isnan(recorded)
    return found == recorded or abs(found - recorded) <= LOSS_TOLERANCE * max(1.0, abs(found))
