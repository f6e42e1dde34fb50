"""What runs on a Dask worker for ``executor=dask`` (the trainer's side is
:mod:`pot_zk.proving.dask_executor`, which imports this module only once Dask is chosen and
installed; these two are the only modules that import Dask).

* :func:`prove_on_worker`: one strategy call -- a run of the prover program, or an in-process
  certificate -- and its response or typed error; nothing else (no audit, no retries).
* :class:`HeldKeysPlugin` and :func:`prove_held`: for a backend that can hold its proving keys
  (:meth:`~pot_zk.backends.base.ProverBackend.key_holder`: groth16), the plugin gives every
  worker process one key holder for the run, so each worker loads a proving key once, from
  the path the request names (on a cluster, a shared file system), and proves every later
  request for it in-process. The request is answered as the prover program would answer it
  (its checks and exit codes: :func:`~pot_zk.core.prover_program.answer`) and the answer
  classified as the program's would be (:func:`~pot_zk.core.runner.classify`), so a refusal
  or failure comes back with the same error class as from the program.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import distributed
from distributed.diagnostics.plugin import WorkerPlugin

from pot_zk.backends.base import KeyHolder
from pot_zk.backends.registry import BACKENDS
from pot_zk.core.prover_program import answer
from pot_zk.core.protocol import ProverResponse
from pot_zk.core.runner import CompletedProver, classify
from pot_zk.exceptions import PotZkError, ProofGenerationError
from pot_zk.proving.strategies import ProgramStrategy, ProverStrategy
from pot_zk.core.protocol import ProverRequest


@dataclass(frozen=True)
class WorkerOutcome:
    """What a worker sends back: the response, or the typed error the strategy raised."""

    response: ProverResponse | None
    error: PotZkError | None


def _outcome(name: str, call: Callable[[], ProverResponse]) -> WorkerOutcome:
    try:
        return WorkerOutcome(call(), None)
    except PotZkError as error:
        return WorkerOutcome(None, error)
    except Exception as error:
        wrapped = ProofGenerationError(f"strategy {name} raised {type(error).__name__}: {error}", retryable=False, strategy=name)
        return WorkerOutcome(None, wrapped)


def prove_on_worker(strategy: ProverStrategy, job: ProverRequest) -> WorkerOutcome:
    """Runs on a Dask worker: one strategy call."""
    return _outcome(strategy.name, lambda: strategy(job))


class HeldKeysPlugin(WorkerPlugin):
    """One key holder of ``backend`` per worker process, from the worker's start (or its
    restart) to the plugin's removal when the run ends (which drops the keys)."""

    def __init__(self, backend: str, name: str) -> None:
        self.backend = backend
        self.name = name
        self.holder: KeyHolder | None = None

    def setup(self, worker: Any) -> None:
        self.holder = BACKENDS.get(self.backend).key_holder()

    def teardown(self, worker: Any) -> None:
        self.holder = None


def prove_held(strategy: ProgramStrategy, job: ProverRequest, plugin: str) -> WorkerOutcome:
    """Runs on a Dask worker: ``strategy``'s request answered by the worker's key holder
    (registered as ``plugin``), as the program ``strategy.binary`` would answer it."""
    held: HeldKeysPlugin = distributed.get_worker().plugins[plugin]
    backend = BACKENDS.get(held.backend)
    raw = json.dumps(job.to_json_dict())

    def call() -> ProverResponse:
        assert held.holder is not None, "the plugin was set up"
        code, document = answer(raw, backend.provable_kinds(), held.holder.prove, backend=backend.name)
        return classify(CompletedProver(binary=strategy.binary, exit_code=code, stdout=json.dumps(document), stderr=""), job.output_dir)

    return _outcome(strategy.name, call)
