"""The record-level checks of ``pot-zk verify``: dataset root, step sequence and order,
commitment chain, policy, agreement with the audit trail, model files."""

from __future__ import annotations

import functools
import json
from collections import Counter, defaultdict
from typing import Callable, Mapping

import torch

from pot_zk.bundle import layout as files
from pot_zk.backends.registry import backend_of, commitments_of
from pot_zk.bundle.dataset import declared_root, holdout_commitment
from pot_zk.exceptions import PotZkError, WitnessBuilderError
from pot_zk.kinds.encoding import OPTIONAL_FIELDS
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.backends.base import Statement
from pot_zk.proving.policy import create_policy
from pot_zk.data.datasets import epoch_order
from pot_zk.verify.model_files import loaded, short
from pot_zk.verify.samples import check_streamed_batches, streamed_batches

COMMITTED = ("w_before", "batch", "w_after")
BATCH_ORDERS = ("seeded", "recorded")


def check_steps(
    report, manifest: dict, dataset: dict, commitments: list[dict], spec: Statement, audit_events: list[dict], accepted: Mapping[str, str]
) -> dict[int, dict]:
    leaves = list(dataset.get("leaves", [])) if isinstance(dataset.get("leaves", []), list) else []  # the sweep rerun in session 22: "leaves": null
    streamed = streamed_batches(manifest)
    counted = len(leaves) == manifest["dataset"].get("num_batches") and all(isinstance(leaf, str) for leaf in leaves)  # review51: counted before hashed
    root = declared_root(leaves, holdout_commitment(dataset)) if leaves and counted else None
    root_ok = root is not None and root == dataset.get("root") == manifest["dataset"].get("root")
    if streamed:
        pass  # no batch leaves: check_streamed_batches checks the sample root and each step's samples
    elif not root_ok:  # its leaves counted too
        report.fail("dataset-root", "root-mismatch", "the batch commitments do not hash to the declared dataset root")
    else:
        report.passed.append("dataset-root")
    failures_before = report.failures
    by_step: dict[int, dict] = {}
    others = 0  # records whose step is no integer (record-not-canonical): no place in the numbering (review51: a list raised)
    for record in commitments:
        step = record.get("step")
        if type(step) is not int:
            others += 1
            continue
        if step in by_step:
            report.fail("steps", "duplicate-step", "two commitment records for one step", step)
        by_step[step] = record
    seeded = _check_batch_order(report, manifest, accepted)
    expected_count = _expected_steps(manifest, len(leaves)) if seeded else None
    if seeded and expected_count is None:
        report.fail("steps", "step-count", "the declared plan's number of steps cannot be computed (training.epochs or max_steps is no integer)")
    steps = sorted(by_step)
    if steps != list(range(len(steps))) or others:
        present = set(steps)  # the first ten numbers missing are below len(steps) + 10, whatever the largest (review47: range(max) took minutes and gigabytes)
        missing = [n for n in range(min(len(steps) + 10, max(steps, default=-1) + 1)) if n not in present][:10]
        report.fail("steps", "missing-step", f"steps are not numbered 0..n-1 (missing: {missing})")
    elif expected_count is not None and len(steps) != expected_count:
        report.fail("steps", "step-count", f"the declared plan has {expected_count} steps, the bundle {len(steps)}")
    orders = functools.lru_cache(maxsize=2)(lambda epoch: _seeded_order(len(leaves), epoch, manifest["training"].get("seed")))  # review49: once per epoch
    unordered: set[int] = set()
    for step in steps:
        record = by_step[step]
        epoch, position = divmod(step, max(len(leaves), 1))
        batch_index = record.get("batch_index")
        if streamed:
            pass
        # a step numbered outside the records (missing-step) has no place in the seeded order: its epoch overflowed the seed (review47, review48)
        elif seeded and leaves and 0 <= step < len(by_step) and orders(epoch) is None:
            if epoch not in unordered:  # one finding, not one per step
                unordered.add(epoch)
                report.fail("steps", "batch-order", f"the declared training seed {str(manifest['training'].get('seed'))[:40]} gives no seeded order of epoch {epoch}")
        elif seeded and leaves and 0 <= step < len(by_step) and batch_index != orders(epoch)[position]:
            report.fail("steps", "batch-order", "the step used another batch than the declared seeded order", step)
        elif not (isinstance(batch_index, int) and 0 <= batch_index < len(leaves)) or record.get("batch") != leaves[batch_index]:
            report.fail("steps", "batch-not-in-dataset", "the step's batch commitment is not the declared dataset leaf", step)
        if record.get("scale") != spec.scale:
            report.fail("steps", "scale-mismatch", "commitment scale differs from the statement's", step)
    if streamed:
        check_streamed_batches(report, manifest, dataset, by_step, spec, accepted)
    _check_audit_agreement(report, by_step, audit_events)
    if report.failures == failures_before:
        report.passed.append("steps")
    _check_chain(report, by_step, steps, spec)
    _check_policy(report, manifest, by_step, steps)
    return by_step


