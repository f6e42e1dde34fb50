"""``logger=tensorboard``: a run's loss, held-out scores, proof latency and coverage as
TensorBoard scalars, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import pytest

from pot_zk.config import compose_config
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_a_tensorboard_run_writes_the_scalars_its_records_hold(tmp_path):
    run = tmp_path / "run"
    cfg = compose_config([
        "prover=groth16", "data=digits", "model=tiny_mlp", "model.dims=[16,3,10]", "model.loss=mse", "train.batch_size=2",
        "train.max_steps=4", "policy=every_k", "policy.k=2", "executor=inline", "logger=tensorboard", f"run_dir={run}", f"cache_dir={tmp_path / 'cache'}",
        "train.progress=false",
    ])
    summary = train(cfg)
    assert summary.status == "completed"
    events = event_accumulator.EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert sorted(scalars) == ["heldout/accuracy", "heldout/loss", "proof/coverage", "proof/latency_s", "proof/prove_s", "train/loss"]

    bundle = RunBundle.open(run)
    assert scalars["train/loss"] == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in bundle.commitments()]
    scores = bundle.evaluations()
    assert scalars["heldout/loss"] == [(e["after_step"], pytest.approx(e["loss"], rel=1e-6)) for e in scores]
    assert scalars["heldout/accuracy"] == [(e["after_step"], pytest.approx(e["correct"] / e["samples"], rel=1e-6)) for e in scores]
    assert [step for step, _ in scalars["heldout/accuracy"]] == [0, 4]  # the initial and final models

    proofs = {r["step"]: r for r in bundle.proofs()}
    assert [step for step, _ in scalars["proof/latency_s"]] == sorted(proofs) == [0, 2]
    assert all(seconds > 0 for _, seconds in scalars["proof/latency_s"])
    assert scalars["proof/prove_s"] == [(step, pytest.approx(proofs[step]["timings"]["prove_s"], rel=1e-6)) for step in (0, 2)]
    # each proof's outcome arrives before the next step (executor=inline); the run's end adds the final share
    assert scalars["proof/coverage"] == [(1, 1.0), (3, pytest.approx(2 / 3)), (4, 0.5)]
