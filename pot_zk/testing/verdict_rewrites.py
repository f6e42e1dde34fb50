"""Tamper kinds of issue 22 ("what VERIFIED means, round two"): a cheating trainer who rewrites
what verify used to take at its word -- outcome statuses, the declared batch order, the
declared data set -- with every record and the audit trail made to agree (dev-only; merged
into :data:`pot_zk.testing.tamper.KINDS`).

* ``launder-status``: every outcome's status replaced by the name of the backend's proof type
  (a run whose proofs all failed then showed a coverage like an honest run's): ``unknown-status``.
* ``relabel-recorded``: a run trained on a poisoned batch, its manifest's batch order relabelled
  ``recorded`` after the commitment head was handed over (so that neither data set nor initial
  model would be recomputed): ``unexpected-head``; without the head, the weaker statement fails
  until the auditor accepts it and pins root and initial model, and then its batches are no
  samples of the declared data set.
* ``declare-built-in``: a user loop's run (its own data) relabelled as drawing from the
  built-in ``synthetic`` set: its batches are no samples of it (``dataset-samples``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

from pot_zk.bundle import layout as files
from pot_zk.core.merkle import dataset_root
from pot_zk.testing.bundle_edit import (
    Finding,
    Tampering,
    expect,
    head_of,
    jsonl,
    other_felt,
    proved_steps,
    read_json,
    sync_audit,
    write_json,
    write_jsonl,
)


def launder_status(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    manifest = read_json(bundle / files.MANIFEST)
    proof_type = {"groth16": "zk-groth16"}.get(str(manifest.get("backend")), "zk-halo2")
    records = jsonl(bundle / files.PROOFS)
    for record in records:
        record.update(status=proof_type, proof_type=proof_type)
    write_jsonl(bundle / files.PROOFS, records)
    sync_audit(bundle)
    laundered = frozenset(Finding("proofs", "unknown-status", record["step"]) for record in records)
    return Tampering("launder-status", f"every outcome's status set to {proof_type!r}, audit rewritten",
                     laundered | {Finding("proofs", "too-few-proven")})


def _poison_leaf(bundle: Path, rng: random.Random) -> int:
    """One batch no proof covers replaced (its records, leaf and root rewritten); returns its index."""
    commitments = jsonl(bundle / files.COMMITMENTS)
    proven = set(proved_steps(bundle))
    covered = {r["batch_index"] for r in commitments if r["step"] in proven}
    index = rng.choice(sorted({r["batch_index"] for r in commitments} - covered))
    dataset = read_json(bundle / files.DATASET)
    poisoned = other_felt(rng, dataset["leaves"][index])
    for record in commitments:
        if record["batch_index"] == index:
            record["batch"] = poisoned
    dataset["leaves"][index] = poisoned
    dataset["root"] = dataset_root(dataset["leaves"], (dataset.get("holdout") or {}).get("commitment"))
    write_jsonl(bundle / files.COMMITMENTS, commitments)
    write_json(bundle / files.DATASET, dataset)
    manifest = read_json(bundle / files.MANIFEST)
    manifest["dataset"]["root"] = dataset["root"]
    write_json(bundle / files.MANIFEST, manifest)
    return index


def relabel_recorded(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """A seeded run on a poisoned batch (its records, leaf and root consistent: the head handed
    over is that of the poisoned run), then relabelled ``recorded`` so that the data set is not
    recomputed: before the plan was in the head, the relabel left the head as it was."""
    index = _poison_leaf(bundle, rng)
    sync_audit(bundle)
    handed_over = head_of(bundle)
    manifest = read_json(bundle / files.MANIFEST)
    training = manifest["training"]
    manifest["training"] = {"batch_order": "recorded", **{k: v for k, v in training.items() if k in ("optimizer", "arithmetic")}}
    write_json(bundle / files.MANIFEST, manifest)
    sync_audit(bundle)
    return Tampering("relabel-recorded", f"batch_order relabelled recorded after hand-over, batch {index} poisoned",
                     expect(Finding("commitment-head", "unexpected-head"), Finding("steps", "setting-not-default"),
                            Finding("dataset-root", "root-not-pinned"), Finding("initial-model", "initial-not-pinned", 0)),
                     {"expect_head": handed_over})


def declare_built_in(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """A user loop's run declared to draw from ``synthetic`` (as ``proven_training(dataset_name=
    "synthetic")`` could before): the auditor accepts the recorded order and pins the root and
    initial model the trainer handed over, and still the batches are no synthetic samples."""
    manifest = read_json(bundle / files.MANIFEST)
    manifest["dataset"].update(name="synthetic", num_samples=256, seed=0)
    write_json(bundle / files.MANIFEST, manifest)
    sync_audit(bundle)
    options = {
        "accept_settings": {"batch_order": "recorded"},
        "expect_root": manifest["dataset"]["root"],
        "expect_initial": jsonl(bundle / files.COMMITMENTS)[0]["w_before"],
    }
    return Tampering("declare-built-in", "a user loop's own data declared as the synthetic set, audit rewritten",
                     expect(Finding("dataset-root", "dataset-samples")), options)


VERDICT_KINDS: dict[str, Callable[[Path, random.Random, Path | None], Tampering]] = {
    "launder-status": launder_status,
    "relabel-recorded": relabel_recorded,
}
"""The kinds that apply to any bundle of ``pot-zk train`` (``declare-built-in`` needs a user loop's)."""

