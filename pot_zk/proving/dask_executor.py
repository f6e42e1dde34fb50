"""``executor=dask``: proof jobs proven on a Dask distributed cluster.

With :mod:`pot_zk.proving.dask_worker` (the worker's side), the only modules that import Dask
(an optional extra: ``pip install 'pot-zk[dask]'``); this one imports it only when an executor
is made.

What runs where. The trainer keeps the whole :class:`~pot_zk.proving.pipeline.ProvingPipeline` — the
retry schedule, the failure handler, the statistics and the audit trail — and runs
``pipeline.prove`` in ``workers`` trainer threads, like the ``process`` executor. Each
*strategy call* inside it (one attempt of the prover program, or of a fallback strategy)
is sent to the cluster by :class:`DaskStrategy` and waited for. So a worker only runs
``strategy(job)`` and returns the response or the typed error; every attempt, retry sleep,
fallback and result is audited by the trainer, one ``attempt`` record per attempt, exactly as
with the other executors.

Held keys. When the strategy is the prover program of a backend that can hold its proving keys
(``prover.binary`` is the backend's own program and the backend has a
:meth:`~pot_zk.backends.base.ProverBackend.key_holder`: groth16), the attempt is not a run of the
program: a worker plugin registered for the run keeps one key holder per worker process, which
loads the key once and proves the request in the worker, answering as the program would
(:func:`~pot_zk.proving.dask_worker.prove_held`). The program's ``prover.timeout_s`` still
holds: an attempt that exceeds it is a :class:`~pot_zk.exceptions.ProverTimeoutError` and the
worker proving it is restarted (which stops the proof, as killing the program would). The
plugin is removed when the run ends, which drops the keys.

A worker that dies mid-proof is one failed attempt (:class:`~pot_zk.exceptions.ProverCrashError`,
retryable), not a silent rerun: the LocalCluster pot-zk starts has ``allowed_failures=0``, so
Dask reports the lost task instead of rescheduling it, and the retry schedule decides.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pot_zk.backends.registry import BACKENDS
from pot_zk.exceptions import ConfigurationError, ProverCrashError, ProverTimeoutError
from pot_zk.proving.executors import DoneFn, PoolExecutor, ProveFn
from pot_zk.proving.pipeline import ProofResult, ProvingPipeline, StrategyOutcome
from pot_zk.core.protocol import ProverResponse
from pot_zk.proving.strategies import ProgramStrategy, ProverStrategy
from pot_zk.core.protocol import ProverRequest

CONNECT_TIMEOUT_S = 30.0
POLL_S = 1.0
"""How often a held-key attempt's wait looks whether its worker has exceeded the time limit."""
RESTART_TIMEOUT_S = 60.0