def batch_order(manifest: dict) -> str:
    """``seeded`` (``pot-zk train``; also bundles written before the field existed) or
    ``recorded`` (a user loop through :mod:`pot_zk.hooks`)."""
    return manifest["training"].get("batch_order", "seeded")


def _check_batch_order(report, manifest: dict, accepted: Mapping[str, str]) -> bool:
    """Whether the manifest declares a seeded schedule the steps must follow. ``recorded`` (a
    user loop's: no schedule, no seed to recompute data or initial model from) is the weaker
    statement: it fails unless the auditor accepts it (``--accept-setting batch_order=recorded``)."""
    order = batch_order(manifest)
    training = manifest["training"]
    if order not in BATCH_ORDERS:
        report.fail("steps", "unknown-batch-order", f"the manifest declares batch_order={order!r}; known: {', '.join(BATCH_ORDERS)}")
    elif order == "seeded" and streamed_batches(manifest):
        report.fail(
            "steps", "seeded-streamed",
            "the manifest declares a seeded batch order for streamed batches: a loop committed each batch as it came "
            "(pot-zk writes batch_order=recorded for it), no seeded schedule chose them",
        )
    elif order == "seeded" and not all(isinstance(training.get(key), int) for key in ("epochs", "seed")):
        report.fail("steps", "schedule-missing", "batch_order is seeded but the manifest declares no integer epochs and seed")
    elif order == "recorded" and accepted.get("batch_order") != "recorded":
        report.fail(
            "steps", "setting-not-default",
            "the manifest sets batch_order='recorded' (the training loop chose each step's batch; no schedule, no seed): "
            "accept it with --accept-setting batch_order=recorded, and pin the data and initial model with --expect-root "
            "and --expect-initial",
        )
    elif order == "recorded":
        checked = (
            "each step's batch is checked as the data checks say (samples of the declared data set, see 'data'), not which samples a step should have drawn"
            if training.get("batches") == "streamed"
            else "each step's batch is checked to be a leaf of the declared dataset, not which leaf a step should have used"
        )
        report.notes.append(
            f"batch order: recorded by the training loop (you accepted it), not a declared schedule; {checked} or how many steps there should be"
        )
    else:
        return True
    return False


def _expected_steps(manifest: dict, num_batches: int) -> int | None:
    """The declared plan's number of steps (None: ``epochs`` or ``max_steps`` is no integer, which
    plan-not-canonical names; review51: "x" raised)."""
    training = manifest["training"]
    epochs, max_steps = training.get("epochs"), training.get("max_steps")
    if type(epochs) is not int or (max_steps is not None and type(max_steps) is not int):
        return None
    total = epochs * num_batches
    return total if max_steps is None else min(total, max_steps)


def _check_audit_agreement(report, by_step: dict[int, dict], audit_events: list[dict]) -> None:
    if not audit_events:
        return
    logged = {e.get("step"): e for e in audit_events if e.get("event") == "commitment"}
    for step, record in sorted(by_step.items()):
        event = logged.get(step)
        if event is None or any(event.get(k) != record.get(k) for k in (*COMMITTED, *OPTIONAL_FIELDS, "batch_index", "samples", "learning_rate", "scheduled")):
            report.fail("steps", "audit-mismatch", "the commitment record differs from the audit trail's", step)


