"""``pot-zk verify`` on a run whose loop committed each batch as it came (``pot_zk.track``:
``training.batches: streamed``): each step records its batch commitment and, for a declared
data set, its samples' positions in it; the manifest declares the data set's sample root
(:mod:`pot_zk.data.samples`).

* a built-in data set (digits, synthetic) is recomputed from its declaration (name, part,
  sample count and seed; the targets of the statement's loss): its sample root must be the
  declared one (``dataset-root-mismatch``) and every step's batch commitment the commitment of
  the samples it names, in order (``batch-not-in-dataset``): a batch swapped for one outside
  the data set, or for other samples of it than recorded, fails;
* a step naming a sample of the declared held-out set fails (``trained-on-held-out``): the
  held-out scores verify recomputes would be scores on training data;
* the loop's own data set: the root is the trainer's unless the auditor pins it
  (``--expect-root``, :func:`pot_zk.verify.references.check_dataset_reference`); verify checks
  that every step names ``batch_size`` samples of it (``batch-samples-malformed``), not that the
  batch holds them (the samples are the trainer's, and no proof opens them): ``data-unopened``
  unless the auditor accepts it (``--accept-setting data=unopened``);
* undeclared data: every step's batch is committed and nothing else: ``data-undeclared``
  unless the auditor accepts it (``--accept-setting data=undeclared``); a held-out set declared
  beside it fails (``holdout-without-data``: nothing shows it was held out of training).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from pot_zk.backends.registry import commitments_of
from pot_zk.data.datasets import BUILT_IN, holdout_indices, load_dataset, manifest_data, select_part
from pot_zk.data.samples import sample_root
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.registry import STEP_KINDS

STREAMED = "streamed"


def streamed_batches(manifest: Mapping[str, Any]) -> bool:
    """Whether the run committed its batches as they came (no declared batch leaves)."""
    return (manifest.get("training") or {}).get("batches") == STREAMED


def check_streamed_batches(
    report, manifest: Mapping[str, Any], dataset_file: Mapping[str, Any], by_step: Mapping[int, Mapping[str, Any]], spec: Any, accepted: Mapping[str, str]
) -> None:
    """The checks of the module docstring, as findings of ``dataset-root`` and ``steps``;
    ``accepted``: the auditor's ``--accept-setting`` (``data=undeclared``, ``data=unopened``)."""
    declared = manifest["dataset"]
    root, size, name = declared.get("root"), declared.get("size"), declared.get("name")
    if dataset_file.get("root") != root or dataset_file.get("size") != size or declared.get("num_batches") is not None:
        report.fail("dataset-root", "root-mismatch", "dataset.json does not declare the manifest's sample root and size")
        return
    if root is None:
        wrong = [step for step, record in sorted(by_step.items()) if record.get("samples") is not None or record.get("batch_index") is not None]
        for step in wrong:
            report.fail("steps", "batch-not-in-dataset", "the step names samples of a data set the run does not declare", step)
        report.references["dataset"] = "undeclared by the training loop"
        if declared.get("holdout") is not None or dataset_file.get("holdout") is not None:  # a review: scores on training data
            report.fail(
                "holdout", "holdout-without-data",
                "the run declares a held-out set but no data set it trained on: nothing shows its samples were held out of training",
            )
        if accepted.get("data") != "undeclared":
            report.fail(
                "dataset-root", "data-undeclared",
                "the training loop declared no data set: each step's batch is committed, not checked against any data; "
                "accept that with --accept-setting data=undeclared",
            )
        else:
            report.notes.append("data: undeclared by the training loop (you accepted it); each step's batch is committed, not checked against any data set")
        return
    malformed = [
        step for step, record in sorted(by_step.items())
        if record.get("batch_index") is not None or not _well_formed(record.get("samples"), spec.batch_size, size)
    ]
    for step in malformed:
        report.fail("steps", "batch-samples-malformed", f"the step does not name {spec.batch_size} samples of the declared {size}", step)
    held_out = held_out_positions(declared)
    for step, record in sorted(by_step.items()):
        if step not in malformed and held_out.intersection(record["samples"]):
            report.fail("steps", "trained-on-held-out", "the step names samples of the declared held-out set", step)
    _note_sample_use(report, [record["samples"] for step, record in sorted(by_step.items()) if step not in malformed], size, held_out)
    if name not in BUILT_IN:
        words = (
            f"the training loop's own data ({size} samples, root {root}): each step names the samples it drew, which verify cannot "
            "open (they are the trainer's), so the root you pin (--expect-root) fixes the data set, not that each batch holds "
            "the samples it names"
        )
        if accepted.get("data") != "unopened":
            report.fail("dataset-root", "data-unopened", f"{words}; accept that with --accept-setting data=unopened")
        else:
            report.notes.append(f"data: {words} (you accepted it)")
        return
    try:
        inputs, targets = _built_in(declared, spec)
    except (ConfigurationError, ValueError, TypeError, RuntimeError) as exc:  # a declaration no data set fits
        report.fail("dataset-root", "dataset-root-mismatch", f"the declared data set cannot be recomputed: {getattr(exc, 'message', exc)}")
        return
    report.references["dataset_leaves"] = f"recomputed from the declared data set ({name}, {len(inputs)} samples)"
    if len(inputs) != size or sample_root(inputs, targets) != root:
        report.fail("dataset-root", "dataset-root-mismatch", f"the declared {name} samples recomputed from the declaration do not have the declared root")
        return
    scheme = commitments_of(spec)
    outside = []
    for step, record in sorted(by_step.items()):
        if step in malformed:
            continue
        chosen = torch.tensor(record["samples"], dtype=torch.long)
        values = torch.cat([inputs[chosen].reshape(-1), targets[chosen].reshape(-1)]).double()
        if scheme.commit(values, f"step {step}'s samples") != record.get("batch"):
            outside.append(step)
            report.fail("steps", "batch-not-in-dataset", f"the step's batch is not the {name} samples it names", step)
    if not outside and not malformed:
        report.passed.append("dataset-samples")


