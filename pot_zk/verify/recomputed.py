"""The data and the initial model: recomputed by verify where it can, pinned by the auditor
where it cannot -- never the trainer's word in a note.

* ``dataset-root``: the batches of a built-in data set (digits, synthetic) in a seeded run are
  recomputed from the declared data set, part, batch size and seed; their leaves and root must
  be the bundle's (``dataset-root-mismatch``). A user loop's run (``batch_order: recorded``)
  that declares a built-in data set records each batch's sample positions in it
  (``dataset.json`` ``samples``): every leaf must be the commitment of those samples
  (``dataset-samples``). ``--expect-root`` pins the root of any run (``unexpected-root``);
  a run whose leaves were not recomputed from a declared seed needs it (``root-not-pinned``).
  A loop that committed its batches as they came (``pot_zk.track``) is checked by
  :mod:`pot_zk.verify.samples` instead, but for the pin of its own data's root.
* ``initial-model``: the initial weights of a seeded run are recomputed from the declared
  architecture and training seed; step 0's W_t must commit to them (``initial-model-mismatch``).
  ``--expect-initial`` pins W_0's commitment for any run (``unexpected-initial``); a run whose
  initial model was not recomputed needs it (``initial-not-pinned``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from pot_zk.backends.registry import commitments_of
from pot_zk.bundle.dataset import dataset_leaves, declared_root, holdout_commitment, sampled_leaves
from pot_zk.data.datasets import BUILT_IN, load_dataset, manifest_data, seeded_batches, select_part
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.runs.init_model import seeded_model
from pot_zk.verify.report import RunReport
from pot_zk.verify.run_checks import batch_order, state_commitments
from pot_zk.verify.samples import held_out_positions, streamed_batches

COMMITMENT = re.compile(r"^(0x)?[0-9a-f]{64}$")
"""A commitment as the backends write it: 64 hex digits (ezkl) or 0x and 64 (groth16)."""


def same_commitment(a: Any, b: Any) -> bool:
    return str(a).lower().removeprefix("0x") == str(b).lower().removeprefix("0x")


def _seeded(manifest: Mapping[str, Any]) -> bool:
    return batch_order(manifest) == "seeded" and isinstance(manifest["training"].get("seed"), int)


def _usable(dataset: Mapping[str, Any]) -> None:
    if dataset["name"] == "synthetic" and not all(isinstance(dataset.get(key), int) for key in ("num_samples", "seed")):
        raise ConfigurationError("the manifest declares synthetic data without its num_samples and seed", key="dataset")


def _declared_samples(manifest: Mapping[str, Any], spec: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The declared built-in data set's samples (its part), with the targets of the statement's loss."""
    dataset = manifest["dataset"]
    _usable(dataset)
    mlp = STEP_KINDS.get(spec.kind).mlp(spec.architecture)
    data = manifest_data(dataset)
    inputs, targets = load_dataset(data.name, mlp.dims[0], mlp.dims[-1], data.num_samples, data.seed, mlp.loss)
    return select_part(inputs, targets, data.part)


def recomputed_leaves(manifest: Mapping[str, Any], spec: Any) -> tuple[list[str], set[int]]:
    """The leaves of a seeded run's declared built-in data set, and the positions its split held
    out of them. Raises ConfigurationError when the declaration itself is unusable (e.g. a data
    set that does not fit the architecture)."""
    dataset, training = manifest["dataset"], manifest["training"]
    _usable(dataset)
    mlp = STEP_KINDS.get(spec.kind).mlp(spec.architecture)
    batches, held_out = seeded_batches(manifest_data(dataset), mlp.dims[0], mlp.dims[-1], spec.batch_size, training["seed"], mlp.loss)
    return dataset_leaves(batches, commitments_of(spec)), set(() if held_out is None else held_out.indices)


