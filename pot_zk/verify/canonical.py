"""One accepted form of every value the commitment head hashes (found by a review).

The head (:mod:`pot_zk.core.challenge`) hashes the manifest's declared plan and each step's
record as JSON. Python's ``==`` took ``"scale": 12.0`` for ``12`` and ``"step": true`` for ``1``,
an absent ``learning_rate`` for ``null``, and nothing looked at keys the plan does not have
(``training.epochs_completed``, a digits set's ``num_samples``, an ``every_step`` policy's
``fraction``): each such edit gave one run another head at no cost (against a challenge without a
nonce, a trainer could draw heads until the challenged steps suited it), and verify printed the
made-up keys in its ``plan:`` and ``dataset:`` lines as if they were part of the checked plan.

Verify now accepts exactly what pot-zk writes: the keys a plan of its kind has, each with its
JSON type (a whole number as an integer, never a float or a boolean; a rate as a float; a
commitment as its backend writes it), and the optimizer and arithmetic the statement implies.
Anything else is ``plan-not-canonical`` (check ``statement``) or ``record-not-canonical`` (check
``steps``). Values verify checks by their effect alone (``epochs`` past ``max_steps``, a policy
selecting the same steps, the mode) can still be re-declared, each giving another head
(review37; docs/runs.md, "Grinding"): only the auditor's nonce makes a challenge unpredictable.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

from pot_zk.backends.registry import backend_of, commitments_of
from pot_zk.exceptions import ConfigurationError, PotZkError
from pot_zk.kinds.optimizer import OPTIMIZERS
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.kinds.schedule import canonical as canonical_schedule
from pot_zk.data.datasets import BUILT_IN
from pot_zk.data.samples import LEAF_NAME, OWN_DATA, UNDECLARED
from pot_zk.proving.policy import create_policy
from pot_zk.verify.samples import STREAMED, streamed_batches

HOLDOUT_KEYS = {"commitment": str, "fraction": float, "of": int, "samples": int, "seed": int}


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON texts (sorted keys): ``12`` is not ``12.0``, ``1`` is not ``true``."""
    return _text(a, limit=None) == _text(b, limit=None)  # whole texts: a cut one would make long values with one prefix equal