def _note_sample_use(report, batches: list[list[int]], size: int, held_out: set[int]) -> None:
    """How much of the data set the steps drew (review36: a loop trained one sample over and over,
    ``[s, s]`` at every step, and verify said only ``passed: dataset-samples``)."""
    if not batches:
        return
    distinct = len(set().union(*map(set, batches)))
    repeating = sum(1 for batch in batches if len(set(batch)) < len(batch))
    report.notes.append(
        f"data use: the {len(batches)} steps' batches name {distinct} distinct sample{'' if distinct == 1 else 's'} of the {size - len(held_out)} the data set "
        f"has outside its held-out set{f'; {repeating} of the batches name a sample more than once' if repeating else ''} "
        "(the training loop chose them: verify checks the samples each step names, not which it should have drawn)"
    )


def held_out_positions(declared: Mapping[str, Any]) -> set[int]:
    """The positions of the declared held-out set in the data set the steps' samples index (the
    seeded choice of its fraction and seed: the holdout check fails a malformed or other one)."""
    holdout = declared.get("holdout")
    if not isinstance(holdout, dict):
        return set()
    try:
        return set(holdout_indices(int(holdout["of"]), float(holdout["fraction"]), int(holdout["seed"])))
    except (KeyError, TypeError, ValueError, OverflowError):  # review49: "of": 1e999
        return set()


def _well_formed(samples: Any, batch_size: int, size: Any) -> bool:
    return (
        isinstance(samples, list) and len(samples) == batch_size and isinstance(size, int)
        and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < size for i in samples)
    )


def _built_in(declared: Mapping[str, Any], spec: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The declared built-in data set's samples (its part), with the targets of the statement's loss."""
    if declared["name"] == "synthetic" and not all(isinstance(declared.get(key), int) for key in ("num_samples", "seed")):
        raise ConfigurationError("the manifest declares synthetic data without its num_samples and seed", key="dataset")
    data = manifest_data(declared)
    mlp = STEP_KINDS.get(spec.kind).mlp(spec.architecture)
    inputs, targets = load_dataset(data.name, mlp.dims[0], mlp.dims[-1], data.num_samples, data.seed, mlp.loss)
    return select_part(inputs, targets, data.part)
