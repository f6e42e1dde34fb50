"""`pot-zk train prover=groth16 optimizer.name=adamw` end to end (a tiny classifier): exact AdamW
training, every step's weights, moments and step count committed and chained, the selected steps
proven with the AdamW circuit, `pot-zk verify` accepts the run; a moment or W_t+1 moved by one
unit in the records (chained on) is rejected by the proof, a step count the optimizer did not
have by verify's own count, every tamper kind that applies to a zk-groth16 bundle with its named
reason; and with a failing prover the fallback's reexec certificates recompute the exact AdamW
step (one unit off is rejected)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pot_zk.backends.certificates.reexec import verify_reexec
from pot_zk.backends.certificates.revealed import CERTIFICATE, WITNESS, commitment_of
from pot_zk.backends.registry import commitments_of, spec_from_dict
from pot_zk.config import compose_config
from pot_zk.exceptions import ProofVerificationError
from pot_zk.kinds.registry import kind_of, load_training_step
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train
from pot_zk.testing.bundle_edit import chain_lines, jsonl, write_jsonl
from pot_zk.testing.tamper import KINDS, judge, tampered_copy
from pot_zk.verify.run import verify_run

from groth16_support import NOT_FOR_EXACT, stop_holders

pytestmark = pytest.mark.prover

TINY = [
    "prover=groth16", "model=tiny_mlp", "model.loss=cross_entropy", "data=synthetic", "optimizer.name=adamw", "train.learning_rate=0.01",
    "optimizer.weight_decay=0.01", "train.batch_size=2", "train.max_steps=4", "train.progress=false",
]


def _train(run: Path, cache: Path, *extra: str):
    summary = train(compose_config([*TINY, f"run_dir={run}", f"cache_dir={cache}", *extra]), sleep=lambda seconds: None)
    stop_holders(cache, RunBundle.open(run).manifest()["circuit"])
    return summary


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """Four steps, steps 0 and 2 proven."""
    root = tmp_path_factory.mktemp("groth16-adamw")
    summary = _train(root / "run", root / "cache", "policy=every_k", "policy.k=2")
    assert summary.status == "completed" and summary.progress["proof_types"] == {"zk-groth16": 2}, summary
    return root / "run", root / "cache"


@pytest.fixture(scope="module")
def other_run(honest, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("groth16-adamw-other") / "run"
    assert _train(run, honest[1], "policy=every_k", "policy.k=2", "train.seed=7").status == "completed"
    return run


def test_the_run_proves_adamw_steps_and_pot_zk_verify_accepts_it(honest):
    run, cache = honest
    manifest = RunBundle.open(run).manifest()
    circuit = manifest["circuit"]
    assert (circuit["kind"], circuit["circuit_version"], circuit["architecture"]["decoupled_weight_decay"]) == ("adamw", "groth16-adamw-ce/1", True)
    spec = spec_from_dict(circuit)
    records = jsonl(run / files.COMMITMENTS)
    for before, after in (("m_before", "m_after"), ("v_before", "v_after"), ("t_before", "t_after")):
        assert all(a[after] == b[before] for a, b in zip(records, records[1:])), before
    counts = commitments_of(spec).tensor("t_after")
    assert [r["t_after"] for r in records] == [counts.commit(torch.tensor([s + 1.0], dtype=torch.float64), "t") for s in range(4)]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pot-zk"), "verify", str(run)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "POT_ZK_CACHE": str(cache)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result: VERIFIED" in done.stdout and "coverage: zk-groth16=2, commitment-only=2" in done.stdout


def _rewrite(copy: Path, changes: dict[int, dict[str, str]]) -> None:
    """Set fields of the commitment records (and their audit events, the hash chain rewritten)."""
    records = jsonl(copy / files.COMMITMENTS)
    events = jsonl(copy / files.AUDIT)
    for record in records + [e for e in events if e.get("event") == "commitment"]:
        record.update(changes.get(record["step"], {}))
    write_jsonl(copy / files.COMMITMENTS, records)
    (copy / files.AUDIT).write_bytes(chain_lines(events))


@pytest.mark.parametrize("name", ["m_after", "v_after", "w_after"])
def test_a_moment_or_w_after_moved_by_one_unit_is_rejected_by_the_proof(name, honest, tmp_path):
    """Step 0's m_1, v_1 or W_1 one unit of its grid off, chained into step 1: only step 0's proof can tell."""
    run, cache = honest
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    spec = spec_from_dict(RunBundle.open(run).manifest()["circuit"])
    step = load_training_step(RunBundle.open(run).witness_path(0))
    values = {x.name: x.values for x in kind_of(step).encode(step)}[name].clone()
    values[1] += 2.0 ** -spec.grid(name)[0]
    moved = commitments_of(spec).tensor(name).commit(values, f"moved {name}")
    _rewrite(copy, {0: {name: moved}, 1: {name.replace("after", "before"): moved}})
    report = verify_run(copy, cache_dir=cache)
    assert ("proofs", "invalid-proof", 0) in {(f.check, f.reason, f.step) for f in report.findings}, report.summary()
    assert "commitment-chain" in report.passed


def test_a_step_count_the_optimizer_did_not_have_is_rejected_by_verify_s_own_count(honest, tmp_path):
    """Unproven step 1 claims t = 5 (and step 2 starts from it): the chain holds, verify recomputes t."""
    run, cache = honest
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    spec = spec_from_dict(RunBundle.open(run).manifest()["circuit"])
    five = commitments_of(spec).tensor("t_after").commit(torch.tensor([5.0], dtype=torch.float64), "t")
    _rewrite(copy, {1: {"t_after": five}, 2: {"t_before": five}})
    findings = {(f.check, f.reason, f.step) for f in verify_run(copy, cache_dir=cache).findings}
    assert ("commitment-chain", "optimizer-step-count", 1) in findings, findings


@pytest.mark.parametrize("kind", sorted(set(KINDS) - set(NOT_FOR_EXACT)))
def test_each_tampering_of_a_groth16_adamw_bundle_is_rejected_with_its_named_reason(kind, honest, other_run, tmp_path):
    run, cache = honest
    tampering = tampered_copy(run, tmp_path / "tampered", kind, random.Random(f"groth16-adamw-{kind}"), other_run)
    report = verify_run(tmp_path / "tampered", cache_dir=cache, **tampering.options)
    right, why = judge(report, tampering)
    assert right, f"{tampering.detail}: {why}"


def test_a_failed_adamw_proof_falls_back_to_reexec_certificates_of_the_exact_step(tmp_path):
    run = tmp_path / "run"
    summary = _train(run, tmp_path / "cache", "policy=every_step", "handler=fallback", "retry=none", "prover.binary=/bin/false")
    assert summary.progress["proof_types"] == {"reexec": 4}, summary.progress
    report = verify_run(run, cache_dir=tmp_path / "verifier")
    assert report.ok and report.coverage.get("reexec") == 4, report.summary()
    spec = spec_from_dict(json.loads((run / files.MANIFEST).read_text())["circuit"])
    record = next(r for r in jsonl(run / files.PROOFS) if r["step"] == 1)
    certificate = run / record["proof"]
    tensors = load_file(str(certificate.parent / WITNESS))
    tensors["m_after"] = tensors["m_after"].clone()
    tensors["m_after"][0] += 2.0 ** -spec.grid("m_after")[0]
    forged = tmp_path / "forged"
    forged.mkdir()
    save_file(tensors, str(forged / WITNESS))
    commitment = commitment_of({name: tensors[name] for name in spec.input_names}, spec)
    (forged / CERTIFICATE).write_text(json.dumps({**json.loads(certificate.read_text()), "commitment": commitment.to_dict()}))
    with pytest.raises(ProofVerificationError) as rejected:
        verify_reexec(spec, commitment, forged / CERTIFICATE)
    assert rejected.value.reason == "update-out-of-tolerance"
