"""Proving statistics: they add up, per strategy, and export to Prometheus text."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pot_zk.core.audit import AuditLog
from pot_zk.proving.handlers import ContinueOnFailure
from pot_zk.proving.pipeline import ProvingPipeline
from pot_zk.proving.retry import RetrySchedule
from pot_zk.proving.stats import ProvingStats, percentile
from pot_zk.proving.strategies import ProgramStrategy


def samples(stats: ProvingStats) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(stats.prometheus_text().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_stats_of_a_mixed_run_add_up(tmp_path, make_strategy, job):
    stats = ProvingStats()
    audit = AuditLog(tmp_path / "audit.jsonl")
    schedule = RetrySchedule(max_attempts=2, initial_delay_s=0)
    outcomes = []
    for strategy in (make_strategy("ok", "test-proof"), make_strategy("crash"), make_strategy("exit", "65"), make_strategy("garbage")):
        pipeline = ProvingPipeline(strategy, schedule, ContinueOnFailure(), audit, stats, sleep=lambda s: None)
        outcomes.append(pipeline.prove(job).status)
    got = stats.get_stats()
    assert outcomes == ["proved", "failed", "failed", "failed"]
    assert got["attempts"] == 1 + 2 + 1 + 2
    assert got["successes"] == 1
    assert got["failures_by_class"] == {"ProverCrashError": 2, "WitnessBuilderError": 1, "ProverProtocolError": 2}
    assert got["attempts"] == got["successes"] + sum(got["failures_by_class"].values())
    assert got["attempt_success_rate"] == pytest.approx(1 / 6)
    assert (got["requested"], got["delivered"], got["success_rate"]) == (4, 1, pytest.approx(1 / 4))
    assert (got["proof_types"], got["zk_delivered"], got["zk_success_rate"]) == ({"test-proof": 1}, 0, 0.0)
    assert got["results"] == {"proved": 1, "failed": 3}
    assert got["by_strategy"]["zk-halo2"]["attempts"] == 6
    assert 0 < got["latency_p50_s"] <= got["latency_p95_s"]

    exported = samples(stats)
    assert exported[("pot_zk_proof_attempts_total", (("outcome", "ok"), ("strategy", "zk-halo2")))] == 1
    assert exported[("pot_zk_proof_attempts_total", (("outcome", "failed"), ("strategy", "zk-halo2")))] == 5
    assert exported[("pot_zk_proof_failures_total", (("error_class", "ProverCrashError"), ("strategy", "zk-halo2")))] == 2
    assert exported[("pot_zk_proof_results_total", (("status", "failed"),))] == 3
    assert exported[("pot_zk_proof_attempt_seconds_count", (("strategy", "zk-halo2"),))] == 6

    json_path, prom_path = stats.write(tmp_path)
    assert json.loads(json_path.read_text())["attempts"] == 6
    assert b"pot_zk_proof_attempts_total" in prom_path.read_bytes()


def test_each_stats_instance_has_its_own_registry():
    first, second = ProvingStats(), ProvingStats()
    first.record_attempt("a", 0.1, None)
    assert second.get_stats()["attempts"] == 0
    assert ("pot_zk_proof_attempts_total", (("outcome", "ok"), ("strategy", "a"))) not in samples(second)


def test_percentiles_use_the_nearest_rank():
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.5) == 10.0
    assert percentile(values, 0.95) == 19.0
    assert percentile([], 0.5) is None


def test_a_proof_delivered_on_its_third_attempt_is_a_full_success(tmp_path, make_prover, job):
    stats = ProvingStats()
    assert (stats.get_stats()["success_rate"], stats.get_stats()["attempt_success_rate"]) == (0.0, 0.0)
    program = make_prover("transient-then-ok", str(tmp_path / "state"), "2")
    strategy = ProgramStrategy(name="zk-halo2", binary=str(program), timeout_s=10.0)
    pipeline = ProvingPipeline(strategy, RetrySchedule(max_attempts=3, initial_delay_s=0), ContinueOnFailure(),
                               AuditLog(tmp_path / "audit.jsonl"), stats, sleep=lambda s: None)
    assert pipeline.prove(job).attempts == 3
    got = stats.get_stats()
    assert got["success_rate"] == 1.0
    assert got["attempt_success_rate"] == pytest.approx(1 / 3)
    assert got["by_strategy"]["zk-halo2"]["attempt_success_rate"] == pytest.approx(1 / 3)