def check_cluster(scheduler_address: str | None) -> None:
    """Before a run writes anything (review23: a missing Dask or an unreachable scheduler failed
    after the bundle was prepared, leaving a run that could neither be trained again nor
    resumed): Dask is installed, and the scheduler at ``scheduler_address`` answers.
    ConfigurationError otherwise."""
    distributed = _distributed()
    if scheduler_address is None:
        return
    from distributed.comm import parse_address
    from distributed.comm.registry import backends

    scheme = parse_address(scheduler_address)[0]
    if scheme not in backends:  # review25: a mistyped scheme was a traceback, then a minute's hang in the half-made Client
        raise ConfigurationError(
            f"executor.scheduler_address={scheduler_address}: unknown scheme {scheme!r} (Dask knows {', '.join(sorted(backends))})",
            key="executor.scheduler_address",
        )
    try:
        client = distributed.Client(scheduler_address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:  # ValueError: an address Dask cannot parse (review25: tpc://...)
        raise ConfigurationError(f"cannot connect to the Dask scheduler at {scheduler_address}: {error}", key="executor.scheduler_address") from error
    client.close()


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as error:
        raise ConfigurationError(
            "executor=dask needs Dask distributed, an optional extra: pip install 'pot-zk[dask]'",
            key="executor.name",
        ) from error
    return distributed


def _worker_side() -> Any:
    _distributed()
    from pot_zk.proving import dask_worker

    return dask_worker


class ClusterCalls:
    """Sends strategy calls to the cluster behind ``client``; registers (once per backend) the
    worker plugin that holds that backend's keys, and removes it at :meth:`close`."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._plugins: dict[str, str | None] = {}

    def held_plugin(self, strategy: ProverStrategy, job: ProverRequest) -> str | None:
        """The plugin holding the keys ``strategy`` proves ``job`` with (None: run the strategy)."""
        backend_name = str(job.circuit.get("backend"))
        if not isinstance(strategy, ProgramStrategy) or backend_name not in BACKENDS:
            return None
        backend = BACKENDS.get(backend_name)
        if Path(strategy.binary).name != backend.program:
            return None
        with self._lock:
            if backend_name not in self._plugins:
                name = None
                if backend.key_holder() is not None:
                    name = f"pot-zk-held-keys-{backend_name}-{uuid.uuid4().hex[:8]}"
                    self.client.register_plugin(_worker_side().HeldKeysPlugin(backend_name, name), name=name)
                self._plugins[backend_name] = name
            return self._plugins[backend_name]

    def worker_running(self, key: str) -> str | None:
        return next((worker for worker, keys in self.client.processing().items() if key in keys), None)

    def close(self) -> None:
        for name in [n for n in self._plugins.values() if n is not None]:
            self.client.unregister_worker_plugin(name)
        self._plugins.clear()


class DaskStrategy:
    """A strategy whose calls run ``inner(job)`` on the cluster (or, for a program whose
    backend holds keys, the worker's key holder); same name, same errors."""

    def __init__(self, inner: ProverStrategy, calls: ClusterCalls) -> None:
        self.inner = inner
        self.name = inner.name
        self._calls = calls

    def __call__(self, job: ProverRequest) -> ProverResponse:
        distributed = _distributed()
        worker = _worker_side()
        key = f"pot-zk-step-{job.step:08d}-{self.name}-{uuid.uuid4().hex[:8]}"
        plugin = self._calls.held_plugin(self.inner, job)
        client = self._calls.client
        if plugin is None:
            future = client.submit(worker.prove_on_worker, self.inner, job, key=key, pure=False)
        else:
            future = client.submit(worker.prove_held, self.inner, job, plugin, key=key, pure=False)
        try:
            outcome = future.result() if plugin is None else self._held_result(job, key, future)
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

    def _held_result(self, job: ProverRequest, key: str, future: Any) -> Any:
        """The worker's outcome, waited for up to the program's ``timeout_s`` from the moment
        the scheduler reports the task on a worker (time queued before does not count)."""
        assert isinstance(self.inner, ProgramStrategy)
        began, worker = None, None
        while True:
            try:
                return future.result(timeout=POLL_S)
            except TimeoutError:
                if future.done():
                    continue
                if began is None:
                    worker = self._calls.worker_running(key)
                    began = None if worker is None else time.monotonic()
                elif time.monotonic() - began > self.inner.timeout_s:
                    assert worker is not None
                    raise self._timed_out(job, worker, future) from None

    def _timed_out(self, job: ProverRequest, worker: str, future: Any) -> ProverTimeoutError:
        """Stop the proof that ran too long: cancel it and restart the worker proving it."""
        assert isinstance(self.inner, ProgramStrategy)
        future.cancel()
        try:
            self._calls.client.restart_workers([worker], timeout=RESTART_TIMEOUT_S)
            stopped = f"Dask worker {worker} was restarted to stop it"
        except Exception as error:  # e.g. a worker without a nanny cannot be restarted
            stopped = f"Dask worker {worker} could not be restarted ({type(error).__name__}: {error}) and may still be proving"
        return ProverTimeoutError(
            f"proving step {job.step} with the key held by a Dask worker exceeded its {self.inner.timeout_s} s limit; {stopped}. "
            "Raise prover.timeout_s if the circuit needs more time.",
            timeout_s=self.inner.timeout_s,
            binary_name=self.inner.binary,
            worker=worker,
        )

    def __repr__(self) -> str:
        return f"DaskStrategy({self.inner!r})"


class ClusterPipeline(ProvingPipeline):
    """``pipeline`` with each strategy call sent to the cluster: the primary strategy and the
    fallback handler's alike. Shares the pipeline's audit trail and statistics."""

    def __init__(self, pipeline: ProvingPipeline, calls: ClusterCalls) -> None:
        super().__init__(
            pipeline.strategy, pipeline.schedule, pipeline.handler, pipeline.audit, pipeline.stats,
            sleep=pipeline.sleep, uniform=pipeline.uniform, check=pipeline.check,
        )
        self._calls = calls

    def run_strategy(self, strategy: ProverStrategy, job: ProverRequest) -> StrategyOutcome:
        return super().run_strategy(DaskStrategy(strategy, self._calls), job)


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
        self._calls = ClusterCalls(self.client)
        super().__init__(ClusterPipeline(pipeline, self._calls).prove, done, workers)
        self._ordered = StepOrderedResults(self._done)

    def submit(self, job: ProverRequest) -> None:
        ticket = self._ordered.take_ticket()
        self._futures.append(self._pool.submit(self._run_ticket, job, ticket))

    def _run_ticket(self, job: ProverRequest, ticket: int) -> None:
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
            try:
                self._calls.close()
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