def check_dataset_reference(report: RunReport, manifest: Mapping[str, Any], dataset: Mapping[str, Any], spec: Any, expect_root: str | None) -> None:
    root = manifest["dataset"].get("root")
    report.references["dataset_root"] = root
    if expect_root is not None and root != expect_root:
        report.fail("dataset-root", "unexpected-root", f"the declared dataset root is not the one you expect ({expect_root})")
    name = manifest["dataset"].get("name")
    if streamed_batches(manifest) and (name in BUILT_IN or root is None):
        return  # a built-in set's samples recomputed, or undeclared data accepted: check_streamed_batches
    if not isinstance(root, str):  # review51: a dataset {} raised KeyError
        report.fail("dataset-root", "root-mismatch", f"the manifest declares no dataset root (found {str(root)[:40]})")
        return
    try:
        if name in BUILT_IN and _seeded(manifest):
            _check_recomputed(report, manifest, dataset, spec)
            return
        if name in BUILT_IN:
            _check_samples(report, manifest, dataset, spec)
            why = f"a training loop chose which {name} samples make each batch"
        else:
            report.references["dataset_leaves"] = "the trainer's"
            why = f"the data set {name!r} is not built in"
    except (ConfigurationError, WitnessBuilderError, ValueError, TypeError, RuntimeError, AttributeError, OverflowError) as exc:  # a declaration no data set fits (a negative size: torch's RuntimeError; values outside the statement's range: review51)
        report.fail("dataset-root", "dataset-root-mismatch", f"the declared data set cannot be recomputed: {getattr(exc, 'message', exc)}")
        why = "the declared data set cannot be recomputed"
    if expect_root is None:
        report.fail("dataset-root", "root-not-pinned", f"the dataset root is the trainer's word ({why}): pin the root you agreed on with --expect-root")
    elif root == expect_root:
        report.passed.append("dataset-root-pinned")


def _check_recomputed(report: RunReport, manifest: Mapping[str, Any], dataset: Mapping[str, Any], spec: Any) -> None:
    leaves, split_out = recomputed_leaves(manifest, spec)
    report.references["dataset_leaves"] = "recomputed from the declared data set"
    declared = list(dataset.get("leaves", []))
    root = manifest["dataset"]["root"]
    held_out = held_out_positions(manifest["dataset"])
    trained_on = sorted(held_out - split_out)
    if trained_on:
        # review31: the batches are cut after the split of the data set's seed, the declared
        # held-out set is the choice of its own seed: two seeds let the "held-out" samples be
        # trained on (an honest run declares one seed for both).
        report.fail(
            "dataset-root",
            "trained-on-held-out",
            f"{len(trained_on)} of the {len(held_out)} declared held-out samples (positions {trained_on[:10]}) are not held out of the "
            "batches the declared data set and seeds cut: the held-out scores are not on unseen samples",
        )
    if leaves != declared or declared_root(leaves, holdout_commitment(manifest["dataset"])) != root:
        differ = [i for i in range(max(len(leaves), len(declared))) if i >= len(leaves) or i >= len(declared) or leaves[i] != declared[i]]
        report.fail(
            "dataset-root",
            "dataset-root-mismatch",
            f"the declared {manifest['dataset']['name']} batches recomputed from the declared config differ from the bundle's "
            f"(batches {differ[:10]})",
        )
    elif not trained_on:
        report.passed.append("dataset-reference")


def _check_samples(report: RunReport, manifest: Mapping[str, Any], dataset: Mapping[str, Any], spec: Any) -> None:
    """A recorded run declaring a built-in data set: each leaf is the commitment of the samples
    ``dataset.json`` names for it (which samples, and how they are grouped, stay the trainer's)."""
    name = manifest["dataset"]["name"]
    report.references["dataset_leaves"] = f"checked to be samples of {name} (the trainer chose which)"
    leaves = list(dataset.get("leaves", []))
    samples = dataset.get("samples")
    inputs, targets = _declared_samples(manifest, spec)
    if not isinstance(samples, list) or len(samples) != len(leaves) or not all(
        isinstance(s, list) and len(s) == spec.batch_size and all(isinstance(i, int) and 0 <= i < len(inputs) for i in s) for s in samples
    ):
        report.fail("dataset-root", "dataset-samples", f"dataset.json does not name {spec.batch_size} samples of {name} for each of its {len(leaves)} batches")
        return
    held_out = held_out_positions(manifest["dataset"])
    trained_on = [i for i, batch in enumerate(samples) if held_out.intersection(batch)]
    if trained_on:
        report.fail("dataset-root", "trained-on-held-out", f"batches {trained_on[:10]} name samples of the declared held-out set")
    differ = [i for i, (mine, theirs) in enumerate(zip(sampled_leaves(samples, inputs, targets, commitments_of(spec)), leaves)) if mine != theirs]
    if differ:
        report.fail("dataset-root", "dataset-samples", f"batches {differ[:10]} are not the {name} samples dataset.json names for them")
    elif not trained_on:
        report.passed.append("dataset-samples")


