"""SGD with momentum with the real prover: a tiny classifier trained with optimizer.momentum=0.9
proves a step with zk-halo2 (weights and velocity) and the run verifies."""

from __future__ import annotations

import json

import pytest

from pot_zk.verify.run import verify_run

from run_support import run_tiny

pytestmark = pytest.mark.prover


def test_a_momentum_run_proves_its_step_and_verifies(tmp_path, zk_cache):
    run = tmp_path / "run"
    summary = run_tiny(run, zk_cache, "model.loss=cross_entropy", "optimizer.momentum=0.9", "train.max_steps=3")
    assert summary.status == "completed" and summary.progress["proof_types"] == {"zk-halo2": 2}
    circuit = json.loads((run / "manifest.json").read_text())["circuit"]
    assert circuit["kind"] == "momentum" and circuit["architecture"]["momentum"] == 0.9
    proofs = [json.loads(line) for line in (run / "proofs.jsonl").read_text().splitlines()]
    assert all(set(p["public"]["commitment"]) >= {"v_before", "v_after"} for p in proofs)
    report = verify_run(run, cache_dir=zk_cache)
    assert report.ok, report.summary()
    assert report.coverage == {"zk-halo2": 2, "commitment-only": 1}
