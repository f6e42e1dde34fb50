"""`pot-zk train prover=groth16 model=digits_mlp` (the cross-entropy classifier) end to end on a
small MLP: exact cross-entropy training, two steps proven with the CE circuit, and verify_run
accepts the run and rejects an edited batch commitment (another label) by the proof."""

from __future__ import annotations

import json

import pytest
import torch

from pot_zk.backends.groth16.scheme import PackedPoseidon
from pot_zk.backends.registry import spec_from_dict
from pot_zk.config import compose_config
from pot_zk.kinds.registry import load_training_step
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train
from pot_zk.testing.tamper import chain_lines
from pot_zk.verify.run import verify_run

from groth16_support import stop_holders

pytestmark = pytest.mark.prover


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    root = tmp_path_factory.mktemp("groth16-ce-run")
    cache, run = root / "cache", root / "run"
    overrides = [
        "prover=groth16", "model=digits_mlp", "model.dims=[16,4,10]", "train.batch_size=4", "train.max_steps=6",
        "policy=every_k", "policy.k=3", f"run_dir={run}", f"cache_dir={cache}", "train.progress=false",
    ]
    summary = train(compose_config(overrides), sleep=lambda seconds: None)
    stop_holders(cache, RunBundle.open(run).manifest()["circuit"])
    assert summary.status == "completed", summary
    return run, cache


def test_a_cross_entropy_run_proves_its_steps_and_verifies(honest):
    run, cache = honest
    bundle = RunBundle.open(run)
    manifest = bundle.manifest()
    spec = spec_from_dict(manifest["circuit"])
    assert (spec.loss, spec.circuit_version, spec.value_bits, spec.learning_rate) == ("cross_entropy", "groth16-sgd-ce/2", 17, 0.3)
    assert manifest["training"]["arithmetic"] == "exact"
    proofs = [r for r in bundle.proofs() if r["status"] == "proved"]
    assert sorted(r["step"] for r in proofs) == [0, 3] and {r["proof_type"] for r in proofs} == {"zk-groth16"}
    step = load_training_step(bundle.witness_path(0))
    assert step.targets.dim() == 1 and torch.equal(step.targets, step.targets.round())  # class labels
    report = verify_run(run, cache_dir=cache)
    assert report.ok, report.summary()
    assert report.coverage == {"zk-groth16": 2, "commitment-only": 4}


def test_the_batch_commitment_of_another_label_is_rejected_by_the_proof(honest, tmp_path):
    import shutil

    run, cache = honest
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    step = load_training_step(RunBundle.open(run).witness_path(3))
    labels = step.targets.clone()
    labels[0] = (labels[0] + 1) % 10
    other = PackedPoseidon(12, 17).commit(torch.cat([step.inputs.reshape(-1), labels]), "batch with another label")
    records = [json.loads(line) for line in (copy / "commitments.jsonl").read_text().splitlines() if line.strip()]
    for record in records:
        if record["step"] == 3:
            record["batch"] = other
    (copy / "commitments.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    events = [json.loads(line) for line in (copy / "audit.jsonl").read_text().splitlines() if line.strip()]
    for event in events:
        if event.get("event") == "commitment" and event.get("step") == 3:
            event["batch"] = other
    (copy / "audit.jsonl").write_bytes(chain_lines(events))
    findings = {(f.check, f.reason, f.step) for f in verify_run(copy, cache_dir=cache).findings}
    assert ("proofs", "invalid-proof", 3) in findings, findings