def is_model_file(value: "str | os.PathLike[str] | None") -> bool:
    """``--expect-initial``'s value names a model file: not a commitment (64 hex digits, 0x
    optional, are always one, even where a file of that name exists: a trainer could plant it
    beside its bundle; review29; with spaces around them too: review30) and an existing file."""
    return value is not None and not looks_like_commitment(os.fspath(value)) and os.path.isfile(value)


def looks_like_commitment(text: str) -> bool:
    """64 hex digits, 0x optional, any case, whitespace around them allowed."""
    return COMMITMENT.fullmatch(text.strip().lower()) is not None


def _model_file_commitment(report: RunReport, path: str, spec: Any) -> str | None:
    """W_0's commitment of the model file ``path`` (safetensors: the trained tensors of the
    statement, as ``state_dict()`` names them) under the run's statement; None, with the
    finding ``unexpected-initial``, when it is not a model of this statement."""
    from pot_zk.bundle.layout import load_model

    try:
        state, _ = load_model(Path(path))
    except Exception as exc:  # review29: a torch.save file or a damaged one (safetensors' own error) stopped verify
        report.fail("initial-model", "unexpected-initial", f"--expect-initial {path}: not a safetensors model file ({' '.join(str(exc).split())[:200]})", 0)
        return None
    try:
        wrong = [f"{name} {tuple(state[name].shape)} (the statement's {tuple(shape)})" for name, shape in STEP_KINDS.get(spec.kind).trained_shapes(spec.architecture)
                 if name in state and tuple(state[name].shape) != tuple(shape)]
        if wrong:  # the flattened values alone would not tell a reshaped model from the agreed one
            raise ValueError(f"layer shapes {', '.join(wrong)}")
        commitment = state_commitments(state, spec)[0]
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        commitment, why = None, f"not a model file of this statement ({' '.join(str(exc).split())[:300]})"
    else:
        why = "a tensor outside the committed range"
    if commitment is None:
        report.fail("initial-model", "unexpected-initial", f"--expect-initial {path}: {why}", 0)
    return commitment


def check_initial_reference(report: RunReport, manifest: Mapping[str, Any], by_step: Mapping[int, Mapping[str, Any]], spec: Any, expect_initial: str | None) -> None:
    if 0 not in by_step:
        return
    w_0 = by_step[0].get("w_before")
    if is_model_file(expect_initial):  # review27: the agreed initial model's file, committed here
        path = os.fspath(expect_initial)
        expect_initial = _model_file_commitment(report, path, spec)
        if expect_initial is None:
            return
        report.notes.append(f"--expect-initial {path}: the model file commits to {expect_initial} under the run's statement")
    if expect_initial is not None:
        if same_commitment(w_0, expect_initial):
            report.passed.append("initial-pinned")
        else:
            report.fail("initial-model", "unexpected-initial", f"step 0's W_t commits to {w_0}, you expect {expect_initial}", 0)
    if not _seeded(manifest):
        report.references["initial_model"] = "the trainer's (chosen by the training loop, no declared seed)"
        if expect_initial is None:
            report.fail(
                "initial-model", "initial-not-pinned",
                "the initial model is the trainer's word (a user loop's own, not recomputed from a seed): "
                "pin W_0's commitment you agreed on with --expect-initial", 0,
            )
        return
    seed = manifest["training"]["seed"]
    try:
        with torch.random.fork_rng(devices=[]):
            model = seeded_model(spec, seed)
    except (TypeError, ValueError, OverflowError, RuntimeError) as exc:  # review49: a seed of 2**70 raised here
        report.fail("initial-model", "initial-model-mismatch", f"the declared training seed {str(seed)[:40]} gives no model ({str(exc)[:200]})", 0)
        return
    report.references["initial_model"] = f"recomputed from seed {seed}"
    if state_commitments(model.state_dict(), spec)[0] != w_0:
        report.fail("initial-model", "initial-model-mismatch", f"step 0's W_t is not the model the declared architecture and training seed {seed} give", 0)
    else:
        report.passed.append("initial-reference")
