"""`pot-zk train prover=groth16` keeps every core proving: the groth16 prover selects the process
executor, its prover programs share one key holder (one key load), and the holder proves steps
side by side -- seen in the run's own record of each proof (holder pid, thread, proving interval)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train
from pot_zk.verify.run import verify_run
from provers.groth16_held import socket_path

from groth16_support import most_at_once, stop_holders

pytestmark = pytest.mark.prover


def test_a_groth16_run_proves_two_steps_at_once_in_one_key_holder(tmp_path):
    cache, run = tmp_path / "cache", tmp_path / "run"
    cfg = compose_config([
        "prover=groth16", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=6", "policy=every_step",
        "executor.workers=2", "prover.args=[--keep-key-s,30,--provers,2]", f"run_dir={run}", f"cache_dir={cache}", "train.progress=false",
    ])
    assert cfg.executor.name == "process"  # chosen by prover=groth16
    circuit = None
    try:
        summary = train(cfg, sleep=lambda seconds: None)
        circuit = RunBundle.open(run).manifest()["circuit"]
        holder = int(Path(f"{socket_path(str(cache), circuit)}.pid").read_text())
    finally:
        stop_holders(cache, circuit or RunBundle.open(run).manifest()["circuit"])
    assert summary.status == "completed", summary
    records = [json.loads(line) for line in (run / "proofs.jsonl").read_text().splitlines()]
    assert sorted(r["step"] for r in records if r["status"] == "proved") == list(range(6))
    provers = [r["public"]["prover"] for r in records]
    assert {p["pid"] for p in provers} == {holder}
    assert all(p["witness_engine"].startswith("wasmtime ") for p in provers)
    assert most_at_once([(p["began_at"], p["ended_at"]) for p in provers]) == 2
    report = verify_run(run, cache_dir=cache)
    assert report.ok, report.summary()
