"""Retry schedules: what is retried (the seed's flow: every ProofGenerationError, nothing
else), how often, and the sleeps planned between attempts."""

from __future__ import annotations

import pytest

from pot_zk.config import build, compose_config
from pot_zk.exceptions import (
    ConfigurationError,
    InvalidModelStateError,
    ProofGenerationError,
    ProverCrashError,
    ProverNotFoundError,
    ProverProtocolError,
    ProverTimeoutError,
    RetryExhaustedError,
    WitnessBuilderError,
)
from pot_zk.proving.retry import RetrySchedule, call_with_retry


class FailingAttempts:
    """Raises the given errors in order, then returns "proof"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "proof"


def crash() -> ProverCrashError:
    return ProverCrashError("crashed", binary_name="p", exit_code=1, stderr="boom")


def test_retryable_errors_are_retried_until_success():
    slept: list[float] = []
    attempt = FailingAttempts(crash(), crash())
    result, attempts = call_with_retry(attempt, RetrySchedule(max_attempts=4, initial_delay_s=1, multiplier=2), sleep=slept.append)
    assert (result, attempts, attempt.calls) == ("proof", 3, 3)
    assert slept == [1.0, 2.0]


def test_exhausted_schedule_raises_with_attempts_and_last_error():
    slept: list[float] = []
    last = crash()
    attempt = FailingAttempts(crash(), crash(), last)
    with pytest.raises(RetryExhaustedError) as caught:
        call_with_retry(attempt, RetrySchedule(max_attempts=3, initial_delay_s=0.5, multiplier=3), sleep=slept.append)
    assert caught.value.attempts == 3
    assert caught.value.last_error is last
    assert caught.value.to_record()["last_error"]["error_class"] == "ProverCrashError"
    assert slept == [0.5, 1.5]


@pytest.mark.parametrize("error", [
    ProofGenerationError("deterministic", retryable=False, exit_code=70),
    ProverProtocolError("garbage on stdout"),
    ProverTimeoutError("too slow", timeout_s=1.0),
], ids=["deterministic", "protocol", "timeout"])
def test_every_proof_generation_error_is_retried_on_the_schedule_transient_or_not(error):
    slept: list[float] = []
    attempt = FailingAttempts(*[error] * 3)
    with pytest.raises(RetryExhaustedError) as caught:
        call_with_retry(attempt, RetrySchedule(max_attempts=3, initial_delay_s=1, multiplier=2), sleep=slept.append)
    assert (caught.value.attempts, caught.value.last_error, attempt.calls, slept) == (3, error, 3, [1.0, 2.0])
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("error", [
    RetryExhaustedError(attempts=2, last_error=crash()),
    ProverNotFoundError("prover", ["/opt"]),
    InvalidModelStateError("NaN in weights"),
    WitnessBuilderError("bad witness"),
    ConfigurationError("bad request"),
    ValueError("not a pot-zk error"),
])
def test_other_errors_are_tried_exactly_once_and_surface_as_themselves(error):
    slept: list[float] = []
    attempt = FailingAttempts(error)
    with pytest.raises(type(error)) as caught:
        call_with_retry(attempt, RetrySchedule(max_attempts=5), sleep=slept.append)
    assert caught.value is error
    assert attempt.calls == 1
    assert slept == []


def test_delays_are_capped_and_jitter_is_added_before_the_cap():
    slept: list[float] = []
    schedule = RetrySchedule(max_attempts=6, initial_delay_s=1, multiplier=2, max_delay_s=5, jitter_s=0.25)
    with pytest.raises(RetryExhaustedError):
        call_with_retry(FailingAttempts(*[crash() for _ in range(6)]), schedule, sleep=slept.append, uniform=lambda low, high: high)
    assert slept == [1.25, 2.25, 4.25, 5.0, 5.0]


def test_a_single_attempt_schedule_never_sleeps():
    slept: list[float] = []
    with pytest.raises(RetryExhaustedError) as caught:
        call_with_retry(FailingAttempts(crash()), RetrySchedule(max_attempts=1), sleep=slept.append)
    assert caught.value.attempts == 1
    assert slept == []


@pytest.mark.parametrize(("option", "attempts", "base_sleeps"), [
    ("none", 1, []),
    ("once", 2, [2.0]),
    ("default", 4, [1.0, 2.0, 4.0]),
    ("aggressive", 7, [0.5, 1.5, 4.5, 13.5, 40.5, 121.5]),
])
def test_each_configured_schedule_plans_its_documented_sleeps(option, attempts, base_sleeps):
    schedule = build(compose_config([f"retry={option}", "run_dir=/nonexistent"])).schedule
    no_jitter: list[float] = []
    full_jitter: list[float] = []
    for uniform, slept in ((lambda low, high: low, no_jitter), (lambda low, high: high, full_jitter)):
        attempt = FailingAttempts(*[crash() for _ in range(attempts)])
        with pytest.raises(RetryExhaustedError) as caught:
            call_with_retry(attempt, schedule, sleep=slept.append, uniform=uniform)
        assert caught.value.attempts == attempt.calls == attempts
    assert no_jitter == base_sleeps
    assert full_jitter == [min(schedule.max_delay_s, s + schedule.jitter_s) for s in base_sleeps]


def test_schedule_rejects_zero_attempts():
    with pytest.raises(ConfigurationError):
        RetrySchedule(max_attempts=0)
