"""The seed's error handling, observed as its user would with real prover programs: the retry
flow (every ProofGenerationError retried on the configured schedule, then RetryExhaustedError;
the other errors never retried), the error classes, the seed's spellings of modes and failure
actions, library calls that print nothing, and the statistics."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import torch

from pot_zk.auditor_integration import FailureAction, ProofFailureAction, create_zk_integration
from pot_zk.auto_prover import AutoProver, auto_prove_training_step
from pot_zk.cli.main import main
from pot_zk.exceptions import (
    ConfigurationError,
    InvalidModelStateError,
    ProofGenerationError,
    ProverCrashError,
    ProverNotFoundError,
    RetryExhaustedError,
    WitnessBuilderError,
)

from seed_examples import LEARNING_RATE, seed_namespace

def trail(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "audit.jsonl").read_text().splitlines()]


def named(records: list[dict], event: str) -> list[dict]:
    return [r for r in records if r["event"] == event]


def when(record: dict) -> datetime:
    return datetime.fromisoformat(record["ts"])


def sgd_step():
    namespace = seed_namespace()
    return namespace["model_before"], namespace["model_after"], namespace["batch_data"]


def test_a_deterministic_prover_failure_ends_in_retry_exhausted_after_the_configured_attempts(tmp_path, make_prover):
    """The issue's acceptance test: a prover that exits 70 every time, 2 retries, delays 0.05 s
    then 0.1 s; attempts and backoff counted from the audit trail."""
    before, after, batch = sgd_step()
    overrides = [f"prover.binary={make_prover('exit', '70')}", "retry.jitter_s=0"]
    with AutoProver(tmp_path / "run", overrides, max_retries=2, retry_delay=0.05) as prover:
        with pytest.raises(RetryExhaustedError) as caught:
            prover.prove_sgd_step(before, after, batch, LEARNING_RATE)
    error = caught.value
    assert isinstance(error, ProofGenerationError) and error.attempts == 3
    assert type(error.last_error) is ProofGenerationError and error.last_error.exit_code == error.exit_code == 70
    assert error.__cause__ is error.last_error and "simulated exit 70" in str(error)
    records = trail(tmp_path / "run")
    attempts, sleeps = named(records, "attempt"), named(records, "retry.sleep")
    assert [(a["attempt"], a["outcome"], a["error"]["exit_code"]) for a in attempts] == [(1, "failed", 70), (2, "failed", 70), (3, "failed", 70)]
    assert [(s["attempt"], s["planned_sleep_s"]) for s in sleeps] == [(1, 0.05), (2, 0.1)]
    for sleep, following in zip(sleeps, attempts[1:]):
        assert (when(following) - when(sleep)).total_seconds() >= sleep["planned_sleep_s"]
    assert named(records, "strategy.failed")[0]["attempts"] == 3
    assert named(records, "halt")[0]["error"]["last_error"]["exit_code"] == 70


def test_production_makes_one_attempt_and_still_raises_retry_exhausted(tmp_path, make_prover):
    before, after, batch = sgd_step()
    overrides = [f"prover.binary={make_prover('exit', '70')}", "srs.allow_dev_srs=true"]
    with pytest.raises(RetryExhaustedError) as caught:
        auto_prove_training_step(before, after, batch, LEARNING_RATE, work_dir=tmp_path / "run", mode="production", overrides=overrides)
    assert caught.value.attempts == 1 and caught.value.last_error.exit_code == 70
    assert len(named(trail(tmp_path / "run"), "attempt")) == 1 and named(trail(tmp_path / "run"), "retry.sleep") == []


@pytest.mark.parametrize("behaviour, error_class", [
    (("exit", "64"), ConfigurationError),
    (("exit", "65"), WitnessBuilderError),
    (None, ProverNotFoundError),
], ids=["bad-request", "invalid-witness", "missing-prover"])
def test_errors_a_retry_cannot_mend_are_tried_once_and_surface_as_themselves(tmp_path, make_prover, behaviour, error_class):
    before, after, batch = sgd_step()
    program = make_prover(*behaviour) if behaviour else tmp_path / "no-such-prover"
    with pytest.raises(error_class) as caught:
        auto_prove_training_step(before, after, batch, LEARNING_RATE, work_dir=tmp_path / "run", max_retries=3,
                                 overrides=[f"prover.binary={program}"])
    assert type(caught.value) is error_class
    records = trail(tmp_path / "run")
    assert [a["attempt"] for a in named(records, "attempt")] == [1] and named(records, "retry.sleep") == []


def test_invalid_models_are_refused_before_any_attempt(tmp_path, make_prover):
    before, _, batch = sgd_step()
    other = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    with AutoProver(tmp_path / "run", [f"prover.binary={make_prover('crash')}"], max_retries=3) as prover:
        with pytest.raises(InvalidModelStateError, match="different architectures"):
            prover.prove_sgd_step(before, other, batch, LEARNING_RATE)
    assert named(trail(tmp_path / "run"), "attempt") == []


def test_retry_exhausted_error_is_a_proof_generation_error_with_the_last_errors_context():
    last = ProverCrashError("died", binary_name="prove_sgd_stdin", exit_code=-9, stderr="killed")
    error = RetryExhaustedError("Failed to generate proof after 4 attempts", 4, last)
    with pytest.raises(ProofGenerationError):
        raise error
    assert (error.binary_name, error.exit_code, error.stderr, error.retryable) == ("prove_sgd_stdin", -9, "killed", False)
    record = error.to_record()
    assert (record["error_class"], record["attempts"], record["last_error"]["exit_code"]) == ("RetryExhaustedError", 4, -9)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.attempts, copy.exit_code, str(copy)) == (RetryExhaustedError, 4, -9, str(error))


@pytest.mark.parametrize("spelling, name", [
    ("FAIL_FAST", "fail_fast"),
    ("Continue", "continue"),
    ("RETRY", "retry"),
    ("FALLBACK", "fallback"),
    (ProofFailureAction.FAIL_FAST, "fail_fast"),
    (FailureAction.RETRY, "retry"),
])
def test_failure_actions_take_the_seeds_spellings(tmp_path, spelling, name):
    zk = create_zk_integration(failure_action=spelling, run_dir=tmp_path / "run")
    assert zk.get_stats()["failure_action"] == zk.runtime.handler.name == name


def test_modes_take_any_case_in_every_front_door(tmp_path, pot_zk_cli):
    production = create_zk_integration(mode="PRODUCTION", run_dir=tmp_path / "a", overrides=["srs.allow_dev_srs=true"])
    assert (production.runtime.mode, production.get_stats()["failure_action"], production.runtime.schedule.max_attempts) == ("production", "fail_fast", 1)
    assert create_zk_integration(enabled=False, mode="Disabled", run_dir=tmp_path / "b").runtime.proving_enabled is False
    with AutoProver(tmp_path / "c", mode="Research") as research:
        assert (research.runtime.mode, research.runtime.schedule.max_attempts) == ("research", 2)
    with pytest.raises(ConfigurationError, match="handler=CONTINUE"):
        AutoProver(tmp_path / "d", ["handler=CONTINUE"])
    shown = pot_zk_cli("show-config", "mode=RESEARCH", "handler=FAIL_FAST")
    assert "mode=research proving=on strategy=zk-groth16 handler=fail_fast attempts=2" in shown.stdout, shown.stderr


@pytest.fixture
def pot_zk_cli(tmp_path):
    script = Path(sys.executable).parent / "pot-zk"

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *arguments], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    return run


QUIET_CALL = """
import copy, sys, torch
from pot_zk.auto_prover import auto_prove_training_step
from pot_zk.exceptions import RetryExhaustedError
torch.manual_seed(0)
after = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
before = copy.deepcopy(after)
with torch.no_grad():
    after[0].weight.add_(0.01)
