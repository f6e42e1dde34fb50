"""The auditor's references in ``pot-zk verify``: what it recomputes itself or brings along,
instead of taking the trainer's word from the bundle.

* ``dataset-root``: the batches of a built-in data set (digits, synthetic) in a seeded run are
  recomputed from the declared data set, part, batch size and seed; their leaves and root
  must be the bundle's (``dataset-root-mismatch``). ``--expect-root`` pins the root of any
  run (``unexpected-root``).
* ``initial-model``: the initial weights of a seeded run are recomputed from the declared
  architecture and training seed; step 0's W_t must commit to them (``initial-model-mismatch``).
* ``commitment-head``: ``--expect-head`` must equal the run's commitment head
  (``unexpected-head``; :func:`pot_zk.core.challenge.commitment_head`).
* ``base-model``: a run on a frozen base (LoRA) names its base by commitment only, so
  ``--expect-base`` (the last commitment of the base run the auditor verified) must equal the
  declared one (``unexpected-base``); the run's own checks tie every step and both model files
  to the declared base, not the declared base to any base run.
* ``statement``: the declared tolerance may not exceed ``--max-tolerance-ulps``, whose default
  is the statement's own default, never the manifest's (``tolerance-above-limit``).
* ``proofs``: at least ``--min-proven`` steps must carry a verified proof (``too-few-proven``).

Whatever is not recomputed or pinned is named in a note, so the report says whose word it is.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from pot_zk.backends.registry import commitments_of
from pot_zk.core.challenge import commitment_head
from pot_zk.core.merkle import dataset_root
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.data.datasets import BUILT_IN, manifest_data, seeded_batches
from pot_zk.runs.init_model import seeded_model
from pot_zk.runs.manifest import dataset_leaves
from pot_zk.verify.run_checks import batch_order, state_commitments
from pot_zk.verify.samples import streamed_batches

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_COMMITMENT = re.compile(r"^(0x)?[0-9a-f]{64}$")
"""A commitment as the backends write it: 64 hex digits (ezkl) or 0x and 64 (groth16)."""


@dataclass(frozen=True)
class Expectations:
    """What the auditor brings to ``pot-zk verify`` (never read from the bundle)."""

    expect_root: str | None = None
    expect_head: str | None = None
    max_tolerance_ulps: int | None = None
    """None: the default tolerance of the declared statement's kind."""
    min_proven: int = 0
    expect_base: str | None = None

    def __post_init__(self) -> None:
        for key in ("expect_root", "expect_head", "expect_base"):
            value = getattr(self, key)
            if value is not None and not (_COMMITMENT if key == "expect_base" else _HEX64).match(value.lower()):
                raise ConfigurationError(f"--{key.replace('_', '-')} must be 64 hex digits{' (0x optional)' if key == 'expect_base' else ''}, got {value!r}", key=key)
            if value is not None:
                object.__setattr__(self, key, value.lower())
        if self.max_tolerance_ulps is not None and self.max_tolerance_ulps < 0:
            raise ConfigurationError("--max-tolerance-ulps must be >= 0", key="max_tolerance_ulps")
        if self.min_proven < 0:
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


def recomputed_leaves(manifest: Mapping[str, Any], spec: Any) -> tuple[list[str] | None, str]:
    """The leaves of the declared built-in data set, or None and why they cannot be recomputed.
    Raises ConfigurationError when the declaration itself is unusable (e.g. a data set that
    does not fit the architecture, or synthetic data without its sample count and seed)."""
    dataset, training = manifest["dataset"], manifest["training"]
    if dataset.get("name") not in BUILT_IN:
        return None, f"the data set {dataset.get('name')!r} is not a built-in one"
    if batch_order(manifest) != "seeded" or not isinstance(training.get("seed"), int):
        return None, "the training loop recorded its own batches (batch_order: recorded)"
    if dataset["name"] == "synthetic" and not all(isinstance(dataset.get(key), int) for key in ("num_samples", "seed")):
        raise ConfigurationError("the manifest declares synthetic data without its num_samples and seed", key="dataset")
    mlp = STEP_KINDS.get(spec.kind).mlp(spec.architecture)
    batches, _ = seeded_batches(manifest_data(dataset), mlp.dims[0], mlp.dims[-1], spec.batch_size, training["seed"], mlp.loss)
    return dataset_leaves(batches, commitments_of(spec)), ""


