"""``executor=dask``: proofs on a Dask LocalCluster verify; a worker killed mid-proof is one
audited failed attempt followed by a retry; failures come back with their own error class;
errors cross process boundaries intact; pot-zk works without Dask installed."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from pot_zk.runs.bundle import RunBundle
from pot_zk.exceptions import (
    ConfigurationError,
    PotZkError,
    ProofGenerationError,
    ProverCrashError,
    ProverNotFoundError,
    ProverTimeoutError,
    RetryExhaustedError,
    WitnessBuilderError,
)
from pot_zk.proving.executors import create_executor
from pot_zk.verify.run import verify_run

from run_support import run_tiny

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.prover

REAL_PROVER = Path(sys.executable).parent / "pot-zk-ezkl-prover"


def _events(run: Path, event: str) -> list[dict]:
    records = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    return [r for r in records if r["event"] == event]


def _worker_killing_prover(directory: Path, state: Path) -> Path:
    """The real prover, except that its first run anywhere SIGKILLs the process that started
    it (on a Dask worker: the worker) and records that process's pid in ``state``."""
    program = directory / "worker-killing-prover"
    directory.mkdir(parents=True, exist_ok=True)
    program.write_text(
        f"#!{sys.executable}\n"
        "import os, signal, sys\n"
        "try:\n"
        f"    first = os.open({str(state)!r}, os.O_CREAT | os.O_EXCL | os.O_WRONLY)\n"
        "except FileExistsError:\n"
        f"    os.execv({str(REAL_PROVER)!r}, [{str(REAL_PROVER)!r}, *sys.argv[1:]])\n"
        "os.write(first, str(os.getppid()).encode())\n"
        "os.close(first)\n"
        "os.kill(os.getppid(), signal.SIGKILL)\n"
        "sys.exit(1)\n"
    )
    program.chmod(0o755)
    return program


@pytest.fixture(scope="module")
def killed_worker_run(tmp_path_factory, zk_cache):
    """One tiny dask run (LocalCluster started by pot-zk, 2 workers, 2 real proofs) whose
    first prover run kills its worker."""
    root = tmp_path_factory.mktemp("dask-run")
    state = root / "killed-worker.pid"
    prover = _worker_killing_prover(root / "bin", state)
    run = root / "run"
    summary = run_tiny(run, zk_cache, "executor=dask", "executor.workers=2", f"prover.binary={prover}")
    return run, summary, int(state.read_text())


def test_dask_run_on_a_local_cluster_proves_and_verifies(killed_worker_run, zk_cache):
    run, summary, _ = killed_worker_run
    assert summary.status == "completed"
    assert summary.progress["outcomes"] == {"proved": 2}
    assert RunBundle.open(run).manifest()["executor"] == {"name": "dask", "workers": 2}
    assert [r["step"] for r in RunBundle.open(run).proofs()] == [0, 2], "proof records stay in step order"
    report = verify_run(run, cache_dir=zk_cache)
    assert report.ok, report.summary()
    assert report.coverage == {"zk-halo2": 2, "commitment-only": 2}


def test_worker_killed_mid_proof_is_an_audited_failed_attempt_then_a_retry(killed_worker_run):
    run, _, killed_pid = killed_worker_run
    assert killed_pid != os.getpid(), "the prover must run on a worker, not in the trainer"
    failed = [a for a in _events(run, "attempt") if a["outcome"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["error"]["error_class"] == "ProverCrashError" and failed[0]["error"]["retryable"] is True
    assert "Dask worker" in failed[0]["error"]["message"]
    step = failed[0]["step"]
    attempts = [(a["attempt"], a["outcome"]) for a in _events(run, "attempt") if a["step"] == step]
    assert attempts == [(1, "failed"), (2, "ok")]
    record = next(r for r in RunBundle.open(run).proofs() if r["step"] == step)
    assert record["status"] == "proved" and record["attempts"] == 2


@pytest.fixture(scope="module")
def outside_cluster():
    """A cluster pot-zk did not start: it must connect to it and leave it running."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


@pytest.mark.parametrize("behaviour, error_class", [("exit 65", "WitnessBuilderError"), ("garbage", "RetryExhaustedError")])
def test_failures_come_back_with_the_same_error_as_inline(tmp_path, zk_cache, make_prover, outside_cluster, behaviour, error_class):
    prover = make_prover(*behaviour.split())
    errors = {}
    for executor in ("inline", "dask"):
        run = tmp_path / executor
        extra = [f"executor.scheduler_address={outside_cluster.scheduler_address}"] if executor == "dask" else []
        run_tiny(run, zk_cache, f"executor={executor}", *extra, "retry=none", "train.max_steps=1", f"prover.binary={prover}")
        [record] = RunBundle.open(run).proofs()
        assert record["status"] == "failed"
        errors[executor] = {k: v for k, v in record["error"].items() if k != "stderr"}
    assert errors["dask"] == errors["inline"]
    assert errors["dask"]["error_class"] == error_class
    with distributed.Client(outside_cluster.scheduler_address, set_as_default=False) as client:
        assert len(client.scheduler_info()["workers"]) == 2, "pot-zk must not close a cluster it did not start"


@pytest.mark.parametrize(
    "error",
    [
        ProverTimeoutError("too slow", timeout_s=3.0, binary_name="prover", stderr="last words"),
        ProverNotFoundError("prover", ["/opt/bin"]),
        RetryExhaustedError("gave up", 3, ProverCrashError("died", exit_code=-9)),
        WitnessBuilderError("out of range", expected=[1, 2], actual=[3], step=4),
        ProofGenerationError("no proof", retryable=True, exit_code=75),
        ConfigurationError("bad", key="executor.name"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_pickling_with_class_and_context(error: PotZkError):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.retryable == error.retryable
    assert copy.to_record() == error.to_record()


def test_dask_executor_without_dask_installed_is_a_configuration_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ConfigurationError, match=r"pot-zk\[dask\]"):
        create_executor("dask", lambda job: None, lambda result: None, 2)


def test_importing_pot_zk_does_not_import_dask():
    code = "import sys, pot_zk, pot_zk.runs.train, pot_zk.proving.executors, pot_zk.proving.dask_executor; print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