try:
    auto_prove_training_step(before, after, (torch.rand(2, 4), torch.rand(2, 2)), 0.01, work_dir=sys.argv[1],
                             overrides=[f"prover.binary={sys.argv[2]}", "retry.initial_delay_s=0.01", "retry.jitter_s=0"])
except RetryExhaustedError:
    pass
"""


def test_a_library_call_prints_nothing_even_when_its_proof_fails(tmp_path, make_prover):
    """A fresh interpreter without any logging configuration: the failed attempts, the gave-up
    and the halt are in the audit trail only."""
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", QUIET_CALL, str(run), str(make_prover("crash"))],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert [r["event"] for r in trail(run)][-4:] == ["attempt", "strategy.failed", "halt", "run.end"]


def test_what_a_library_call_has_to_say_goes_to_the_logger_and_the_cli_prints_it(tmp_path, make_prover, caplog, capsys):
    zk = create_zk_integration(failure_action="retry", max_retries=0, run_dir=tmp_path / "run",
                               overrides=[f"prover.binary={make_prover('garbage')}"])
    with caplog.at_level(logging.WARNING, logger="pot_zk.console"):
        zk.prove_job(4, tmp_path / "witness.safetensors")
    zk.close()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "pot_zk.console"]
    assert lines[0] == ("WARNING", lines[0][1]) and lines[0][1].startswith("step 4: zk-halo2 attempt 1 failed: ProverProtocolError")
    assert any(message.startswith("step 4: proof parked in") for _, message in lines)
    assert capsys.readouterr() == ("", "")

    assert main(["prove-pending", str(tmp_path / "run" / "pending"), "retry=none"]) == 1
    err = capsys.readouterr().err
    assert "pot-zk warning: step 4: zk-halo2 attempt 1 failed: ProverProtocolError" in err
    events = [json.loads(line) for line in (tmp_path / "run" / "audit.jsonl").read_text().splitlines()]
    started = next(i for i, e in enumerate(events) if e["event"] == "pending.start")
    assert events[started]["parked"] == 1 and events[-1]["event"] == "run.end" and events[-1]["still_parked"] == 1, "a run's lifecycle"
    assert logging.getLogger("pot_zk.console").propagate and len(logging.getLogger("pot_zk.console").handlers) == 1


def test_success_rate_counts_every_proof_and_zk_success_rate_only_zero_knowledge_ones(tmp_path, make_prover):
    before, after, batch = sgd_step()
    program = make_prover("crash")
    zk = create_zk_integration(failure_action="fallback", max_retries=0, run_dir=tmp_path / "run", overrides=[f"prover.binary={program}"])
    assert zk.generate_training_proof(before, after, batch, LEARNING_RATE, step=0)["proof_type"] == "freivalds"
    stats = zk.get_stats()
    assert (stats["success_rate"], stats["zk_success_rate"], stats["proof_types"]) == (1.0, 0.0, {"freivalds": 1})
    assert make_prover("ok", "zk-halo2") == program
    assert zk.generate_training_proof(before, after, batch, LEARNING_RATE, step=1)["proof_type"] == "zk-halo2"
    zk.close()
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert (stats["requested"], stats["success_rate"], stats["zk_success_rate"], stats["zk_delivered"]) == (2, 1.0, 0.5, 1)
    assert stats["proof_types"] == {"freivalds": 1, "zk-halo2": 1}