def _check_chain(report, by_step: dict[int, dict], steps: list[int], spec: Statement) -> None:
    """Each step records its state before and after it (W_t, W_t+1; a momentum step's V_t, V_t+1
    too), and its state before is the previous step's after; the optimizer's state starts from
    zero, as torch creates it (``state-not-zero``), and a step count is the step's number + 1
    (``optimizer-step-count``: the auditor recomputes it, so no step's count is the trainer's choice)."""
    kind = STEP_KINDS.get(spec.kind)
    chained = kind.chained_inputs
    unrecorded = [(s, name) for s in steps for pair in chained for name in pair if by_step[s].get(name) is None]
    for step, name in unrecorded:
        report.fail("commitment-chain", "chain-broken", f"the step records no {name} commitment (a {spec.kind} step commits it)", step)
    broken = [
        (s, before) for s in steps[1:] for before, after in chained if s - 1 in by_step and by_step[s - 1].get(after) != by_step[s].get(before)
    ]
    for step, before in broken:
        report.fail("commitment-chain", "chain-broken", f"{before} of this step is not {before.replace('before', 'after')} of the previous step", step)
    scheme = commitments_of(spec)
    for before, _ in chained[1:] if steps else ():
        zeros = scheme.tensor(before).commit(torch.zeros(spec.input_sizes()[before], dtype=torch.float64), f"zero {before}")
        if by_step[steps[0]].get(before) != zeros:
            broken.append((steps[0], before))
            report.fail("commitment-chain", "state-not-zero", f"the first step's {before} is not zero (torch's optimizer starts from none)", steps[0])
    counted = kind.step_count_input
    for step in steps if counted else ():
        if by_step[step].get(counted) != scheme.tensor(counted).commit(torch.tensor([step + 1.0], dtype=torch.float64), f"step count {step + 1}"):
            broken.append((step, counted))
            report.fail("commitment-chain", "optimizer-step-count", f"the step's {counted} is not the optimizer's step count {step + 1}", step)
    if not broken and not unrecorded:
        report.passed.append("commitment-chain")


def _check_policy(report, manifest: dict, by_step: dict[int, dict], steps: list[int]) -> None:
    declared = dict(manifest["policy"])
    name = declared.pop("name", None)  # the sweep rerun in session 22: a policy {} raised KeyError
    if not isinstance(name, str):
        report.fail("policy", "unknown-policy", f"the declared policy has no name (found {str(name)[:40]})")
        return
    try:
        policy = create_policy(name, **declared)
    except (PotZkError, TypeError) as exc:
        report.fail("policy", "unknown-policy", str(exc))
        return
    enabled = bool(manifest["proving_enabled"])
    report.selected_steps = [s for s in steps if enabled and policy(s)]
    selected = set(report.selected_steps)  # review49: a list made this quadratic (200k steps: minutes)
    wrong = [s for s in steps if bool(by_step[s].get("scheduled")) != (s in selected)]
    for step in wrong:
        report.fail("policy", "policy-mismatch", f"marked scheduled={by_step[step].get('scheduled')} against the declared {name} policy", step)
    if not wrong:
        report.passed.append("policy")


def check_models(report, bundle, by_step: dict[int, dict], spec, load_model: Callable) -> None:
    """The model files hash to the first W_t and the last W_t+1 commitments; for a run on a
    frozen base (LoRA) the trained weights (adapters) do, and the base hashes to the declared
    base commitment."""
    if not by_step:
        return
    kind = STEP_KINDS.get(spec.kind)
    first, last = by_step[min(by_step)], by_step[max(by_step)]
    manifest = bundle.manifest()
    constants = {name: (manifest.get(name) or {}).get("commitment") for name in kind.constant_inputs}
    for check, name, wanted in (
        ("initial-model", files.INITIAL_MODEL, first.get("w_before")),
        ("final-model", files.FINAL_MODEL, last.get("w_after")),
    ):
        state = loaded(bundle.path(name), spec, load_model)
        found = None if isinstance(state, str) else _state_commitments_or_why(state, spec)
        if isinstance(state, str) or isinstance(found, str):
            report.fail(check, "missing-model", found or state)
        elif found[0] != wanted:
            report.fail(check, "model-mismatch", f"{name} does not hash to the {'first' if check == 'initial-model' else 'last'} commitment")
        elif found[1] != constants:
            report.fail(check, "base-mismatch", f"the frozen base in {name} does not hash to the declared base commitment")
        elif off_grid := _off_grid(state, spec):
            report.fail(
                check, "model-off-grid",
                f"{name}: values of {', '.join(off_grid)} lie between the points of the statement's grid; an exact statement's "
                "weights are its integers, so these are not the weights the commitment (which rounds) and the proofs bind",
            )
        else:
            report.passed.append(check)


