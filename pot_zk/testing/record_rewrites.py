"""Tamper kinds that rewrite a bundle's records (issue 13): outcomes relabelled in proofs.jsonl,
and edits after which every record agrees with every other -- manifest, dataset, commitments,
proofs, model files and a re-chained audit trail -- so that only what the auditor recomputes
or brings along can tell: the dataset leaves and initial model recomputed from the declared
config, ``--expect-root``, ``--expect-head`` (which covers the declared plan),
``--max-tolerance-ulps``, ``--min-proven`` (by default the number of steps the declared policy
selects); or, for ``break-chain``, the run's own commitment chain.

The kinds that need a fresh proof (another initial model, a raised tolerance, an update a few
ulps off) make a ``reexec`` certificate, which verify accepts like any proof type: forging is
not the point, the statement and references are. They replay the honest training from the
bundle's initial model and the declared data (an SGD run of ``pot-zk train``, with or without
momentum).
"""

from __future__ import annotations

import dataclasses
import functools
import random
import shutil
from pathlib import Path
from typing import Callable

import torch

from pot_zk.backends.certificates.revealed import Named, grid_step, write_certificate
from pot_zk.core.merkle import dataset_root
from pot_zk.backends.registry import commitments_of, spec_from_dict
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.kinds.registry import STEP_KINDS, capture_step
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import load_model, save_model
from pot_zk.bundle.dataset import batch_values
from pot_zk.data.datasets import HeldOut, holdout_indices, load_dataset, manifest_data, seeded_batches, select_part
from pot_zk.runs.evaluation import classification, evaluate
from pot_zk.runs.init_model import seeded_model
from pot_zk.testing.bundle_edit import (
    UNPROVEN,
    Finding,
    Tampering,
    expect,
    head_of,
    jsonl,
    other_felt,
    proof_mismatch,
    proved_steps,
    read_json,
    sync_audit,
    write_json,
    write_jsonl,
)

UNEXPECTED_HEAD = Finding("commitment-head", "unexpected-head")


def _proof_dir(bundle: Path, step: int) -> Path:
    return bundle / "proofs" / f"step-{step:08d}"


def _batches(manifest: dict, spec):
    mlp = STEP_KINDS.get(spec.kind).mlp(spec.architecture)
    return seeded_batches(manifest_data(manifest["dataset"]), mlp.dims[0], mlp.dims[-1], spec.batch_size, manifest["training"]["seed"], mlp.loss)[0]


def _replay(bundle: Path, count: int) -> list:
    """The first ``count`` honest steps, retrained from the initial model on the declared batches."""
    manifest = read_json(bundle / files.MANIFEST)
    spec = spec_from_dict(manifest["circuit"])
    batches = _batches(manifest, spec)
    model = STEP_KINDS.get(spec.kind).build_model(spec.architecture, None)
    model.load_state_dict(load_model(bundle / files.INITIAL_MODEL)[0])
    optimizer = _optimizer(model, spec)
    steps = []
    for record in jsonl(bundle / files.COMMITMENTS)[:count]:
        batch = batches[record["batch_index"]]
        steps.append(capture_step(model, optimizer, batch.inputs, batch.targets))
    return steps


def _optimizer(model: torch.nn.Module, spec) -> torch.optim.SGD:
    """The statement's optimizer: plain SGD, or with its momentum and weight decay."""
    return torch.optim.SGD(
        model.parameters(), lr=spec.learning_rate,
        momentum=getattr(spec.architecture, "momentum", 0.0), weight_decay=getattr(spec.architecture, "weight_decay", 0.0),
    )


