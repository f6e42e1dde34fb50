"""A cross-entropy run with the real prover: a tiny classifier on synthetic class labels
proves a step with zk-halo2 (softmax in ezkl's exp table) and the run verifies."""

from __future__ import annotations

import json

import pytest

from pot_zk.verify.run import verify_run

from run_support import run_tiny

pytestmark = pytest.mark.prover


def test_a_cross_entropy_run_proves_its_step_and_verifies(tmp_path, zk_cache):
    run = tmp_path / "run"
    summary = run_tiny(run, zk_cache, "model.loss=cross_entropy", "train.max_steps=2")
    assert summary.status == "completed" and summary.progress["proof_types"] == {"zk-halo2": 1}
    circuit = json.loads((run / "manifest.json").read_text())["circuit"]
    assert circuit["architecture"]["loss"] == "cross_entropy" and circuit["param_scale"] == circuit["scale"] == 12
    assert all(e.accuracy is not None for e in summary.evaluations)  # class labels: scored by accuracy
    report = verify_run(run, cache_dir=zk_cache)
    assert report.ok, report.summary()
    assert report.coverage == {"zk-halo2": 1, "commitment-only": 1}
