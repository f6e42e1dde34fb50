"""Tests from review22's mutation testing of `pot-zk verify`'s checks (branch review22,
review/mutations/results.md): each kills the mutation its docstring names (a check removed or
weakened in pot_zk/verify/ with every other test still passing) and passes without it. Each
asserts what an auditor sees: the finding verify names on a tampered bundle. No prover runs:
the bundles are test_verify_each_check.py's (selected steps certified by freivalds) or a
zk-groth16 run trained with proving disabled."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.runs import bundle as files
from pot_zk.runs.train import train
from pot_zk.testing.bundle_edit import audit_records, jsonl, read_json, rewrite_audit, sync_audit, write_json, write_jsonl
from pot_zk.verify.run import verify_run

from test_verify_each_check import honest  # noqa: F401 -- that module's fixture (4 of 25 batches, steps 0 and 2 certified, a held-out set)


def _named(report) -> set[tuple[str, str, int | None]]:
    return {(f.check, f.reason, f.step) for f in report.findings}


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def _edit_commitments(run: Path, change) -> None:
    records = jsonl(run / files.COMMITMENTS)
    change(records)
    write_jsonl(run / files.COMMITMENTS, records)


# --- audit-chain (run.py) ---

@pytest.mark.parametrize("status", ["interrupted", "halted", "aborted", "stopped"])
def test_a_training_that_ended_other_than_completed_is_not_completed(honest, tmp_path, status):
    """Mutation R04: `!= "completed"` weakened to `not in ("completed", "interrupted")`: only
    "halted" was tested, so a training whose run.end says interrupted passed as completed."""
    run = _copy(honest, tmp_path)
    events = audit_records(run)
    next(e for e in reversed(events) if e["event"] == "run.end")["status"] = status
    rewrite_audit(run, events)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("audit-chain", "run-not-completed", None) in _named(report), report.summary()
    assert "audit-chain" not in report.passed


# --- dataset-root (run_checks.py) ---

def test_a_leaf_edited_under_the_declared_root_is_a_root_mismatch(honest, tmp_path):
    """Mutation C02: root_ok without `dataset_root(leaves, holdout) ==`: dataset.json's leaves
    were never hashed to the root; a seeded built-in run still fails its recomputation, but the
    finding that the leaves do not hash to the declared root (all a user loop's own data has) was gone."""
    run = _copy(honest, tmp_path)
    dataset = read_json(run / files.DATASET)
    used = {r["batch_index"] for r in jsonl(run / files.COMMITMENTS)}
    unused = next(i for i in range(len(dataset["leaves"])) if i not in used)
    dataset["leaves"][unused] = dataset["leaves"][(unused + 1) % len(dataset["leaves"])]
    write_json(run / files.DATASET, dataset)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("dataset-root", "root-mismatch", None) in _named(report), report.summary()
    assert "dataset-root" not in report.passed


# --- steps (run_checks.py) ---

def test_more_steps_than_the_declared_plan_is_a_step_count_finding(honest, tmp_path):
    """Mutation C07: `len(steps) != expected_count` weakened to `<`: only a run cut short was
    tested; steps beyond the declared plan (max_steps 4), each on its seeded batch and chained
    on, were not named."""
    from pot_zk.data.datasets import epoch_order

    run = _copy(honest, tmp_path)
    manifest, leaves = read_json(run / files.MANIFEST), read_json(run / files.DATASET)["leaves"]
    order = epoch_order(len(leaves), 0, int(manifest["training"]["seed"]))

    def extend(records: list[dict]) -> None:
        last = records[-1]
        for step in (4, 5):
            records.append({**last, "step": step, "batch_index": order[step], "batch": leaves[order[step]], "w_before": last["w_after"],
                            "w_after": last["w_after"], "scheduled": step % 2 == 0})

    _edit_commitments(run, extend)
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("steps", "step-count", None) in _named(report), report.summary()


@pytest.mark.parametrize("field", ["batch_index", "samples"])
def test_a_commitment_records_batch_index_or_samples_edited_alone_differ_from_the_audit_trail(honest, tmp_path, field):
    """Mutations C12, C13: "batch_index" or "samples" dropped from the fields the audit agreement
    compares: a record's batch position or sample list edited without the audit trail was not
    named audit-mismatch (only the learning rate, scheduled and a dropped event were tested)."""
    if field == "batch_index":
        run = _copy(honest, tmp_path)
        _edit_commitments(run, lambda records: records[1].update(batch_index=records[0]["batch_index"]))
    else:
        from test_track import _synthetic_run

        run = _synthetic_run(tmp_path)
        _edit_commitments(run, lambda records: records[1].update(samples=records[0]["samples"]))
    report = verify_run(run, cache_dir=tmp_path / "cache", accept_settings={"batch_order": "recorded"} if field == "samples" else None)
    assert ("steps", "audit-mismatch", 1) in _named(report), report.summary()


# --- policy (run_checks.py) ---

def test_a_selected_step_recorded_as_not_scheduled_is_a_policy_mismatch(honest, tmp_path):
    """Mutation C22: the policy check made one-sided (`scheduled and s not in selected`): only a
    step marked scheduled that the policy does not select was tested, not a selected step (0)
    marked unscheduled with its proof dropped."""
    run = _copy(honest, tmp_path)
    _edit_commitments(run, lambda records: records[0].update(scheduled=False))
    write_jsonl(run / files.PROOFS, [r for r in jsonl(run / files.PROOFS) if r["step"] != 0])
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("policy", "policy-mismatch", 0) in _named(report), report.summary()


# --- base-model (run_checks.py) ---

def test_an_sgd_step_recording_a_base_is_a_base_mismatch(honest, tmp_path):
    """Mutation C28: check_base's `any(r.get("base") is not None ...)` dropped: only a manifest
    declaring a base on an SGD run was tested, not a step record carrying one."""
    run = _copy(honest, tmp_path)
    _edit_commitments(run, lambda records: records[2].update(base="0x" + "12" * 32))
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("base-model", "base-mismatch", None) in _named(report), report.summary()


# --- proofs: record-mismatch (run_checks.py) ---

def test_an_audit_trail_whose_last_outcome_of_a_step_is_not_proofs_jsonls_is_a_record_mismatch(honest, tmp_path):
    """Mutation C29: `ours[-1] != theirs[-1]` dropped from check_outcomes_recorded: a later
    `failed` outcome in the audit trail (proofs.jsonl keeping the earlier `proved` one) was
    accepted, every outcome of proofs.jsonl being among the trail's."""
    run = _copy(honest, tmp_path)
    events = audit_records(run)
    result = next(e for e in events if e.get("event") == "proof.result" and e.get("step") == 0)
    end = next(i for i, e in enumerate(events) if e["event"] == "run.end")
    events.insert(end, {**result, "status": "failed"})
    rewrite_audit(run, events)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("proofs", "record-mismatch", 0) in _named(report), report.summary()


# --- commitment-chain: optimizer state starts at zero (run_checks.py) ---

@pytest.fixture(scope="module")
def adamw(tmp_path_factory) -> Path:
    """A zk-groth16 AdamW run trained with proving disabled (3 steps: weights, both moments and
    the step count committed and chained)."""
    root = tmp_path_factory.mktemp("adamw")
    overrides = [
        "prover=groth16", "mode=disabled", "model=tiny_mlp", "model.loss=cross_entropy", "data=synthetic", "optimizer.name=adamw",
        "train.learning_rate=0.01", "train.batch_size=2", "train.max_steps=3", "train.progress=false",
        f"run_dir={root / 'run'}", f"cache_dir={root / 'cache'}",
    ]
    train(compose_config(overrides), sleep=lambda seconds: None)
    return root / "run"


@pytest.mark.parametrize("state", ["m_before", "v_before", "t_before"])
def test_each_adam_state_of_the_first_step_must_start_at_zero(adamw, tmp_path, state):
    """Mutation C20: state-not-zero checked for the first optimizer state only (`chained[1:2]`):
    tested for a momentum velocity (one state) and nowhere for Adam's second moment or step
    count, so a first step starting from a v_0 or t_0 of the trainer's choice passed."""
    run = _copy(adamw, tmp_path)
    assert verify_run(run, cache_dir=tmp_path / "cache").ok
    _edit_commitments(run, lambda records: records[0].update({state: records[0][state.replace("before", "after")]}))
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("commitment-chain", "state-not-zero", 0) in _named(report), report.summary()


# --- proofs: a step's last outcome is its outcome (proofs.py) ---

def _parked_then_proven(run: Path, step: int) -> None:
    """Step ``step``'s outcome recorded as `pot-zk prove-pending` leaves it: parked, then proved
    (proofs.jsonl and the audit trail's proof.result records alike)."""
    records = jsonl(run / files.PROOFS)
    proved = next(r for r in records if r["step"] == step)
    parked = {**proved, "status": "parked", "proof": None, "proof_type": None, "strategy": "zk-halo2"}
    write_jsonl(run / files.PROOFS, [parked if r is proved else r for r in records] + [proved])
    events = audit_records(run)
    result = next(e for e in events if e.get("event") == "proof.result" and e.get("step") == step)
    events.insert(events.index(result), {**result, "status": "parked", "proof_type": None, "strategy": "zk-halo2"})
    rewrite_audit(run, events)


def test_a_step_parked_then_proven_by_prove_pending_counts_as_proven(honest, tmp_path):
    """Mutation P08: `final[step] = record` made `final.setdefault(step, record)` (a step's first
    outcome taken as final): no test verifies a run whose parked step `pot-zk prove-pending`
    proved later (proofs.jsonl and the audit trail: parked, then proved), which then failed."""
    run = _copy(honest, tmp_path)
    _parked_then_proven(run, 2)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert report.verdict == "VERIFIED" and report.verified_steps == {0, 2}, report.summary()


def test_a_challenged_step_parked_then_proven_answers_the_challenge(honest, tmp_path):
    """Mutation CH07: check_challenge answering each challenged step with its first outcome
    (`reversed(proofs)`): a challenged step parked, then proven, was named challenge-unanswered;
    no test challenged a step with more than one outcome."""
    from pot_zk.core.challenge import new_challenge
    from pot_zk.runs.bundle import RunBundle
    from pot_zk.verify.trust import TrustStore

    run = _copy(honest, tmp_path)
    _parked_then_proven(run, 2)
    bundle = RunBundle.open(run)
    challenge = next(c for c in (new_challenge(bundle.manifest(), bundle.commitments(), 2, f"{n:02x}") for n in range(256)) if c.steps == (0, 2))
    TrustStore.in_cache(tmp_path / "cache").record_challenge(challenge)
    report = verify_run(run, cache_dir=tmp_path / "cache", challenge=challenge)
    assert report.verdict == "VERIFIED" and "challenge" in report.passed, report.summary()


def _synthetic_loop(tmp_path: Path) -> Path:
    """A user loop (proven_training, no proving) on three batches of the built-in synthetic set,
    declared by name: its dataset.json names each batch's samples, [[0, 5], [3, 8], [9, 14]]."""
    import torch

    from pot_zk.data.datasets import load_dataset
    from pot_zk.hooks import proven_training
    from pot_zk.kinds.mlp import MlpArchitecture

    inputs, targets = load_dataset("synthetic", 4, 2, 16, 0, "mse")
    batches = [(inputs[[i, i + 5]], targets[[i, i + 5]]) for i in (0, 3, 9)]
    torch.manual_seed(3)
    model = MlpArchitecture((4, 3, 2)).build()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run = tmp_path / "run"
    overrides = ["prover=groth16", "mode=disabled", "data.num_samples=16", f"cache_dir={tmp_path / 'cache'}"]
    with proven_training(model, optimizer, batches, run_dir=run, overrides=overrides, dataset_name="synthetic") as handle:
        for index in (2, 0, 1):
            handle.step(*batches[index])
    assert read_json(run / files.DATASET)["samples"] == [[0, 5], [3, 8], [9, 14]]
    return run


def _loop_pins(run: Path) -> dict:
    return {"accept_settings": {"batch_order": "recorded"}, "expect_root": read_json(run / files.MANIFEST)["dataset"]["root"],
            "expect_initial": jsonl(run / files.COMMITMENTS)[0]["w_before"]}


def test_a_user_loops_batch_naming_a_held_out_sample_by_a_negative_position_is_refused(tmp_path):
    """Mutation RC05: `0 <= i < len(inputs)` weakened to `i < len(inputs)` in _check_samples: a
    negative position names a sample from the end (torch indexing), so a batch of held-out sample
    3 written as 3 - 16 = -13 had the right leaf and missed the held-out check; no test named a
    negative position."""
    from pot_zk.data.datasets import holdout_indices

    run = _synthetic_loop(tmp_path)
    manifest = read_json(run / files.MANIFEST)
    seed = next(seed for seed in range(100) if 3 in holdout_indices(16, 0.25, seed) and not set(holdout_indices(16, 0.25, seed)) & {0, 5, 8, 9, 14})
    manifest["dataset"]["holdout"] = {"fraction": 0.25, "seed": seed, "of": 16, "samples": 4, "commitment": "0x00"}
    write_json(run / files.MANIFEST, manifest)
    pins = _loop_pins(run)
    held = verify_run(run, cache_dir=tmp_path / "cache", **pins)
    assert ("dataset-root", "trained-on-held-out", None) in _named(held), held.summary()
    dataset = read_json(run / files.DATASET)
    dataset["samples"][1] = [3 - 16, 8]  # the same sample, so the same leaf
    write_json(run / files.DATASET, dataset)
    aliased = verify_run(run, cache_dir=tmp_path / "cache", **pins)
    assert ("dataset-root", "dataset-samples", None) in _named(aliased), aliased.summary()


def test_a_user_loops_batch_of_another_sample_count_is_refused_though_its_leaf_commits_to_them(tmp_path):
    """Mutation RC11: `len(s) == spec.batch_size` dropped from _check_samples: a batch naming three
    samples (its leaf, the step's batch commitment and the root rewritten to commit to exactly
    those three) passed; the statement's batches hold two."""
    from pot_zk.backends.registry import commitments_of, spec_from_dict
    from pot_zk.bundle.dataset import sampled_leaves
    from pot_zk.data.datasets import load_dataset

    run = _synthetic_loop(tmp_path)
    manifest, dataset = read_json(run / files.MANIFEST), read_json(run / files.DATASET)
    inputs, targets = load_dataset("synthetic", 4, 2, 16, 0, "mse")
    dataset["samples"][1] = [3, 8, 12]
    [leaf] = sampled_leaves([dataset["samples"][1]], inputs, targets, commitments_of(spec_from_dict(manifest["circuit"])))
    old, dataset["leaves"][1] = dataset["leaves"][1], leaf
    report = _with_leaf_replaced(run, manifest, dataset, old, leaf, tmp_path / "cache")
    assert ("dataset-root", "dataset-samples", None) in _named(report), report.summary()


def test_a_user_loops_poisoned_batch_whose_samples_dataset_json_leaves_out_is_refused(tmp_path):
    """Mutation RC12: `len(samples) != len(leaves)` dropped from _check_samples: the leaves were
    zipped with the sample lists, so a last leaf without one was never checked. A poisoned batch
    (not samples of the declared set; its leaf, the step's batch commitment and the root the
    trainer hands over rewritten) with its sample list left out passed."""
    run = _synthetic_loop(tmp_path)
    manifest, dataset = read_json(run / files.MANIFEST), read_json(run / files.DATASET)
    old, poisoned = dataset["leaves"][2], "0x" + "2a" * 31 + "01"
    dataset["leaves"][2] = poisoned
    dataset["samples"] = dataset["samples"][:2]
    report = _with_leaf_replaced(run, manifest, dataset, old, poisoned, tmp_path / "cache")
    assert ("dataset-root", "dataset-samples", None) in _named(report), report.summary()


def _with_leaf_replaced(run, manifest: dict, dataset: dict, old: str, new: str, cache):
    """verify's report of ``run`` once ``dataset`` (its leaf ``old`` already replaced by ``new``)
    is written with the root of its leaves, in the manifest too, every step on ``old`` moved to
    ``new`` and the audit trail re-chained: a cheater's consistent rewrite."""
    from pot_zk.core.merkle import dataset_root

    dataset["root"] = manifest["dataset"]["root"] = dataset_root(dataset["leaves"], None)
    write_json(run / files.DATASET, dataset)
    write_json(run / files.MANIFEST, manifest)
    _edit_commitments(run, lambda records: [r.update(batch=new) for r in records if r["batch"] == old])
    sync_audit(run)
    return verify_run(run, cache_dir=cache, **_loop_pins(run))


# --- holdout (holdout.py) ---

def test_a_held_out_commitment_that_differs_between_manifest_and_dataset_json_is_a_holdout_mismatch(honest, tmp_path):
    """Mutation H01: "commitment" dropped from the held-out fields compared between manifest.json
    and dataset.json (only the seed, and a malformed fraction, were tested)."""
    run = _copy(honest, tmp_path)
    dataset = read_json(run / files.DATASET)
    dataset["holdout"]["commitment"] = dataset["leaves"][0]
    write_json(run / files.DATASET, dataset)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("holdout", "holdout-mismatch", None) in _named(report), report.summary()


def test_a_held_out_sample_count_other_than_the_seeded_choices_is_named(honest, tmp_path):
    """Mutation H04: `declared.get("samples") != len(expected)` dropped: a held-out set declared
    (in both files) with one sample fewer than its seeded positions was not named holdout-indices
    (only other positions were tested)."""
    run = _copy(honest, tmp_path)
    for name in (files.MANIFEST, files.DATASET):
        data = read_json(run / name)
        holdout = data["dataset"]["holdout"] if name == files.MANIFEST else data["holdout"]
        holdout["samples"] -= 1
        write_json(run / name, data)
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("holdout", "holdout-indices", None) in _named(report), report.summary()


# --- verify-step --keys (step.py) ---

def _recorded_keys(directory: Path, trust_dir: Path, circuit_id: str, role: str, proof_type: str = "zk-halo2"):
    """A key set of one file (``role``) made for ``circuit_id`` and recorded in the trust store
    under ``trust_dir`` (as `pot-zk keys new` records the keys it makes)."""
    from pot_zk.backends.keys import KEYS_FILE, KEYS_FORMAT, KeySet, file_sha256
    from pot_zk.verify.trust import TrustStore

    directory.mkdir()
    (directory / "key.bin").write_bytes(b"the auditor's key material")
    write_json(directory / KEYS_FILE, {
        "format": KEYS_FORMAT, "proof_type": proof_type, "backend": "ezkl", "statements": [{"circuit_id": circuit_id, "circuit": {}}],
        "schedule": None, "files": {role: "key.bin"}, "sha256": {role: file_sha256(directory / "key.bin")}, "handover": [],
        "trainer_overrides": [], "details": {}, "generated_by": "the auditor", "generated_at": "now",
    })
    keys = KeySet.load(directory)
    TrustStore.in_cache(trust_dir).record_keys(keys)
    return keys


def _step_keys_refusal(spec, proof_type: str, keys, cache: Path) -> str:
    from pot_zk.exceptions import ProofVerificationError
    from pot_zk.backends.base import VerifierOptions
    from pot_zk.verify.step import auditor_step_keys

    with pytest.raises(ProofVerificationError) as refused:
        auditor_step_keys(spec, proof_type, keys, VerifierOptions(cache, cache / "work"))
    return refused.value.reason


def test_verify_step_refuses_the_auditors_keys_of_another_proof_type_by_name(honest, tmp_path):
    """Mutation S03: auditor_step_keys's `keys.proof_type != proof_type` check removed: a zk-halo2
    key set holding a file under the role "vk" then served as the key directory of a zk-groth16
    proof; no test gave verify-step keys of another proof type (keys-backend-mismatch)."""
    from pot_zk.backends.registry import spec_from_dict

    spec = spec_from_dict(read_json(honest / files.MANIFEST)["circuit"])
    keys = _recorded_keys(tmp_path / "keys", tmp_path / "cache", spec.circuit_id(), "vk")
    assert _step_keys_refusal(spec, "zk-groth16", keys, tmp_path / "cache") == "keys-backend-mismatch"


def test_verify_step_takes_the_statements_keys_were_made_for_from_the_trust_store(honest, tmp_path):
    """Mutation S04: auditor_step_keys reading the statements from keys.json instead of the trust
    store's record: keys made for another statement, whose keys.json was rewritten to name the
    step's, were accepted (verify's twin, keys.py, is tested; verify-step's was not)."""
    from pot_zk.backends.keys import KEYS_FILE, KeySet
    from pot_zk.backends.registry import spec_from_dict

    spec = spec_from_dict(read_json(honest / files.MANIFEST)["circuit"])
    _recorded_keys(tmp_path / "keys", tmp_path / "cache", "0" * 64, "srs")
    record = read_json(tmp_path / "keys" / KEYS_FILE)
    record["statements"] = [{"circuit_id": spec.circuit_id(), "circuit": {}}]
    write_json(tmp_path / "keys" / KEYS_FILE, record)
    assert _step_keys_refusal(spec, "zk-halo2", KeySet.load(tmp_path / "keys"), tmp_path / "cache") == "keys-statement-mismatch"


def test_a_recorded_loss_a_little_off_the_rescored_one_is_a_score_mismatch(honest, tmp_path):
    """Mutation H15: LOSS_TOLERANCE 1e-9 loosened to 1e-2: only a score whose correct count was
    off was tested; the final model's loss recorded 1e-5 above what verify computes passed."""
    run = _copy(honest, tmp_path)
    records = jsonl(run / files.EVALUATIONS)
    final = max(records, key=lambda r: r["after_step"])
    final["loss"] += 1e-5
    write_jsonl(run / files.EVALUATIONS, records)
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("evaluation", "score-mismatch", None) in _named(report), report.summary()


# --- challenge and the trust store (trust.py) ---

def test_a_challenge_with_a_nonce_the_auditor_did_not_issue_fails_though_it_issued_one_for_that_head(honest, tmp_path):
    """Mutation T01: the trust store keeping challenges per commitment head only (`nonce` left out
    of the record's path): once the auditor had issued one challenge of a run, a C.json of the
    same head and count with a nonce of the trainer's choice passed as issued. The tests issued
    none, or one of another head."""
    from pot_zk.core.challenge import new_challenge
    from pot_zk.runs.bundle import RunBundle
    from pot_zk.verify.trust import TrustStore

    bundle = RunBundle.open(honest)
    issued = new_challenge(bundle.manifest(), bundle.commitments(), 1, "5a" * 32)
    TrustStore.in_cache(tmp_path / "cache").record_challenge(issued)
    chosen = next(c for c in (new_challenge(bundle.manifest(), bundle.commitments(), 1, f"{n:064x}") for n in range(256)) if c.steps == (0,))
    report = verify_run(honest, cache_dir=tmp_path / "cache", challenge=chosen)
    assert ("challenge", "challenge-not-issued", None) in _named(report), report.summary()
    assert not report.challenge["issued_by_you"]


# --- a streamed run's samples (samples.py) ---

def test_a_streamed_run_declaring_batch_leaves_is_a_root_mismatch(tmp_path):
    """Mutation SA02: `declared.get("num_batches") is not None` dropped: a streamed run's manifest
    declaring a number of batches (printed as the data set's, though a streamed run has no batch
    leaves) was not named; only the sample count was tested."""
    from test_track import _synthetic_run

    run = _synthetic_run(tmp_path)
    manifest = read_json(run / files.MANIFEST)
    manifest["dataset"]["num_batches"] = len(jsonl(run / files.COMMITMENTS))
    write_json(run / files.MANIFEST, manifest)
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache", accept_settings={"batch_order": "recorded"})
    assert ("dataset-root", "root-mismatch", None) in _named(report), report.summary()


def test_a_streamed_step_naming_a_held_out_sample_by_a_negative_position_is_malformed(tmp_path):
    """Mutation SA07: `0 <= i < size` weakened to `i < size` in samples.py: a step naming held-out
    sample h as h - 16 (the same sample under torch indexing, so the same batch commitment)
    passed the held-out check; no test named a negative position."""
    from test_track import _synthetic_run, declare_held_out

    run = _synthetic_run(tmp_path)
    records = jsonl(run / files.COMMITMENTS)
    held = declare_held_out(run)
    pins = {"accept_settings": {"batch_order": "recorded"}}
    overlapping = {r["step"] for r in records if set(r["samples"]) & set(held)}
    assert overlapping == {f.step for f in verify_run(run, cache_dir=tmp_path / "cache", **pins).findings if f.reason == "trained-on-held-out"}
    for record in records:
        record["samples"] = [i - 16 if i in held else i for i in record["samples"]]
    write_jsonl(run / files.COMMITMENTS, records)
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache", **pins)
    assert {f.step for f in report.findings if f.reason == "batch-samples-malformed"} == overlapping, report.summary()


# --- the auditor's --accept-setting (statement.py) ---

def test_an_accept_setting_naming_no_setting_of_the_statement_or_plan_is_refused(honest, tmp_path):
    """Mutation ST05: the refusal of an --accept-setting key that is no setting removed: a
    misspelt key (`parm_scale`) was ignored without a word (the auditor's input error, exit 2 on
    the command line); no test gave one."""
    from pot_zk.exceptions import ConfigurationError
    from pot_zk.verify.statement import ACCEPT_SETTING

    with pytest.raises(ConfigurationError, match="parm_scale") as refused:
        verify_run(honest, cache_dir=tmp_path / "cache", accept_settings={"parm_scale": "1"})
    assert refused.value.key == ACCEPT_SETTING


# --- the base an auditor holds, for --expect-base (base_model.py) ---

def test_the_auditors_base_model_with_other_tensors_or_for_a_statement_without_a_base_is_refused(tmp_path):
    """Mutations B02, B03: base_commitment's checks that the base holds exactly the statement's
    base tensors, and that the statement has a base, removed: a base with an extra layer was
    hashed as if it were the statement's base (its extra tensor ignored), and an SGD statement
    raised AttributeError; only other layer shapes were tested."""
    from safetensors.torch import load_file

    from pot_zk.backends.registry import spec_from_dict
    from pot_zk.exceptions import ConfigurationError
    from pot_zk.verify.base_model import base_commitment

    common = ["prover=ezkl", "mode=disabled", "data=synthetic", "train.batch_size=2", "train.max_steps=2", "train.progress=false", "model.loss=mse"]
    base, lora = tmp_path / "base", tmp_path / "lora"
    train(compose_config(["model=tiny_mlp", *common, f"run_dir={base}"]))
    train(compose_config(["model=lora_tiny", f"model.base_run={base}", *common, f"run_dir={lora}"]))
    state = load_file(base / files.FINAL_MODEL)
    spec = spec_from_dict(read_json(lora / files.MANIFEST)["circuit"])
    assert base_commitment(state, spec) == read_json(lora / files.MANIFEST)["base"]["commitment"]
    with pytest.raises(ConfigurationError, match="the base holds"):
        base_commitment({**state, "4.weight": state["2.weight"].clone()}, spec)
    with pytest.raises(ConfigurationError, match="has no frozen base"):
        base_commitment(state, spec_from_dict(read_json(base / files.MANIFEST)["circuit"]))