def _text(value: Any, limit: int | None = 80) -> str:
    """``value`` as JSON, for a message cut to ``limit`` characters (a crafted value may be 400
    digits long); ``limit`` None: whole, for a comparison."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if limit is None or len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _typed(value: Any, kind: Any) -> bool:
    """``value`` has the JSON type ``kind`` (int: an integer, not a boolean; float: a float;
    None in a tuple: null allowed)."""
    if isinstance(kind, tuple):
        return any(_typed(value, k) for k in kind)
    if kind is None:
        return value is None
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _keys(where: str, found: Any, required: Mapping[str, Any], optional: Mapping[str, Any] | None = None) -> list[str]:
    """What is wrong with the object ``found`` (named ``where``; "" for a step record): not an
    object, a key missing, a key it may not have, a value of another type."""
    name, prefix = (where, f"{where}.") if where else ("the record", "")
    if not isinstance(found, Mapping):
        return [f"{name} is {_text(found)}, not an object"]
    problems = [f"{name} has no {key}" for key in required if key not in found]
    allowed = {**required, **(optional or {})}
    problems += [f"{name} has {key}, which pot-zk does not write there" for key in sorted(set(found) - set(allowed))]
    problems += [
        f"{prefix}{key} is {_text(found[key])}, not {_type_name(allowed[key])}"
        for key in sorted(set(found) & set(allowed)) if not _typed(found[key], allowed[key])
    ]
    return problems


def _type_name(kind: Any) -> str:
    if isinstance(kind, tuple):
        return " or ".join(_type_name(k) for k in kind)
    return {None: "null", int: "an integer", float: "a float", str: "a string", bool: "true or false", dict: "an object", list: "a list"}.get(kind, str(kind))


def check_plan_form(report, manifest: Mapping[str, Any], spec: Any) -> None:
    """``plan-not-canonical``: the manifest's training plan, policy, data set or ``proving_enabled``
    have a key pot-zk does not write for such a run or a value of another JSON type, or the plan
    names another optimizer or arithmetic than the statement implies."""
    problems = _training_problems(manifest.get("training"), spec) + _policy_problems(manifest.get("policy"))
    problems += _dataset_problems(manifest.get("dataset"), streamed_batches(manifest) if isinstance(manifest.get("training"), Mapping) else False, spec)
    if not _typed(manifest.get("proving_enabled"), bool):
        problems.append(f"proving_enabled is {_text(manifest.get('proving_enabled'))}, not true or false")
    if problems:
        report.fail(
            "statement", "plan-not-canonical",
            f"the manifest's plan is not as pot-zk writes it for this statement ({'; '.join(problems[:5])}{'; ...' if len(problems) > 5 else ''}): "
            "what differs is not what the checks read, and each such plan has another commitment head",
        )


def _training_problems(training: Any, spec: Any) -> list[str]:
    if not isinstance(training, Mapping):
        return [f"training is {_text(training)}, not an object"]
    common = {"batch_order": str, "optimizer": str, "arithmetic": str}
    order = training.get("batch_order", "seeded")  # review43: absent (read as seeded everywhere) is not a form pot-zk writes
    if order == "seeded":
        problems = _keys("training", training, {**common, "epochs": int, "max_steps": (int, None), "seed": int}, {"schedule": dict})
    elif order == "recorded":
        problems = _keys("training", training, common, {"batches": str, "schedule": dict})
    else:
        return []  # unknown-batch-order (run_checks) says so
    # review37: words verify printed (arithmetic=float for an exact run) and the head hashed, never compared with the statement
    written = {"optimizer": _optimizer_of(spec), "arithmetic": "float" if backend_of(spec).training_arithmetic(spec) is None else "exact"}
    problems += [f"training.{key} is {_text(training[key])}, a run of this statement is trained with {_text(value)}"
                 for key, value in written.items() if key in training and training[key] != value]
    if "batches" in training and training["batches"] != STREAMED:
        problems.append(f"training.batches is {_text(training['batches'])}: pot-zk writes it only as {_text(STREAMED)}")
    schedule = training.get("schedule")
    if isinstance(schedule, Mapping):
        try:
            if not same_json(schedule, canonical_schedule(schedule, "training.schedule")):
                problems.append(f"training.schedule is {_text(schedule)}, not {_text(canonical_schedule(schedule))}")
        except ConfigurationError:
            pass  # schedule-mismatch (verify/schedule.py) says why
    return problems


def plan_readable(manifest: Mapping[str, Any]) -> bool:
    """The manifest's training plan, policy and data set are objects (review51: ``"training": []``
    raised in the checks after plan-not-canonical named it): else verify stops after naming it.
    A key of another type inside them is plan-not-canonical, and verify goes on (the checks
    after it name what else is wrong)."""
    return all(isinstance(manifest.get(part), Mapping) for part in ("training", "policy", "dataset"))


def _optimizer_of(spec: Any) -> str:
    """The torch optimizer a run of ``spec`` names in its manifest (:func:`pot_zk.runs.manifest.training_plan`)."""
    name = STEP_KINDS.get(spec.kind).config_values(spec.architecture).get("optimizer.name", "sgd")
    return f"torch.optim.{OPTIMIZERS[name].__name__}"


def _policy_problems(policy: Any) -> list[str]:
    if not isinstance(policy, Mapping) or not isinstance(policy.get("name"), str):
        return [f"policy is {_text(policy)}, not an object with a name"]
    settings = {key: value for key, value in policy.items() if key != "name"}
    try:
        rebuilt = create_policy(policy["name"], **settings)
    except (PotZkError, TypeError):
        return []  # unknown-policy (run_checks) says why
    written = {"name": policy["name"], **vars(rebuilt)}
    return [] if same_json(policy, written) else [f"policy is {_text(policy)}, pot-zk writes {_text(written)} for it"]


def _dataset_problems(dataset: Any, streamed: bool, spec: Any) -> list[str]:
    if not isinstance(dataset, Mapping):
        return [f"dataset is {_text(dataset)}, not an object"]
    required: dict[str, Any] = {"name": str, "part": str, "root": (str, None), "holdout": (dict, None)}
    required["num_batches"] = None if streamed else int
    if dataset.get("name") == "synthetic":
        required.update({"num_samples": int, "seed": int})
    if streamed:
        required.update({"size": (int, None), "leaf": (str, None)})
    problems = _keys("dataset", dataset, required)
    holdout = dataset.get("holdout")
    if isinstance(holdout, Mapping):
        problems += _keys("dataset.holdout", holdout, HOLDOUT_KEYS)
        if isinstance(holdout.get("commitment"), str) and not commitments_of(spec).is_commitment(holdout["commitment"]):
            problems.append(f"dataset.holdout.commitment {_text(holdout['commitment'])[:80]} is not a commitment as the backend writes it")
    if isinstance(dataset.get("root"), str) and re.fullmatch("[0-9a-f]{64}", dataset["root"]) is None:
        problems.append(f"dataset.root {_text(dataset['root'])[:80]} is not 64 lowercase hex digits")
    if streamed:
        problems += _streamed_dataset_problems(dataset)
    return problems


def _streamed_dataset_problems(dataset: Mapping[str, Any]) -> list[str]:
    """A loop's data set as :func:`pot_zk.runs.manifest.streamed_entries` writes it: without a root
    it is ``undeclared`` with no sample count or leaf; with one, a built-in set or ``user``, a
    positive sample count and sample leaves (review39: with root null any ``size`` verified, each
    another head)."""
    if dataset.get("root") is None:
        written: dict[str, Any] = {"name": UNDECLARED, "size": None, "leaf": None}
    else:
        written = {"leaf": LEAF_NAME}
        if dataset.get("name") not in (*BUILT_IN, OWN_DATA):
            written["name"] = OWN_DATA
        size = dataset.get("size")
        if not (_typed(size, int) and size >= 1):
            return [f"dataset.size is {_text(size)[:80]}: a declared data set has at least one sample"]
    return [
        f"dataset.{key} is {_text(dataset.get(key))[:80]}, pot-zk writes {_text(value)} for it"
        for key, value in written.items() if key in dataset and not same_json(dataset.get(key), value)
    ]


def check_record_form(report, manifest: Mapping[str, Any], commitments: Sequence[Mapping[str, Any]], spec: Any) -> None:
    """``record-not-canonical``: a step's record has a key pot-zk does not write for this run's
    kind (an optimizer state of another kind, a learning rate without a schedule) or lacks one,
    or a value of another form (the step, batch index or scale not an integer; a recorded
    learning rate not a float; a commitment not as its backend writes it)."""
    kind = STEP_KINDS.get(spec.kind)
    streamed = isinstance(manifest.get("training"), Mapping) and streamed_batches(manifest)
    required: dict[str, Any] = {"step": int, "batch": str, "scale": int, "batch_index": None if streamed else int}
    optional: dict[str, Any] = {"epoch": (int, None), "loss": (int, float, None), "scheduled": bool}  # not in the head
    if streamed:
        required["samples"] = (list, None)
    if getattr(spec, "rate_public", False):
        required["learning_rate"] = float
    for before, after in kind.chained_inputs:
        required.update({before: str, after: str})
    required.update({name: str for name in kind.constant_inputs})
    committed = ["batch", *(name for pair in kind.chained_inputs for name in pair), *kind.constant_inputs]
    scheme = commitments_of(spec)
    for record in commitments:
        problems = _keys("", record, required, optional)
        if isinstance(record, Mapping):
            problems += [f"{name} {_text(record[name])[:80]} is not a commitment as the backend writes it" for name in committed
                         if isinstance(record.get(name), str) and not scheme.is_commitment(record[name])]
        samples = record.get("samples") if isinstance(record, Mapping) else None
        if isinstance(samples, list) and not all(_typed(position, int) for position in samples):
            problems.append(f"its samples {_text(samples)[:80]} are not all integers")
        if problems:
            step = record.get("step") if isinstance(record, Mapping) and _typed(record.get("step"), int) else None
            report.fail(
                "steps", "record-not-canonical",
                f"a step record is not in the form pot-zk writes ({'; '.join(problems[:5])}): each such form would give the run "
                "another commitment head", step,
            )
