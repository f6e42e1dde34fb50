"""`pot-zk train prover=groth16 optimizer.momentum=0.9` end to end on digits (a small model):
exact training with momentum (weights and velocity on the grid, the velocity in the optimizer's
buffers), the selected steps proven with the momentum circuit, `pot-zk verify` accepts the run;
a velocity or W_t+1 moved by one grid step in the records (chained on, so only the proof can
tell) is rejected by the proof, and every tamper kind of pot_zk/testing/tamper.py that applies
to a zk-groth16 bundle is rejected with its named reason."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pot_zk.backends.groth16.scheme import PackedPoseidon
from pot_zk.config import compose_config
from pot_zk.kinds.registry import kind_of, load_training_step
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train
from pot_zk.testing.bundle_edit import chain_lines, jsonl, write_jsonl
from pot_zk.testing.tamper import KINDS, judge, tampered_copy
from pot_zk.verify.run import verify_run

from groth16_support import NOT_FOR_EXACT, stop_holders

pytestmark = pytest.mark.prover


def overrides(run: Path, cache: Path, *extra: str) -> list[str]:
    """Digits cross-entropy on a 16-4-10 MLP, SGD with momentum 0.9 and weight decay 0.01 at lr
    0.05, batch 4, 6 steps, steps 0 and 3 proven."""
    return [
        "prover=groth16", "model=digits_mlp", "model.dims=[16,4,10]", "train.learning_rate=0.05", "optimizer.momentum=0.9",
        "optimizer.weight_decay=0.01", "train.batch_size=4", "train.max_steps=6", "policy=every_k", "policy.k=3",
        f"run_dir={run}", f"cache_dir={cache}", "train.progress=false", *extra,
    ]


def _train(run: Path, cache: Path, *extra: str) -> Path:
    summary = train(compose_config(overrides(run, cache, *extra)), sleep=lambda seconds: None)
    stop_holders(cache, RunBundle.open(run).manifest()["circuit"])
    assert summary.status == "completed" and summary.progress["proof_types"] == {"zk-groth16": 2}, summary
    return run


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    root = tmp_path_factory.mktemp("groth16-momentum")
    return _train(root / "run", root / "cache"), root / "cache"


@pytest.fixture(scope="module")
def other_run(honest, tmp_path_factory) -> Path:
    """Another honest run of the same statement (seed 7) whose proofs a tamperer can replay."""
    return _train(tmp_path_factory.mktemp("groth16-momentum-other") / "run", honest[1], "train.seed=7")


def test_the_run_proves_momentum_steps_and_pot_zk_verify_accepts_it(honest):
    run, cache = honest
    circuit = RunBundle.open(run).manifest()["circuit"]
    assert (circuit["kind"], circuit["backend"], circuit["circuit_version"]) == ("momentum", "groth16", "groth16-momentum-ce/1")
    assert circuit["architecture"]["momentum"] == 0.9 and circuit["architecture"]["weight_decay"] == 0.01
    records = jsonl(run / "commitments.jsonl")
    assert all(a["v_after"] == b["v_before"] for a, b in zip(records, records[1:])) and len({r["v_after"] for r in records}) == 6
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pot-zk"), "verify", str(run)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "POT_ZK_CACHE": str(cache)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result: VERIFIED" in done.stdout and "coverage: zk-groth16=2, commitment-only=4" in done.stdout


def _moved(run: Path, step: int, name: str) -> str:
    """The commitment of the step's ``name`` (``v_after`` or ``w_after``) with one value one grid step up."""
    recorded = load_training_step(RunBundle.open(run).witness_path(step))
    encoded = {x.name: x.values for x in kind_of(recorded).encode(recorded)}
    values = encoded[name].clone()
    values[5] += 2.0**-12
    return PackedPoseidon(12, 17).commit(values, f"moved {name}")


@pytest.mark.parametrize("name", ["v_after", "w_after"])
def test_a_velocity_or_w_after_moved_by_one_grid_step_is_rejected_by_the_proof(name, honest, tmp_path):
    """The cheater records step 0's V_1 (or W_1) one grid step off and chains it into step 1,
    audit trail rewritten: every record agrees, only step 0's proof can tell."""
    run, cache = honest
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    moved = _moved(run, 0, name)
    before = name.replace("after", "before")
    records = jsonl(copy / "commitments.jsonl")
    events = jsonl(copy / "audit.jsonl")
    for record in records + [e for e in events if e.get("event") == "commitment"]:
        if record["step"] == 0:
            record[name] = moved
        if record["step"] == 1:
            record[before] = moved
    write_jsonl(copy / "commitments.jsonl", records)
    (copy / "audit.jsonl").write_bytes(chain_lines(events))
    report = verify_run(copy, cache_dir=cache)
    assert ("proofs", "invalid-proof", 0) in {(f.check, f.reason, f.step) for f in report.findings}, report.summary()
    assert "commitment-chain" in report.passed


@pytest.mark.parametrize("kind", sorted(set(KINDS) - set(NOT_FOR_EXACT)))
def test_each_tampering_of_a_groth16_momentum_bundle_is_rejected_with_its_named_reason(kind, honest, other_run, tmp_path):
    run, cache = honest
    tampering = tampered_copy(run, tmp_path / "tampered", kind, random.Random(f"groth16-momentum-{kind}"), other_run)
    report = verify_run(tmp_path / "tampered", cache_dir=cache, **tampering.options)
    right, why = judge(report, tampering)
    assert right, f"{tampering.detail}: {why}"
