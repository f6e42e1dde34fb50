"""Retry schedules on tenacity, with the seed's flow: every
:class:`~pot_zk.exceptions.ProofGenerationError` (a crash, a timeout, a protocol error, a
deterministic failure) is retried on the schedule, and when the last attempt has failed too the
caller gets :class:`~pot_zk.exceptions.RetryExhaustedError` (``attempts``, ``last_error``).
Every other error (ProverNotFoundError, InvalidModelStateError, WitnessBuilderError,
ConfigurationError, ...) ends the attempts at once and surfaces as itself.

``max_attempts`` counts every attempt including the first; a mode's "retries N" means
``max_attempts = N + 1`` (production's 0 retries = one attempt, then RetryExhaustedError).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, TypeVar

import tenacity
from tenacity.wait import wait_base

from pot_zk.exceptions import ConfigurationError, ProofGenerationError, RetryExhaustedError

T = TypeVar("T")
Sleep = Callable[[float], None]
BeforeSleep = Callable[[tenacity.RetryCallState], None]


def wall_clock_sleep(seconds: float) -> None:
    """The default sleep between attempts: tenacity's own (``tenacity.nap.sleep``, which sleeps
    with ``time.sleep``), looked up at each call, so that a test may replace it as tenacity
    documents."""
    tenacity.nap.sleep(seconds)


@dataclass(frozen=True)
class RetrySchedule:
    max_attempts: int
    """Attempts in total, the first included (>= 1)."""
    initial_delay_s: float = 1.0
    multiplier: float = 2.0
    max_delay_s: float = 60.0
    """Cap on one sleep, jitter included."""
    jitter_s: float = 0.0
    """Up to this many seconds, uniformly random, are added to each sleep."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"retry schedule needs max_attempts >= 1, got {self.max_attempts}", key="retry.max_attempts")
        if min(self.initial_delay_s, self.max_delay_s, self.jitter_s) < 0 or self.multiplier < 1:
            raise ConfigurationError("retry delays must be >= 0 and the multiplier >= 1", key="retry")

    @property
    def max_retries(self) -> int:
        return self.max_attempts - 1

    def base_delay(self, failed_attempt: int) -> float:
        """The sleep after failed attempt ``failed_attempt`` (1-based), without jitter."""
        return min(self.max_delay_s, self.initial_delay_s * self.multiplier ** (failed_attempt - 1))


class wait_backoff(wait_base):
    """Exponential backoff with additive jitter and a cap, in tenacity's wait style."""

    def __init__(self, schedule: RetrySchedule, uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.schedule = schedule
        self.uniform = uniform

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        schedule = self.schedule
        jitter = self.uniform(0.0, schedule.jitter_s) if schedule.jitter_s else 0.0
        return min(schedule.max_delay_s, schedule.base_delay(retry_state.attempt_number) + jitter)


def is_retried(error: BaseException) -> bool:
    """The seed's rule: a ProofGenerationError is retried (one that already gave up is not)."""
    return isinstance(error, ProofGenerationError) and not isinstance(error, RetryExhaustedError)


def call_with_retry(
    attempt: Callable[[], T],
    schedule: RetrySchedule,
    *,
    before_sleep: BeforeSleep | None = None,
    sleep: Sleep = wall_clock_sleep,
    uniform: Callable[[float, float], float] = random.uniform,
) -> tuple[T, int]:
    """Call ``attempt`` until it succeeds or the schedule says stop; return (result, attempts).

    Any error but a ProofGenerationError propagates as itself from the attempt that raised
    it; ProofGenerationErrors are retried, and the last one becomes
    RetryExhaustedError(attempts=..., last_error=...).
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_retried),
        stop=tenacity.stop_after_attempt(schedule.max_attempts),
        wait=wait_backoff(schedule, uniform),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=False,
    )
    try:
        result = retrying(attempt)
    except tenacity.RetryError as exhausted:
        last_attempt = exhausted.last_attempt
        error = last_attempt.exception()
        assert error is not None
        raise RetryExhaustedError(attempts=last_attempt.attempt_number, last_error=error) from error
    return result, int(retrying.statistics["attempt_number"])