def check_dataset_reference(report, manifest: Mapping[str, Any], dataset: Mapping[str, Any], spec: Any, expect_root: str | None) -> None:
    root = manifest["dataset"]["root"]
    report.references["dataset_root"] = root
    if expect_root is not None and root != expect_root:
        report.fail("dataset-root", "unexpected-root", f"the declared dataset root is not the one you expect ({expect_root})")
    if streamed_batches(manifest):
        return  # the samples' root: check_streamed_batches recomputes a built-in set's
    try:
        leaves, why_not = recomputed_leaves(manifest, spec)
    except ConfigurationError as exc:
        report.fail("dataset-root", "dataset-root-mismatch", f"the declared data set cannot be recomputed: {exc.message}")
        return
    if leaves is None:
        report.references["dataset_leaves"] = "the trainer's"
        if expect_root is None:
            report.notes.append(f"dataset root: the trainer's ({why_not}); pin it with --expect-root")
        return
    report.references["dataset_leaves"] = "recomputed from the declared data set"
    declared = list(dataset.get("leaves", []))
    if leaves != declared or dataset_root(leaves, (manifest["dataset"].get("holdout") or {}).get("commitment")) != root:
        differ = [i for i in range(max(len(leaves), len(declared))) if i >= len(leaves) or i >= len(declared) or leaves[i] != declared[i]]
        report.fail(
            "dataset-root",
            "dataset-root-mismatch",
            f"the declared {manifest['dataset']['name']} batches recomputed from the declared config differ from the bundle's "
            f"(batches {differ[:10]})",
        )
    else:
        report.passed.append("dataset-reference")


def check_initial_reference(report, manifest: Mapping[str, Any], by_step: Mapping[int, Mapping[str, Any]], spec: Any) -> None:
    if 0 not in by_step:
        return
    seed = manifest["training"].get("seed")
    if batch_order(manifest) != "seeded" or not isinstance(seed, int):
        report.references["initial_model"] = "the trainer's"
        report.notes.append("initial model: chosen by the training loop (batch_order: recorded), not recomputed from a seed")
        return
    with torch.random.fork_rng(devices=[]):
        model = seeded_model(spec, seed)
    report.references["initial_model"] = f"recomputed from seed {seed}"
    if state_commitments(model.state_dict(), spec)[0] != by_step[0].get("w_before"):
        report.fail(
            "initial-model",
            "initial-model-mismatch",
            f"step 0's W_t is not the model the declared architecture and training seed {seed} give",
            0,
        )
    else:
        report.passed.append("initial-reference")


def record_plan(report, manifest: Mapping[str, Any], commitments: list[Mapping[str, Any]]) -> None:
    """What the run declares it did, printed for the auditor to compare with what was agreed
    (a consistent rewrite -- fewer steps, another policy -- changes only this, and the head)."""
    training = {k: v for k, v in manifest["training"].items() if k != "optimizer"}
    policy = " ".join([str(manifest["policy"].get("name")), *(f"{k}={v}" for k, v in manifest["policy"].items() if k != "name")])
    schedule = ", ".join(f"{k}={v}" for k, v in training.items())
    report.references["plan"] = f"{len(commitments)} steps ({schedule}); policy {policy}; mode {manifest.get('mode')}"


def check_head(report, manifest: Mapping[str, Any], commitments: list[Mapping[str, Any]], expect_head: str | None) -> None:
    head = commitment_head(manifest, commitments)
    report.references["commitment_head"] = head
    if expect_head is None:
        report.notes.append(
            "commitment head: not anchored; pass --expect-head with the head you received when the run ended "
            "(without it a consistent rewrite of the steps, e.g. a run cut short, cannot be told)"
        )
    elif head != expect_head:
        report.fail("commitment-head", "unexpected-head", f"the run's commitment head is {head}, you expect {expect_head}")
    else:
        report.passed.append("commitment-head")


def check_base_reference(report, manifest: Mapping[str, Any], spec: Any, expect_base: str | None) -> None:
    """The declared frozen base is the one the auditor expects (``--expect-base``); without it,
    a note names the declared base as the trainer's word."""
    if "base" not in STEP_KINDS.get(spec.kind).constant_inputs:
        if expect_base is not None:
            report.fail("base-model", "unexpected-base", f"you expect base {expect_base}; a {spec.kind} run has no frozen base")
        return
    base = manifest.get("base") or {}
    declared = base.get("commitment")
    report.references["base_commitment"] = declared
    if expect_base is None:
        report.notes.append(
            f"base model: the trainer's (commitment {declared}, declared from run {base.get('run')!r}); pin it with "
            "--expect-base, the last commitment of the base run you verified"
        )
    elif str(declared).lower().removeprefix("0x") != expect_base.removeprefix("0x"):
        report.fail("base-model", "unexpected-base", f"the run's frozen base commits to {declared}, you expect {expect_base}")
    else:
        report.passed.append("base-reference")


def check_min_proven(report, min_proven: int) -> None:
    if report.proven < min_proven:
        report.fail("proofs", "too-few-proven", f"{report.proven} steps carry a verified proof; you require at least {min_proven}")
