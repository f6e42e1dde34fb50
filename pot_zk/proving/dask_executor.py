"""``executor=dask``: proof jobs proven on a Dask distributed cluster.

The only module that imports Dask (an optional extra: ``pip install 'pot-zk[dask]'``).

What runs where. The trainer keeps the whole :class:`~pot_zk.proving.pipeline.ProvingPipeline` — the
retry schedule, the failure handler, the statistics and the audit trail — and runs
``pipeline.prove`` in ``workers`` trainer threads, like the ``process`` executor. Each
*strategy call* inside it (one attempt of the prover program, or of a fallback strategy)
is sent to the cluster by :class:`DaskStrategy` and waited for. So a worker only runs
``strategy(job)`` and returns the response or the typed error; every attempt, retry sleep,
fallback and result is audited by the trainer, one ``attempt`` record per attempt, exactly as
with the other executors.

A worker that dies mid-proof is one failed attempt (:class:`~pot_zk.exceptions.ProverCrashError`,
retryable), not a silent rerun: the LocalCluster pot-zk starts has ``allowed_failures=0``, so
Dask reports the lost task instead of rescheduling it, and the retry schedule decides.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

from pot_zk.exceptions import ConfigurationError, PotZkError, ProofGenerationError, ProverCrashError
from pot_zk.proving.executors import DoneFn, PoolExecutor, ProveFn
from pot_zk.proving.pipeline import ProofResult, ProvingPipeline, StrategyOutcome
from pot_zk.core.protocol import ProverResponse
from pot_zk.proving.strategies import ProofJob, ProverStrategy

CONNECT_TIMEOUT_S = 30.0


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as error:
        raise ConfigurationError(
            "executor=dask needs Dask distributed, an optional extra: pip install 'pot-zk[dask]'",
            key="executor.name",
        ) from error
    return distributed


@dataclass(frozen=True)
class WorkerOutcome:
    """What a worker sends back: the response, or the typed error the strategy raised."""

    response: ProverResponse | None
    error: PotZkError | None


def prove_on_worker(strategy: ProverStrategy, job: ProofJob) -> WorkerOutcome:
    """Runs on a Dask worker: one strategy call, nothing else (no audit, no retries)."""
    try:
        return WorkerOutcome(strategy(job), None)
    except PotZkError as error:
        return WorkerOutcome(None, error)
    except Exception as error:
        wrapped = ProofGenerationError(
            f"strategy {strategy.name} raised {type(error).__name__}: {error}", retryable=False, strategy=strategy.name
        )
        return WorkerOutcome(None, wrapped)


class DaskStrategy:
    """A strategy whose calls run ``inner(job)`` on the cluster; same name, same errors."""

    def __init__(self, inner: ProverStrategy, client: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self._client = client

    def __call__(self, job: ProofJob) -> ProverResponse:
        distributed = _distributed()
        key = f"pot-zk-step-{job.step:08d}-{self.name}-{uuid.uuid4().hex[:8]}"
        future = self._client.submit(prove_on_worker, self.inner, job, key=key, pure=False)
        try:
            outcome = future.result()
        except distributed.KilledWorker as error:
            raise ProverCrashError(
                f"the Dask worker proving step {job.step} with {self.name} died: {error}",
                strategy=self.name,
                worker=str(getattr(error, "last_worker", "")),
            ) from error
        finally:
            future.release()
        if outcome.error is not None:
            raise outcome.error
        assert outcome.response is not None
        return outcome.response

    def __repr__(self) -> str:
        return f"DaskStrategy({self.inner!r})"


class ClusterPipeline(ProvingPipeline):
    """``pipeline`` with each strategy call sent to the cluster: the primary strategy and the
    fallback handler's alike. Shares the pipeline's audit trail and statistics."""

    def __init__(self, pipeline: ProvingPipeline, client: Any) -> None:
        super().__init__(
            pipeline.strategy, pipeline.schedule, pipeline.handler, pipeline.audit, pipeline.stats,
            sleep=pipeline.sleep, uniform=pipeline.uniform,
        )
        self._client = client

    def run_strategy(self, strategy: ProverStrategy, job: ProofJob) -> StrategyOutcome:
        return super().run_strategy(DaskStrategy(strategy, self._client), job)


class DaskExecutor(PoolExecutor):
    """Up to ``workers`` jobs in flight, proven on the cluster at ``scheduler_address``, or on
    a LocalCluster of ``workers`` single-threaded worker processes started (and closed) here.
    Results are recorded in step order (the order jobs were submitted)."""

    name = "dask"

    def __init__(self, pipeline: ProvingPipeline, done: DoneFn, workers: int, scheduler_address: str | None = None) -> None:
        if workers < 1:
            raise ConfigurationError(f"executor.workers must be >= 1, got {workers}", key="executor.workers")
        distributed = _distributed()
        self._cluster = None
        if scheduler_address is None:
            self._cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                scheduler_kwargs={"allowed_failures": 0},
            )
            scheduler_address = self._cluster.scheduler_address
        try:
            self.client = distributed.Client(scheduler_address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as error:
            self._close_cluster()
            raise ConfigurationError(
                f"cannot connect to the Dask scheduler at {scheduler_address}: {error}", key="executor.scheduler_address"
            ) from error
        super().__init__(ClusterPipeline(pipeline, self.client).prove, done, workers)
        self._ordered = StepOrderedResults(self._done)

    def submit(self, job: ProofJob) -> None:
        ticket = self._ordered.take_ticket()
        self._futures.append(self._pool.submit(self._run_ticket, job, ticket))

    def _run_ticket(self, job: ProofJob, ticket: int) -> None:
        try:
            result = self._prove(job)
        except BaseException:
            self._ordered.settle(None, ticket)
            raise
        self._ordered.settle(result, ticket)

    def shutdown(self) -> None:
        try:
            super().shutdown()
        finally:
            self.client.close()
            self._close_cluster()

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


class StepOrderedResults:
    """Hands results to ``done`` in ticket order, whatever order they finish in. A job that
    ends without a result (its handler halted) is settled with None and skipped."""

    def __init__(self, done: DoneFn) -> None:
        self._done = done
        self._lock = threading.Lock()
        self._issued = 0
        self._next = 0
        self._settled: dict[int, ProofResult | None] = {}

    def take_ticket(self) -> int:
        with self._lock:
            self._issued += 1
            return self._issued - 1

    def settle(self, result: ProofResult | None, ticket: int) -> None:
        with self._lock:
            self._settled[ticket] = result
            while self._next in self._settled:
                ready = self._settled.pop(self._next)
                self._next += 1
                if ready is not None:
                    self._done(ready)


def create_dask_executor(prove: ProveFn, done: DoneFn, workers: int, *, scheduler_address: str | None = None) -> DaskExecutor:
    """``prove`` must be a :class:`ProvingPipeline`'s ``prove``: the executor keeps that
    pipeline's retries, handler and audit in the trainer and sends only its strategy calls
    to the cluster."""
    _distributed()
    pipeline = getattr(prove, "__self__", None)
    if not isinstance(pipeline, ProvingPipeline):
        raise ConfigurationError("executor=dask needs a ProvingPipeline's prove method", key="executor.name")
    return DaskExecutor(pipeline, done, workers, scheduler_address)
