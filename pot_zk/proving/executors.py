"""Where proof jobs run relative to the training loop.

``inline``: the loop waits for each proof. ``process``: jobs go to a local pool of
``workers`` threads (default: one per usable core, :func:`resolve_workers`), each driving
prover *programs* (separate processes), so training goes on while they prove; ``drain`` waits
for every queued job. ``dask``: the strategy calls go to a Dask cluster
(:mod:`pot_zk.proving.dask_executor`, imported only when chosen). Executors are registered by
name in :data:`EXECUTORS` (``executor.name`` in config). A job whose handler halts (fail_fast)
is re-raised in the training loop at the next ``check``.

``prove`` is a :class:`~pot_zk.proving.pipeline.ProvingPipeline`'s ``prove``; ``done`` records a
job's outcome (``proofs.jsonl``). ``inline`` proves in the main thread, where a Ctrl-C lands: it
hands ``done`` to the pipeline as its ``record``, written in the same signal-deferring block as
the outcome's ``proof.result`` audit record (a signal between the two left the trail with an
outcome proofs.jsonl lacked, and verify failed the run). The pools prove and record in threads of
their own, where no signal lands.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from pot_zk.core.registry import Registry
from pot_zk.exceptions import ConfigurationError
from pot_zk.proving.pipeline import ProofResult
from pot_zk.core.protocol import ProverRequest

ProveFn = Callable[..., ProofResult]
"""``prove(job)``, or ``prove(job, record=done)`` (the inline executor)."""
DoneFn = Callable[[ProofResult], None]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; the machine's count where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def resolve_workers(workers: int | None) -> int:
    """``executor.workers``: a count >= 1, or None for one per usable core."""
    if workers is None:
        return usable_cores()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigurationError(f"executor.workers must be an integer >= 1 (or null: one per usable core), got {workers!r}", key="executor.workers")
    return workers


class InlineExecutor:
    name = "inline"

    def __init__(self, prove: ProveFn, done: DoneFn) -> None:
        self._prove = prove
        self._done = done

    def submit(self, job: ProverRequest) -> None:
        self._prove(job, record=self._done)

    def check(self) -> None:
        """Nothing can be pending: failures surface in submit."""

    def drain(self) -> None:
        """Every job finished in submit."""

    def pending(self) -> int:
        return 0

    def shutdown(self) -> None:
        """Nothing to stop."""


class PoolExecutor:
    name = "process"

    def __init__(self, prove: ProveFn, done: DoneFn, workers: int) -> None:
        if workers < 1:
            raise ConfigurationError(f"executor.workers must be >= 1, got {workers}", key="executor.workers")
        self._prove = prove
        self._done = done
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pot-zk-prover")
        self._futures: list[Future] = []
        self._lock = threading.Lock()

    def _run(self, job: ProverRequest) -> None:
        result = self._prove(job)
        with self._lock:
            self._done(result)

    def submit(self, job: ProverRequest) -> None:
        self._futures.append(self._pool.submit(self._run, job))

    def check(self) -> None:
        for future in [f for f in self._futures if f.done()]:
            self._futures.remove(future)
            future.result()

    def drain(self) -> None:
        while self._futures:
            self._futures.pop(0).result()

    def pending(self) -> int:
        return sum(1 for f in self._futures if not f.done())

    def shutdown(self) -> None:
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)


def create_inline(prove: ProveFn, done: DoneFn, workers: int, **options: Any) -> InlineExecutor:
    return InlineExecutor(prove, done)


def create_pool(prove: ProveFn, done: DoneFn, workers: int, **options: Any) -> PoolExecutor:
    return PoolExecutor(prove, done, workers)


EXECUTORS: Registry[Callable[..., Any]] = Registry(
    "executor",
    "executor.name",
    {
        "inline": "pot_zk.proving.executors:create_inline",
        "process": "pot_zk.proving.executors:create_pool",
        "dask": "pot_zk.proving.dask_executor:create_dask_executor",
    },
)
"""Executor name -> factory ``(prove, done, workers, **options)``; ``options`` are the executor
group's own settings (``dask``: ``scheduler_address``)."""


def create_executor(name: str, prove: ProveFn, done: DoneFn, workers: int = 1, **options: Any):
    return EXECUTORS.get(name)(prove, done, workers, **options)
