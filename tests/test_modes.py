"""Each mode and failure handler, observed through the auditor integration (its job API) with real
failing, crashing, hanging and garbage-printing prover programs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pot_zk import create_zk_integration
from pot_zk.core.audit_verify import verify_audit
from pot_zk.cli.main import main
from pot_zk.exceptions import ProverProtocolError, RetryExhaustedError
from pot_zk.core.protocol import ProverResponse
from pot_zk.proving.strategies import StrategyRegistry
from pot_zk.core.protocol import ProverRequest


def events(run_dir: Path, name: str) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "audit.jsonl").read_text().splitlines()]
    return [r for r in records if r["event"] == name]


def integration(tmp_path, prover: Path, *, failure_action: str, max_retries: int, enabled: bool = True,
                timeout_s: float = 10.0, registry: StrategyRegistry | None = None, slept: list | None = None):
    return create_zk_integration(
        enabled=enabled, failure_action=failure_action, max_retries=max_retries, run_dir=tmp_path / "run",
        overrides=[f"prover.binary={prover}", f"prover.timeout_s={timeout_s}"],
        registry=registry, sleep=(slept if slept is not None else []).append,
    )


def witness(tmp_path) -> str:
    path = tmp_path / "witness.safetensors"
    path.write_bytes(b"w")
    return str(path)


def test_development_continues_after_a_crashing_prover_with_three_retries(tmp_path, make_prover):
    slept: list[float] = []
    zk = integration(tmp_path, make_prover("crash"), failure_action="continue", max_retries=3, slept=slept)
    result = zk.prove_job(1, witness(tmp_path))
    assert result.status == "failed" and result.attempts == 4
    assert result.error["error_class"] == "RetryExhaustedError"
    assert result.error["last_error"]["stderr"].strip() == "boom: simulated prover crash"
    assert len(slept) == 3
    assert all(base <= s <= base + 0.5 for base, s in zip([1, 2, 4], slept))
    later = zk.prove_job(2, witness(tmp_path))
    assert later.status == "failed"
    zk.close()
    run_dir = tmp_path / "run"
    attempts = events(run_dir, "attempt")
    assert len(attempts) == 8
    assert attempts[0]["error"]["exit_code"] == 1 and attempts[0]["error"]["retryable"] is True
    assert [e["planned_sleep_s"] for e in events(run_dir, "retry.sleep")[:3]] == slept[:3]
    assert verify_audit(run_dir / "audit.jsonl").closed


def test_production_halts_on_a_crashing_prover_after_one_attempt(tmp_path, make_prover):
    slept: list[float] = []
    zk = integration(tmp_path, make_prover("crash"), failure_action="fail_fast", max_retries=0, slept=slept)
    with pytest.raises(RetryExhaustedError) as caught:
        zk.prove_job(1, witness(tmp_path))
    assert caught.value.attempts == 1 and slept == []
    assert events(tmp_path / "run", "halt")[0]["error"]["last_error"]["exit_code"] == 1


def test_garbage_output_is_retried_then_halts_fail_fast_with_retry_exhausted(tmp_path, make_prover):
    slept: list[float] = []
    zk = integration(tmp_path, make_prover("garbage"), failure_action="fail_fast", max_retries=3, slept=slept)
    with pytest.raises(RetryExhaustedError) as caught:
        zk.prove_job(1, witness(tmp_path))
    assert isinstance(caught.value.last_error, ProverProtocolError) and caught.value.attempts == 4
    assert zk.get_stats()["attempts"] == 4 and len(slept) == 3


def test_research_continues_after_a_hanging_prover_with_one_retry(tmp_path, make_prover):
    zk = integration(tmp_path, make_prover("hang"), failure_action="continue", max_retries=1, timeout_s=0.5)
    result = zk.prove_job(3, witness(tmp_path))
    assert (result.status, result.attempts) == ("failed", 2)
    assert result.error["last_error"]["error_class"] == "ProverTimeoutError"
    assert zk.get_stats()["failures_by_class"] == {"ProverTimeoutError": 2}


def test_disabled_mode_runs_no_prover(tmp_path, make_prover):
    zk = integration(tmp_path, make_prover("crash"), failure_action="continue", max_retries=0, enabled=False)
    assert zk.prove_job(1, witness(tmp_path)).status == "disabled"
    assert zk.get_stats()["attempts"] == zk.get_stats()["requested"] == 0
    zk.close()
    assert events(tmp_path / "run", "attempt") == []


def test_transient_failures_are_retried_into_a_proof(tmp_path, make_prover):
    zk = integration(tmp_path, make_prover("transient-then-ok", str(tmp_path / "state"), "2"), failure_action="fail_fast", max_retries=3)
    result = zk.prove_job(5, witness(tmp_path))
    assert (result.status, result.attempts, result.proof_type) == ("proved", 3, "zk-halo2")
    assert Path(result.response.artifacts["proof"]).parent == tmp_path / "run" / "proofs" / "step-00000005"


def test_retry_handler_parks_the_job_and_prove_pending_completes_it(tmp_path, make_prover, capsys):
    prover = make_prover("garbage")
    zk = integration(tmp_path, prover, failure_action="retry", max_retries=0)
    result = zk.prove_job(4, witness(tmp_path))
    zk.close()
    parked = tmp_path / "run" / "pending" / "step-00000004.json"
    assert result.status == "parked" and parked.is_file()
    record = json.loads(parked.read_text())
    assert record["job"]["step"] == 4 and record["error"]["error_class"] == "RetryExhaustedError"
    assert record["error"]["last_error"]["error_class"] == "ProverProtocolError"

    assert main(["prove-pending", str(parked.parent), "retry=none"]) == 1
    assert parked.is_file() and json.loads(parked.read_text())["attempts"] == 2
    assert "still parked" in capsys.readouterr().out

    assert make_prover("ok", "zk-halo2") == prover
    assert main(["prove-pending", str(parked.parent), "retry=none"]) == 0
    assert not parked.exists()
    assert "step 4: proved (zk-halo2)" in capsys.readouterr().out
    assert (tmp_path / "run" / "proofs" / "step-00000004" / "proof.json").is_file()
    trail = tmp_path / "run" / "audit.jsonl"
    assert verify_audit(trail).ok
    assert [e["step"] for e in events(tmp_path / "run", "unparked")] == [4]


class FakeFallback:
    """A stand-in fallback strategy (the real freivalds/reexec come from other modules)."""

    def __init__(self, name: str, fails: bool = False) -> None:
        self.name = name
        self.fails = fails
        self.jobs: list[ProverRequest] = []

    def __call__(self, job: ProverRequest) -> ProverResponse:
        self.jobs.append(job)
        if self.fails:
            raise ValueError(f"{self.name} cannot prove step {job.step}")
        return ProverResponse(proof_type=self.name, artifacts={})


def test_fallback_handler_proves_with_the_next_strategy_and_labels_it(tmp_path, make_prover):
    freivalds, reexec = FakeFallback("freivalds", fails=True), FakeFallback("reexec")
    registry = StrategyRegistry({"freivalds": lambda: freivalds, "reexec": lambda: reexec})
    zk = integration(tmp_path, make_prover("signal"), failure_action="fallback", max_retries=1, registry=registry)
    result = zk.prove_job(9, witness(tmp_path))
    assert (result.status, result.strategy, result.proof_type) == ("proved", "reexec", "reexec")
    assert result.attempts == 2 + 2 + 1
    assert len(freivalds.jobs) == 2 and reexec.jobs[0].step == 9
    hops = [(e["from_strategy"], e["to_strategy"]) for e in events(tmp_path / "run", "fallback")]
    assert hops == [("zk-halo2", "freivalds"), ("freivalds", "reexec")]
    assert events(tmp_path / "run", "proof.result")[0]["proof_type"] == "reexec"


def test_fallback_chain_that_all_fails_returns_a_failed_result_listing_each_error(tmp_path, make_prover):
    registry = StrategyRegistry({"freivalds": lambda: FakeFallback("freivalds", True), "reexec": lambda: FakeFallback("reexec", True)})
    zk = integration(tmp_path, make_prover("exit", "65"), failure_action="fallback", max_retries=3, registry=registry)
    result = zk.prove_job(2, witness(tmp_path))
    assert result.status == "failed" and result.attempts == 1 + 4 + 4
    assert [e["strategy"] for e in result.error["chain"]] == ["zk-halo2", "freivalds", "reexec"]
    assert result.error["chain"][0]["error_class"] == "WitnessBuilderError"
