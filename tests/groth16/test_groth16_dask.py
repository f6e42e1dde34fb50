"""`executor=dask prover=groth16`: every step proven on Dask workers that each load the proving
key once and keep it (seen in the run's own records: which process proved each step, when that
process loaded its key, and which proof paid for the load); a held-key attempt that hangs past
prover.timeout_s is a ProverTimeoutError and its worker is restarted; a prover program of your
own still runs as a program."""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train
from pot_zk.verify.run import verify_run

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.prover


def _run(run: Path, cache: Path, *extra: str):
    cfg = compose_config([
        "prover=groth16", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "policy=every_step",
        "executor=dask", f"run_dir={run}", f"cache_dir={cache}", "train.progress=false", *extra,
    ])
    return train(cfg, sleep=lambda seconds: None)


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "proofs.jsonl").read_text().splitlines()]


def _attempts(run: Path) -> list[dict]:
    events = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"] == "attempt"]


def test_every_step_is_proven_on_dask_workers_each_loading_the_key_once(tmp_path, groth16_cache):
    run = tmp_path / "run"
    summary = _run(run, groth16_cache, "train.max_steps=6", "executor.workers=2")
    assert summary.status == "completed", summary
    records = _records(run)
    assert [(r["step"], r["status"], r["proof_type"]) for r in records] == [(step, "proved", "zk-groth16") for step in range(6)]
    by_worker: dict[int, list[dict]] = defaultdict(list)
    for record in records:
        prover = record["public"]["prover"]
        assert "Dask" in prover["thread"], f"proven by a Dask worker's thread, not a key holder's: {prover}"
        by_worker[prover["pid"]].append(record)
    assert len(by_worker) == 2 and os.getpid() not in by_worker, "both workers proved, none in the trainer"
    for pid, proofs in by_worker.items():
        assert len({r["public"]["prover"]["key_loaded_at"] for r in proofs}) == 1, f"worker {pid} loaded its key more than once"
        assert [("key_load_s" in r["timings"]) for r in proofs] == [True] + [False] * (len(proofs) - 1)
        assert all(r["public"]["prover"]["began_at"] >= r["public"]["prover"]["key_loaded_at"] for r in proofs)
    loads = [a for a in _attempts(run) if "key_load_s" in (a.get("timings") or {})]
    assert len(loads) == 2, "the audit trail records one key load per worker"
    report = verify_run(run, cache_dir=groth16_cache)
    assert report.ok and report.coverage == {"zk-groth16": 6}, report.summary()


@pytest.fixture()
def one_worker_cluster():
    """A cluster pot-zk did not start (one worker, with a nanny that can restart it)."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
            yield cluster, client


def test_a_held_key_attempt_past_the_time_limit_is_a_timeout_and_its_worker_is_restarted(tmp_path, groth16_cache, one_worker_cluster):
    cluster, client = one_worker_cluster
    [before] = client.run(os.getpid).values()

    def hang_key_loads() -> None:
        """In the worker: every key load from now on blocks (a key on a stuck file system, say)."""
        from pot_zk.backends.groth16 import held

        held.HeldKey.load = staticmethod(lambda request: time.sleep(3600))

    client.run(hang_key_loads)
    run = tmp_path / "run"
    started = time.monotonic()
    summary = _run(run, groth16_cache, "train.max_steps=1", "retry=none", "handler=continue", "prover.timeout_s=3",
                   f"executor.scheduler_address={cluster.scheduler_address}")
    assert time.monotonic() - started < 120
    assert summary.status == "completed"
    [record] = _records(run)
    assert record["status"] == "failed" and record["error"]["error_class"] == "RetryExhaustedError", record
    timeout = record["error"]["last_error"]
    assert timeout["error_class"] == "ProverTimeoutError" and timeout["retryable"] is True and timeout["timeout_s"] == 3.0
    assert "was restarted" in timeout["message"]
    client.wait_for_workers(1, timeout=60)
    [after] = client.run(os.getpid).values()
    assert after != before, "the worker that held the hanging proof was replaced"


def test_a_prover_program_of_your_own_runs_as_a_program_on_the_workers(tmp_path, groth16_cache, make_prover):
    """prover.binary names another program than pot-zk-groth16-prover: the workers run it (here
    one that refuses the witness, exit 65), they do not prove with a held key."""
    run = tmp_path / "run"
    summary = _run(run, groth16_cache, "train.max_steps=1", "retry=none", "handler=continue", "executor.workers=1",
                   f"prover.binary={make_prover('exit', '65')}")
    assert summary.status == "completed"
    [record] = _records(run)
    assert record["status"] == "failed" and record["error"]["error_class"] == "WitnessBuilderError", record
    assert "fake-prover" in record["error"]["message"]
    assert RunBundle.open(run).manifest()["executor"]["name"] == "dask"


def test_an_unreachable_scheduler_is_refused_before_the_run_writes_anything(tmp_path, monkeypatch):
    """review23: the executor was built after the bundle was prepared, so an unreachable
    scheduler left manifest, dataset and a run.start without run.end: train refused the
    directory ("continue it with pot-zk resume") and resume failed the same way."""
    from pot_zk.exceptions import ConfigurationError
    from pot_zk.proving import dask_executor

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 1.0)
    run = tmp_path / "run"
    with pytest.raises(ConfigurationError, match="cannot connect to the Dask scheduler at tcp://127.0.0.1:9") as refused:
        _run(run, tmp_path / "cache", "executor.scheduler_address=tcp://127.0.0.1:9")
    assert refused.value.context["key"] == "executor.scheduler_address"
    assert not run.exists()


def test_a_mistyped_scheduler_scheme_is_one_error_at_once(tmp_path):
    """review25: `tpc://...` was a ValueError traceback, then a minute's hang as the process exited."""
    from pot_zk.exceptions import ConfigurationError

    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=r"executor.scheduler_address=tpc://127.0.0.1:9: unknown scheme 'tpc' \(Dask knows .*tcp"):
        _run(tmp_path / "run", tmp_path / "cache", "executor.scheduler_address=tpc://127.0.0.1:9")
    assert time.monotonic() - started < 30 and not (tmp_path / "run").exists()