def check_base(report, manifest: dict, by_step: dict[int, dict], spec) -> None:
    """Every step of a run on a frozen base commits to the one declared base; a run of a kind
    without one (SGD) declares and records none."""
    if "base" not in STEP_KINDS.get(spec.kind).constant_inputs:
        if manifest.get("base") is not None or any(r.get("base") is not None for r in by_step.values()):
            report.fail("base-model", "base-mismatch", f"a {spec.kind} run declares or records a base model")
        return
    declared = (manifest.get("base") or {}).get("commitment")
    wrong = [s for s, r in sorted(by_step.items()) if declared is None or r.get("base") != declared]
    for step in wrong:
        report.fail("base-model", "base-mismatch", "the step's base commitment is not the declared base", step)
    if not wrong:
        report.passed.append("base-model")


def state_commitments(state: dict, spec) -> tuple[str | None, dict[str, str | None]]:
    """(commitment of the trained weights, commitments of the constant inputs by name) of a
    model's state dict, under the scheme of ``spec``'s backend; None for a tensor outside the
    committed range (no commitment of the run can match it)."""
    tensors = STEP_KINDS.get(spec.kind).model_tensors(state, spec.architecture)
    scheme = commitments_of(spec)

    def commit(name: str) -> str | None:
        try:
            return scheme.commit(tensors[name], name)
        except WitnessBuilderError:
            return None

    return commit("weights"), {name: commit(name) for name in tensors if name != "weights"}


def _seeded_order(num_batches: int, epoch: int, seed: object) -> list[int] | None:
    """The seeded batch order of ``epoch``; None for a seed torch cannot take (review49: 2**70 raised)."""
    try:
        return epoch_order(num_batches, epoch, int(seed))  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError, RuntimeError):
        return None


def _state_commitments_or_why(state: dict, spec) -> tuple[str | None, dict[str, str | None]] | str:
    try:
        return state_commitments(state, spec)
    except Exception as exc:  # tensors of another architecture or kind: no usable model
        return f"the model file's tensors are not a model of the declared architecture ({short(exc)})"


def _off_grid(state: dict, spec) -> list[str]:
    """The tensors of a saved model of an exact statement's run that do not lie on the grid its
    commitment binds (review31: the commitment rounds, so a model file up to half a grid step
    off every proven weight hashed to the proven W_T). Empty for a statement with a tolerance."""
    if not backend_of(spec).exact:
        return []
    scheme = commitments_of(spec)
    off = []
    for name, values in STEP_KINDS.get(spec.kind).model_tensors(state, spec.architecture).items():
        exact = values.detach().to(torch.float64).reshape(-1)
        if not torch.equal(scheme.snap(exact, name).reshape(-1), exact):
            off.append(name)
    return off


OUTCOME = ("status", "proof_type", "strategy")


def check_outcomes_recorded(report, proofs: list[dict], audit_events: list[dict]) -> None:
    """Every outcome in proofs.jsonl (status, proof type, strategy) is one the audit trail's
    ``proof.result`` records of that step hold, and each step's last outcome is the same in both.
    (A run killed between the two writes proves the step again when resumed: the trail may then
    hold an extra earlier outcome, never a missing one.)"""
    if not audit_events:  # the audit-chain check has failed already
        return
    audited: dict = defaultdict(list)
    recorded: dict = defaultdict(list)
    for event in audit_events:
        if event.get("event") == "proof.result":
            audited[_hashable(event.get("step"))].append(tuple(_hashable(event.get(key)) for key in OUTCOME))
    for record in proofs:
        recorded[_hashable(record.get("step"))].append(tuple(_hashable(record.get(key)) for key in OUTCOME))
    for step in sorted(set(audited) | set(recorded), key=lambda s: (0, s) if isinstance(s, int) else (1, str(s))):
        ours, theirs = recorded.get(step, []), audited.get(step, [])
        if not ours or not theirs or ours[-1] != theirs[-1] or Counter(ours) - Counter(theirs):
            report.fail(
                "proofs",
                "record-mismatch",
                f"proofs.jsonl records {ours[-1] if ours else 'no outcome'}, the audit trail {theirs[-1] if theirs else 'no outcome'} "
                f"(status, proof type, strategy)",
                step if isinstance(step, int) else None,
            )


