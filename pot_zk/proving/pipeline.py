"""The proving pipeline: a primary strategy through the retry schedule, then the failure
handler of the mode; every attempt audited and counted."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import tenacity

from pot_zk.core.audit import AuditLog
from pot_zk.core.prover_processes import closing_run
from pot_zk.exceptions import PotZkError, ProofGenerationError, RetryExhaustedError
from pot_zk.core.protocol import ProverResponse
from pot_zk.proving.receipt import ReceiptCheck
from pot_zk.proving.retry import RetrySchedule, Sleep, call_with_retry, wall_clock_sleep
from pot_zk.proving.stats import ProvingStats
from pot_zk.proving.strategies import ProverStrategy
from pot_zk.core.protocol import ProverRequest

STATUSES = ("proved", "failed", "parked")


@dataclass(frozen=True)
class ProofResult:
    """What became of one job. ``proof_type``/``strategy`` name what produced the proof
    (a fallback's, when the fallback handler stepped in)."""

    step: int
    status: str
    proof_type: str | None
    strategy: str | None
    response: ProverResponse | None
    error: dict[str, Any] | None
    attempts: int

    def to_record(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "status": self.status,
            "proof_type": self.proof_type,
            "strategy": self.strategy,
            "response": None if self.response is None else self.response.to_json_dict(),
            "error": self.error,
            "attempts": self.attempts,
        }


@dataclass(frozen=True)
class StrategyOutcome:
    """One strategy run through the whole retry schedule: a response or the final error."""

    strategy: str
    response: ProverResponse | None
    error: PotZkError | None
    attempts: int


@dataclass(frozen=True)
class ProofFailure:
    """Handed to a failure handler when the primary strategy has given up."""

    job: ProverRequest
    strategy: ProverStrategy
    error: PotZkError
    attempts: int


class FailureHandler(Protocol):
    name: str

    def __call__(self, failure: ProofFailure, pipeline: "ProvingPipeline") -> ProofResult: ...


def _call_strategy(strategy: ProverStrategy, job: ProverRequest) -> ProverResponse:
    try:
        return strategy(job)
    except PotZkError:
        raise
    except Exception as error:
        raise ProofGenerationError(
            f"strategy {strategy.name} raised {type(error).__name__}: {error}", retryable=False, strategy=strategy.name
        ) from error


class ProvingPipeline:
    def __init__(
        self,
        strategy: ProverStrategy,
        schedule: RetrySchedule,
        handler: FailureHandler,
        audit: AuditLog,
        stats: ProvingStats,
        *,
        sleep: Sleep = wall_clock_sleep,
        uniform: Callable[[float, float], float] = random.uniform,
        check: ReceiptCheck | None = None,
    ) -> None:
        self.strategy = strategy
        self.schedule = schedule
        self.handler = handler
        self.audit = audit
        self.stats = stats
        self.sleep = sleep
        self.uniform = uniform
        self.check = check
        """Checks each "ok" answer's proof before it counts (:class:`~pot_zk.proving.receipt.ReceiptCheck`):
        a proof that does not verify is a failed attempt, handled as any other."""

    def prove(self, job: ProverRequest, record: Callable[[ProofResult], None] | None = None) -> ProofResult:
        """Prove one job. Returns its result; raises only when the handler halts (fail_fast).
        ``record``: writes the result where it belongs (``proofs.jsonl``), right after its
        ``proof.result`` audit record; a signal between the two is raised after both
        (:func:`~pot_zk.core.prover_processes.closing_run`; review44: an interrupted ``respond``
        left an outcome the trail had and ``proofs.jsonl`` lacked, and the run failed verify)."""
        outcome = self.run_strategy(self.strategy, job)
        if outcome.error is None:
            result = proved(job, outcome)
        else:
            failure = ProofFailure(job, self.strategy, outcome.error, outcome.attempts)
            try:
                result = self.handler(failure, self)
            except PotZkError as error:
                self.stats.record_result("failed")
                self.audit.event("halt", step=job.step, handler=self.handler.name, error=error.to_record())
                raise
        with closing_run(finishing="this proof's outcome records", ends_run=False):
            self.stats.record_result(result.status, result.proof_type)
            self.audit.event("proof.result", handler=self.handler.name, **result.to_record())
            if record is not None:
                record(result)
        return result

    def run_strategy(self, strategy: ProverStrategy, job: ProverRequest) -> StrategyOutcome:
        """Run one strategy through the retry schedule, auditing and counting each attempt."""
        log = self.audit.bind(step=job.step, strategy=strategy.name)
        attempts = 0

        def attempt() -> ProverResponse:
            nonlocal attempts
            attempts += 1
            started = time.perf_counter()
            try:
                response = _call_strategy(strategy, job)
                checked = self.check(job, response, strategy.name) if self.check is not None else None
            except PotZkError as error:
                duration = time.perf_counter() - started
                self.stats.record_attempt(strategy.name, duration, error.error_class)
                log.event("attempt", attempt=attempts, outcome="failed", duration_s=duration, error=error.to_record())
                raise
            duration = time.perf_counter() - started
            self.stats.record_attempt(strategy.name, duration, None)
            log.event(
                "attempt", attempt=attempts, outcome="ok", duration_s=duration, proof_type=response.proof_type,
                timings=response.timings, sizes=response.sizes, checked_on_receipt=checked is not None,
                **({"checked_sha256": checked} if checked is not None else {}),
                **({"notes": response.notes} if response.notes else {}),
            )
            return response

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            planned = state.next_action.sleep if state.next_action else 0.0
            log.event("retry.sleep", attempt=state.attempt_number, planned_sleep_s=planned,
                      error_class=type(error).__name__)

        try:
            response, _ = call_with_retry(attempt, self.schedule, before_sleep=before_sleep, sleep=self.sleep, uniform=self.uniform)
        except PotZkError as error:
            counted = error.attempts if isinstance(error, RetryExhaustedError) else attempts
            log.event("strategy.failed", attempts=counted, error=error.to_record())
            return StrategyOutcome(strategy.name, None, error, counted)
        return StrategyOutcome(strategy.name, response, None, attempts)


def proved(job: ProverRequest, outcome: StrategyOutcome, attempts: int | None = None) -> ProofResult:
    assert outcome.response is not None
    return ProofResult(
        step=job.step,
        status="proved",
        proof_type=outcome.response.proof_type,
        strategy=outcome.strategy,
        response=outcome.response,
        error=None,
        attempts=outcome.attempts if attempts is None else attempts,
    )


def failed(failure: ProofFailure, status: str = "failed", error: dict[str, Any] | None = None, attempts: int | None = None) -> ProofResult:
    return ProofResult(
        step=failure.job.step,
        status=status,
        proof_type=None,
        strategy=failure.strategy.name,
        response=None,
        error=failure.error.to_record() if error is None else error,
        attempts=failure.attempts if attempts is None else attempts,
    )
