"""SGD with momentum with the real prover: a tiny MLP trained with optimizer.momentum=0.9 and
weight decay proves its steps with zk-halo2 (weights and velocity) and the run verifies; every
tamper kind of pot_zk/testing/tamper.py applied to a momentum bundle is rejected with its named
reason. (MSE: the momentum statement's backward pass is the SGD statement's, whose
cross-entropy form tests/zk/test_cross_entropy_run.py proves; a momentum cross-entropy proof
costs ~4x an MSE one here, and groth16's momentum cross-entropy runs are proven in
tests/groth16/test_groth16_momentum_run.py.)"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pot_zk.testing.tamper import KINDS, judge, tampered_copy
from pot_zk.verify.run import verify_run

from run_support import run_tiny

MOMENTUM = ("model.loss=mse", "optimizer.momentum=0.9", "optimizer.weight_decay=0.01")

pytestmark = pytest.mark.prover


@pytest.fixture(scope="module")
def momentum_runs(tmp_path_factory, zk_cache) -> tuple[Path, Path]:
    """A 4-step momentum run (steps 0 and 2 proven with zk-halo2) and another (seed 7, step 0)."""
    root = tmp_path_factory.mktemp("momentum-runs")
    assert run_tiny(root / "run", zk_cache, *MOMENTUM).status == "completed"
    assert run_tiny(root / "other", zk_cache, *MOMENTUM, "train.seed=7", "train.max_steps=2").status == "completed"
    return root / "run", root / "other"


def test_a_momentum_run_proves_its_steps_and_verifies(momentum_runs, zk_cache):
    run, _ = momentum_runs
    circuit = json.loads((run / "manifest.json").read_text())["circuit"]
    assert circuit["kind"] == "momentum" and circuit["architecture"]["momentum"] == 0.9
    proofs = [json.loads(line) for line in (run / "proofs.jsonl").read_text().splitlines()]
    assert [p["proof_type"] for p in proofs] == ["zk-halo2", "zk-halo2"]
    assert all(set(p["public"]["commitment"]) >= {"v_before", "v_after"} for p in proofs)
    report = verify_run(run, cache_dir=zk_cache)
    assert report.ok, report.summary()
    assert report.coverage == {"zk-halo2": 2, "commitment-only": 2}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_tampering_of_a_momentum_bundle_is_rejected_with_its_named_reason(kind, momentum_runs, zk_cache, tmp_path):
    run, other = momentum_runs
    tampering = tampered_copy(run, tmp_path / "tampered", kind, random.Random(f"momentum-{kind}"), other)
    report = verify_run(tmp_path / "tampered", cache_dir=zk_cache, **tampering.options)
    right, why = judge(report, tampering)
    assert right, f"{tampering.detail}: {why}"