def _hashable(value: object) -> object:
    """``value``, or its JSON text when it cannot be a key (review51: a proof record's step ``[]``
    or status ``{}`` raised TypeError)."""
    try:
        hash(value)
    except TypeError:
        return json.dumps(value, sort_keys=True, default=str)
    return value


def note_unproven_steps(report, by_step: Mapping[int, Mapping]) -> None:
    """Steps without a verified proof, said of what they leave unbound (review50: with a sparse
    policy a trainer replaced the final model after the last proof, rewrote the unproven last
    step, and verify said VERIFIED with the auditor's keys and a pinned head, no word of it)."""
    count = report.step_count
    unproven = [s for s in range(count) if s not in report.verified_steps]
    if not report.verified_steps or not unproven:
        return
    last = max(report.verified_steps)
    after = f"step {last + 1}" if last + 1 == count - 1 else f"steps {last + 1}..{count - 1}"
    tail = f"; the final model (and its held-out score) comes after unproven {after} and is bound by no proof" if last < count - 1 else ""
    report.notes.append(
        f"{len(unproven)} of the {count} steps carry no verified proof: the update of each is its trainer's word (the commitments chain "
        f"them, nothing checks them), so a proven step after one starts from weights the trainer chose{tail}; challenge steps after "
        "the run (pot-zk challenge) or require a proof of every step to bind them"
    )


def note_free_state(report, spec: Statement) -> None:
    """A step proven after an unproven one shows the update from optimizer state (a momentum
    velocity, Adam's moments) no proof covers, which the trainer chose: any W_t+1 is the update
    of some such state (docs/proofs.md)."""
    state = STEP_KINDS.get(spec.kind).optimizer_state
    if not state:
        return
    free = sorted(s for s in report.verified_steps if s > 0 and s - 1 not in report.verified_steps)
    report.state_unbound_steps = free
    if free:
        report.notes.append(
            f"{spec.kind}: proven step(s) {free[:10]}{' ...' if len(free) > 10 else ''} start from {state} no proof covers "
            "(the step before is not proven): each shows the update from the state the trainer committed, and any W_t+1 is the "
            "update of some such state; proofs of the steps before them (a challenge) bind it"
        )


COARSE_RATE_GRID_STEPS = 16
"""A rate that moves a weight by fewer grid steps than this per unit of gradient is noted."""


def note_coarse_rate(report, spec: Statement, rates: Mapping[int, float] | None = None) -> None:
    """A learning rate (the declared one, or a schedule's lowest of its recomputed ``rates``)
    that moves a weight by fewer than :data:`COARSE_RATE_GRID_STEPS` grid steps per unit of
    gradient, in a statement whose update is floored: wherever the gradient is under
    1 / (lr 2^scale), the update is under one grid step and its floor moves the weight one step
    up (a negative gradient) or not at all, whatever the rate (review57: at lr 4e-6 a proven run
    moved its weights 274 times what float SGD at that rate does on the same batches; review60:
    judged by the rate, not by the update constant, which also holds the batch size and the
    loss's scaling)."""
    scale = getattr(spec, "scale", None)
    if getattr(spec, "backend", None) != "groth16" or not getattr(spec, "update_floored", False) or type(scale) is not int or not 0 <= scale <= 64:
        return  # a scale outside any statement (its own finding): nothing to say of the grid
    positive = {step: rate for step, rate in (rates or {}).items() if isinstance(rate, float) and rate > 0}
    step, rate = min(positive.items(), key=lambda item: item[1]) if positive else (None, spec.learning_rate)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool):
        return
    grid_steps = rate * 2**scale
    if 0 < grid_steps < COARSE_RATE_GRID_STEPS:
        at = "the declared rate" if step is None else f"the scheduled rate at step {step}"
        report.notes.append(
            f"learning rate: at {at}, {rate:.3g}, a weight's update is under one grid step (2^-{scale}) wherever what the rate "
            f"multiplies (its gradient; momentum's velocity) is under {1 / grid_steps:.3g} in magnitude, and the update's floor then "
            "moves it one grid step up (a negative gradient) or not at all: the weights can move far more than the rate implies; "
            "pin the rate you agreed on with your own keys (--keys)"
        )