def _certify(bundle: Path, step: int, spec, grid: Named) -> StepCommitment:
    """Replace the step's proof by a reexec certificate of ``grid``; returns its commitments."""
    directory = _proof_dir(bundle, step)
    shutil.rmtree(directory, ignore_errors=True)
    path, commitment = write_certificate(directory, "reexec", spec, grid, {})
    records = [r for r in jsonl(bundle / files.PROOFS) if r["step"] != step]
    records.append({
        "step": step, "status": "proved", "proof_type": "reexec", "strategy": "reexec", "attempts": 1, "error": None,
        "proof": str(path.relative_to(bundle)), "public": {"commitment": commitment.to_dict()}, "timings": None, "recorded_at": 0.0,
    })
    write_jsonl(bundle / files.PROOFS, sorted(records, key=lambda r: r["step"]))
    return commitment


def _set_w_after(commitments: list[dict], step: int, value: str) -> None:
    commitments[step]["w_after"] = value
    if step + 1 < len(commitments):
        commitments[step + 1]["w_before"] = value


def _set_after(commitments: list[dict], step: int, certified: StepCommitment) -> None:
    """The step's state after it (W_t+1; a momentum step's V_t+1 too) set to the certified one,
    and the next step's state before it to match."""
    _set_w_after(commitments, step, certified.w_after)
    if certified.v_after is not None:
        commitments[step]["v_after"] = certified.v_after
        if step + 1 < len(commitments):
            commitments[step + 1]["v_before"] = certified.v_after


def _push(grid: Named, residual: torch.Tensor, ulps: int, scale: int, rng: random.Random) -> Named:
    """W_t+1 moved ``ulps`` grid units in one entry, against that entry's honest residual."""
    index = rng.randrange(grid["w_after"].numel())
    sign = -1.0 if float(residual[index]) > 0 else 1.0
    w_after = grid["w_after"].clone()
    w_after[index] += sign * ulps * 2.0**-scale
    return {**grid, "w_after": w_after}


def _rescore(bundle: Path, held_out: HeldOut | None = None) -> None:
    """evaluations.jsonl kept consistent with edited models and steps: scores after the last step
    dropped, the initial and final model files scored anew on the held-out samples (``held_out``,
    or those the declared split holds out)."""
    manifest = read_json(bundle / files.MANIFEST)
    spec = spec_from_dict(manifest["circuit"])
    kind = STEP_KINDS.get(spec.kind)
    mlp = kind.mlp(spec.architecture)
    if held_out is None:
        _, held_out = seeded_batches(manifest_data(manifest["dataset"]), mlp.dims[0], mlp.dims[-1], spec.batch_size, manifest["training"]["seed"], mlp.loss)
    if held_out is None:
        return
    steps = len(jsonl(bundle / files.COMMITMENTS))
    scores = {r["after_step"]: r for r in jsonl(bundle / files.EVALUATIONS) if r["after_step"] < steps}
    for after_step, name in ((0, files.INITIAL_MODEL), (steps, files.FINAL_MODEL)):
        model = kind.build_model(spec.architecture, None)
        model.load_state_dict(load_model(bundle / name)[0])
        scored = classification(manifest["dataset"]["name"], mlp.loss)
        scores[after_step] = evaluate(model, held_out, mlp.loss, scored, after_step).to_record()
    write_jsonl(bundle / files.EVALUATIONS, [scores[step] for step in sorted(scores)])


