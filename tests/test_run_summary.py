"""The end-of-run "in short" line says what the bundle supports and no more: which steps were
proven by which proof type (a certificate that reveals the witness is not zero-knowledge), what
each shows (a momentum step: weights and velocity, within the declared tolerance) and that the
held-out accuracy is measured, not proven. A real momentum run whose prover program fails, so
its scheduled steps fall back to freivalds certificates."""

from __future__ import annotations

from pathlib import Path

from pot_zk.config import compose_config
from pot_zk.runs.train import print_summary, train
from pot_zk.verify.run import verify_run


def test_certificate_steps_of_a_momentum_run_are_not_called_zero_knowledge(tmp_path, capsys):
    run = tmp_path / "run"
    overrides = [
        "model=tiny_mlp", "model.loss=cross_entropy", "data=synthetic", "train.batch_size=2", "train.max_steps=4",
        "optimizer.momentum=0.9", "policy=every_k", "policy.k=2", "handler=fallback", "retry=none", "prover.binary=/bin/false",
        "train.progress=false", f"cache_dir={tmp_path / 'cache'}", f"run_dir={run}",
    ]
    summary = train(compose_config(overrides), sleep=lambda seconds: None)
    assert summary.progress["proof_types"] == {"freivalds": 2}
    capsys.readouterr()
    print_summary(summary)
    line = next(text for text in capsys.readouterr().out.splitlines() if text.startswith("in short:"))
    assert line.startswith(
        "in short: 2 of 4 steps proven, 2 with freivalds (witness revealed to the verifier): steps 0, 2, each the declared "
        "update within 4 units of 2^-12 of its committed weights and velocity on its committed batch; all 4 committed; held-out accuracy "
    ), line
    assert line.endswith(", measured, not proven") and "zero-knowledge" not in line
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert report.ok and report.coverage == {"freivalds": 2, "commitment-only": 2}, report.summary()