def outcome_to_failed(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    records = jsonl(bundle / files.PROOFS)
    record = rng.choice([r for r in records if r["status"] == "proved"])
    record.update(status="failed", proof=None, error={"error_class": "ProofGenerationError", "message": "prover crashed"})
    write_jsonl(bundle / files.PROOFS, records)
    return Tampering("outcome-to-failed", f"step {record['step']}: proved -> failed in proofs.jsonl, audit trail untouched",
                     expect(Finding("proofs", "record-mismatch", record["step"])))


def all_failed(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """Every outcome marked failed: in proofs.jsonl only (each a record-mismatch), or with the
    audit trail rewritten to match (UNPROVEN for an auditor who asks for no proof; one who asks
    for the selected steps' proofs fails it, as in policy-edit)."""
    records = jsonl(bundle / files.PROOFS)
    for record in records:
        record.update(status="failed", proof=None, error={"error_class": "ProofGenerationError", "message": "prover crashed"})
    write_jsonl(bundle / files.PROOFS, records)
    if rng.random() < 0.5:  # the auditor who accepts no proof (--min-proven 0): UNPROVEN; by default too-few-proven
        sync_audit(bundle)
        return Tampering("all-failed", "every outcome marked failed, audit rewritten", expect(UNPROVEN), {"min_proven": 0})
    return Tampering("all-failed", "every outcome marked failed in proofs.jsonl",
                     frozenset(Finding("proofs", "record-mismatch", record["step"]) for record in records))


def policy_edit(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """every_k's k raised so that only step 0 is selected; the other steps' proofs dropped. The
    commitment head covers the declared policy (``--expect-head`` tells); so does a minimum of
    proven steps the auditor brings."""
    proven = len(proved_steps(bundle))
    manifest = read_json(bundle / files.MANIFEST)
    commitments = jsonl(bundle / files.COMMITMENTS)
    old = manifest["policy"]["k"]
    manifest["policy"]["k"] = len(commitments)
    for record in commitments:
        record["scheduled"] = record["step"] == 0
    for step in proved_steps(bundle):
        if step != 0:
            shutil.rmtree(_proof_dir(bundle, step))
    write_jsonl(bundle / files.PROOFS, [r for r in jsonl(bundle / files.PROOFS) if r["step"] == 0])
    write_jsonl(bundle / files.COMMITMENTS, commitments)
    write_json(bundle / files.MANIFEST, manifest)
    sync_audit(bundle)
    return Tampering("policy-edit", f"policy k {old} -> {len(commitments)}, {proven - 1} proofs dropped, records consistent",
                     expect(Finding("proofs", "too-few-proven")), {"min_proven": proven})


def truncate(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """Cut the run after a commitment-only step whose W_t+1 is rewritten to the final model's."""
    honest = head_of(bundle)
    commitments = jsonl(bundle / files.COMMITMENTS)
    proven = set(proved_steps(bundle))
    cut = rng.choice([c for c in range(1, len(commitments)) if c - 1 not in proven])
    final = commitments[-1]["w_after"]
    commitments = commitments[:cut]
    commitments[-1]["w_after"] = final
    for step in proven:
        if step >= cut:
            shutil.rmtree(_proof_dir(bundle, step))
    write_jsonl(bundle / files.PROOFS, [r for r in jsonl(bundle / files.PROOFS) if r["step"] < cut])
    write_jsonl(bundle / files.COMMITMENTS, commitments)
    manifest = read_json(bundle / files.MANIFEST)
    manifest["training"]["max_steps"] = cut
    write_json(bundle / files.MANIFEST, manifest)
    _rescore(bundle)
    sync_audit(bundle)
    return Tampering("truncate", f"run cut to {cut} steps, records consistent", expect(UNEXPECTED_HEAD), {"expect_head": honest})


def final_is_initial(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """The final model replaced by the initial one; the commitment-only steps after the last
    proof rewritten to lead there."""
    honest = head_of(bundle)
    commitments = jsonl(bundle / files.COMMITMENTS)
    last_proof = max(proved_steps(bundle))
    initial = commitments[0]["w_before"]
    for record in commitments[last_proof + 1:]:
        _set_w_after(commitments, record["step"], initial)
    write_jsonl(bundle / files.COMMITMENTS, commitments)
    shutil.copyfile(bundle / files.INITIAL_MODEL, bundle / files.FINAL_MODEL)
    _rescore(bundle)
    sync_audit(bundle)
    return Tampering("final-is-initial", f"final model = initial model, steps {last_proof + 1}.. rewritten",
                     expect(UNEXPECTED_HEAD), {"expect_head": honest})


def break_chain_at(bundle: Path, step: int, state: str) -> None:
    """Step ``step`` (not the first) made to start from the state step ``step - 1`` started from:
    that step's update of the weights (``state="w_before"``) or of a momentum run's velocity
    (``"v_before"``) undone between the two steps. commitments.jsonl and the audit trail are
    rewritten to agree, so of the run's own checks only the commitment chain can tell."""
    commitments = jsonl(bundle / files.COMMITMENTS)
    if step < 1 or commitments[step - 1][state] == commitments[step][state]:
        raise ValueError(f"no link to break before step {step}: step {step - 1} does not exist or did not change {state}")
    commitments[step][state] = commitments[step - 1][state]
    write_jsonl(bundle / files.COMMITMENTS, commitments)
    sync_audit(bundle)


def break_chain(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """One step made to start from the state the step before started from (:func:`break_chain_at`:
    the weights, or a momentum run's velocity, swapped back between two steps), every record
    consistent: only the commitment chain tells (and, at a proven step, its proof)."""
    commitments = jsonl(bundle / files.COMMITMENTS)
    step = rng.randrange(1, len(commitments))
    state = rng.choice([name for name in ("w_before", "v_before") if name in commitments[step]])
    break_chain_at(bundle, step, state)
    expected = {Finding("commitment-chain", "chain-broken", step)}
    if step in proved_steps(bundle):
        expected.add(proof_mismatch(bundle, step))
    return Tampering("break-chain", f"step {step} starts from step {step - 1}'s {state}, records consistent", frozenset(expected))


def _replace_leaf(bundle: Path, batch_index: int, leaf: str) -> str:
    dataset = read_json(bundle / files.DATASET)
    dataset["leaves"][batch_index] = leaf
    dataset["root"] = dataset_root(dataset["leaves"], (dataset.get("holdout") or {}).get("commitment"))
    write_json(bundle / files.DATASET, dataset)
    manifest = read_json(bundle / files.MANIFEST)
    manifest["dataset"]["root"] = dataset["root"]
    write_json(bundle / files.MANIFEST, manifest)
    return dataset["root"]


def _root_options(bundle: Path, pin_root: bool) -> dict:
    """The auditor's options for a rewritten data set: none (the leaves of a built-in data set are
    recomputed) or ``--expect-root`` with the honest root as well."""
    return {"expect_root": read_json(bundle / files.MANIFEST)["dataset"]["root"]} if pin_root else {}


def _root_kind(kind: str, pin_root: bool) -> str:
    return f"{kind}-expect-root" if pin_root else kind


def _root_findings(pin_root: bool) -> frozenset[Finding]:
    """A built-in data set's leaves are recomputed whatever the options; a pinned root is compared too."""
    found = {Finding("dataset-root", "dataset-root-mismatch")}
    return frozenset(found | {Finding("dataset-root", "unexpected-root")} if pin_root else found)


def poison_batch(bundle: Path, rng: random.Random, other: Path | None, *, pin_root: bool = False) -> Tampering:
    options = _root_options(bundle, pin_root)
    commitments = jsonl(bundle / files.COMMITMENTS)
    proven = set(proved_steps(bundle))
    proven_batches = {r["batch_index"] for r in commitments if r["step"] in proven}
    step = rng.choice([r["step"] for r in commitments if r["batch_index"] not in proven_batches])
    index = commitments[step]["batch_index"]
    poisoned = other_felt(rng, commitments[step]["batch"])
    for record in commitments:
        if record["batch_index"] == index:
            record["batch"] = poisoned
    write_jsonl(bundle / files.COMMITMENTS, commitments)
    _replace_leaf(bundle, index, poisoned)
    sync_audit(bundle)
    return Tampering(_root_kind("poison-batch", pin_root), f"step {step}: batch {index} replaced, leaf and root rewritten",
                     _root_findings(pin_root), options)


def splice_step(bundle: Path, rng: random.Random, other: Path | None, *, pin_root: bool = False) -> Tampering:
    """A proven step of another honest run (same statement) put in place of a proven step; its
    neighbours (commitment-only) and the dataset leaf and root rewritten to match."""
    assert other is not None, "splicing needs another run's bundle"
    options = _root_options(bundle, pin_root)
    commitments = jsonl(bundle / files.COMMITMENTS)
    proven = set(proved_steps(bundle))
    step = rng.choice([s for s in proven if 0 < s < len(commitments) - 1 and s - 1 not in proven and s + 1 not in proven])
    source = rng.choice(proved_steps(other))
    spliced = next(r for r in jsonl(other / files.COMMITMENTS) if r["step"] == source)
    commitments[step].update({key: spliced[key] for key in ("w_before", "batch", "w_after")})
    commitments[step - 1]["w_after"] = spliced["w_before"]
    commitments[step + 1]["w_before"] = spliced["w_after"]
    write_jsonl(bundle / files.COMMITMENTS, commitments)
    shutil.rmtree(_proof_dir(bundle, step))
    shutil.copytree(_proof_dir(other, source), _proof_dir(bundle, step))
    record = next(r for r in jsonl(other / files.PROOFS) if r["step"] == source and r["status"] == "proved")
    record.update(step=step, proof=(Path("proofs") / f"step-{step:08d}" / Path(record["proof"]).name).as_posix())
    write_jsonl(bundle / files.PROOFS, [r for r in jsonl(bundle / files.PROOFS) if r["step"] != step] + [record])
    _replace_leaf(bundle, commitments[step]["batch_index"], spliced["batch"])
    sync_audit(bundle)
    return Tampering(_root_kind("splice-step", pin_root), f"step {step} := step {source} of {other.name}, neighbours, leaf and root rewritten",
                     _root_findings(pin_root), options)


def other_initial_model(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """Another initial model than the declared seed gives, with a fresh valid proof of step 0
    on the declared batch."""
    manifest = read_json(bundle / files.MANIFEST)
    spec = spec_from_dict(manifest["circuit"])
    commitments = jsonl(bundle / files.COMMITMENTS)
    seed = manifest["training"]["seed"] + 1 + rng.randrange(1000)
    model = seeded_model(spec, seed)
    save_model(model.state_dict(), bundle / files.INITIAL_MODEL)
    batch = _batches(manifest, spec)[commitments[0]["batch_index"]]
    step = capture_step(model, _optimizer(model, spec), batch.inputs, batch.targets)
    certified = _certify(bundle, 0, spec, grid_step(step, spec))
    if certified.batch != commitments[0]["batch"]:
        raise RuntimeError("the replayed batch does not commit to the declared leaf")
    commitments[0]["w_before"] = certified.w_before
    _set_after(commitments, 0, certified)
    write_jsonl(bundle / files.COMMITMENTS, commitments)
    _rescore(bundle)
    sync_audit(bundle)
    return Tampering("other-initial-model", f"initial model from seed {seed}, step 0 re-proven (reexec)",
                     expect(Finding("initial-model", "initial-model-mismatch", 0)))


def holdout_seed_split(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """review31: the held-out set declared with another seed than the split the batches were cut
    after (the data set's seed, pinned in the manifest; digits had none: it took the held-out
    seed), so most "held-out" samples were trained on; its commitment, the root, the scores and
    the audit trail rewritten to agree."""
    manifest, dataset = read_json(bundle / files.MANIFEST), read_json(bundle / files.DATASET)
    spec = spec_from_dict(manifest["circuit"])
    mlp = STEP_KINDS.get(spec.kind).mlp(spec.architecture)
    declared = manifest["dataset"]
    data = manifest_data(declared)
    declared["seed"] = data.seed
    seed = data.seed + 1 + rng.randrange(1000)
    inputs, targets = load_dataset(data.name, mlp.dims[0], mlp.dims[-1], data.num_samples, data.seed, mlp.loss)
    inputs, targets = select_part(inputs, targets, data.part)
    indices = holdout_indices(len(inputs), data.holdout, seed)
    picked = torch.tensor(indices)
    held_out = HeldOut(inputs[picked], targets[picked], tuple(indices), data.holdout, seed, len(inputs))
    commitment = commitments_of(spec).commit(batch_values(held_out.inputs, held_out.targets), "held-out samples")
    for entry in (declared["holdout"], dataset["holdout"]):
        entry.update(seed=seed, commitment=commitment)
    dataset["holdout"]["indices"] = indices
    declared["root"] = dataset["root"] = dataset_root(list(dataset["leaves"]), commitment)
    write_json(bundle / files.MANIFEST, manifest)
    write_json(bundle / files.DATASET, dataset)
    _rescore(bundle, held_out)
    sync_audit(bundle)
    return Tampering("holdout-seed-split", f"held-out set declared with seed {seed}, the batches cut after seed {data.seed}'s split",
                     expect(Finding("dataset-root", "trained-on-held-out")))


def _recertify(bundle: Path, rng: random.Random, spec, ulps: int) -> int:
    """Every proven step re-proven (reexec) under ``spec``; one of them (followed by a
    commitment-only step) with W_t+1 pushed ``ulps`` grid units off the honest update.
    Returns that step."""
    commitments = jsonl(bundle / files.COMMITMENTS)
    proven = proved_steps(bundle)
    pushed = rng.choice([s for s in proven if s + 1 < len(commitments) and s + 1 not in proven])
    steps = _replay(bundle, max(proven) + 1)
    for step in proven:
        grid = grid_step(steps[step], spec)
        if commitments_of(spec).commit(grid["w_after"], "weights after the step") != commitments[step]["w_after"]:
            raise RuntimeError(f"replaying step {step} does not reproduce its recorded W_t+1")
        if step == pushed:
            grid = _push(grid, spec.residual(grid), ulps, spec.scale, rng)
        _set_after(commitments, step, _certify(bundle, step, spec, grid))
    write_jsonl(bundle / files.COMMITMENTS, commitments)
    return pushed


def raise_tolerance(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    manifest = read_json(bundle / files.MANIFEST)
    spec = dataclasses.replace(spec_from_dict(manifest["circuit"]), tolerance_ulps=64)
    manifest.update(circuit=spec.to_dict(), circuit_id=spec.circuit_id())
    write_json(bundle / files.MANIFEST, manifest)
    step = _recertify(bundle, rng, spec, 50)
    sync_audit(bundle)
    return Tampering("raise-tolerance", f"tolerance 64 declared; step {step}'s update 50 ulps off, re-proven",
                     expect(Finding("statement", "tolerance-above-limit")))


def drift_within_tolerance(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """3 ulps off in a proven step: inside the declared tolerance (4), so only an auditor who
    accepts no more than 2 ulps rejects the run -- the statement itself allows the drift."""
    spec = spec_from_dict(read_json(bundle / files.MANIFEST)["circuit"])
    step = _recertify(bundle, rng, spec, 3)
    sync_audit(bundle)
    return Tampering("drift-within-tolerance", f"step {step}'s update 3 ulps off, re-proven",
                     expect(Finding("statement", "tolerance-above-limit")), {"max_tolerance_ulps": 2})


REWRITE_KINDS: dict[str, Callable[[Path, random.Random, Path | None], Tampering]] = {
    "outcome-to-failed": outcome_to_failed,
    "all-failed": all_failed,
    "policy-edit": policy_edit,
    "truncate": truncate,
    "final-is-initial": final_is_initial,
    "break-chain": break_chain,
    "poison-batch": poison_batch,
    "poison-batch-expect-root": functools.partial(poison_batch, pin_root=True),
    "splice-step": splice_step,
    "splice-step-expect-root": functools.partial(splice_step, pin_root=True),
    "other-initial-model": other_initial_model,
    "holdout-seed-split": holdout_seed_split,
    "raise-tolerance": raise_tolerance,
    "drift-within-tolerance": drift_within_tolerance,
}
