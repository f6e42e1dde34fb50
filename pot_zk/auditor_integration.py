"""The seed's auditor integration: ``create_zk_integration(...)`` -> :class:`ZkIntegration` with
``generate_training_proof(model_before, model_after, batch_data, learning_rate, step=, epoch=)``
and ``get_stats()``.

Here the failure action applies (:class:`ProofFailureAction`, also importable as
``FailureAction``; a string in any case: ``"FAIL_FAST"``, ``"continue"``): ``fail_fast`` raises
the final error, ``continue`` returns a ``failed`` result and goes on, ``retry`` parks the step
for ``pot-zk prove-pending``, ``fallback`` proves with the next strategy of the chain, labelled.
The mode applies too: ``enabled=False`` (``mode=disabled``) runs no prover and returns a
result that says ``disabled``.
"""

from __future__ import annotations

import itertools
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Sequence

from torch import nn

from pot_zk.auto_prover import default_work_dir, seed_overrides, training_step
from pot_zk.core.audit import run_start_fields
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.proving.pipeline import ProofResult, ProvingPipeline
from pot_zk.proving.receipt import ReceiptCheck
from pot_zk.proving.retry import Sleep, wall_clock_sleep
from pot_zk.proving.strategies import StrategyRegistry
from pot_zk.core.protocol import ProverRequest
from pot_zk.runs.lifecycle import RunLifecycle
from pot_zk.step_proof import BatchData, ProvingSetup, StepProof, disabled_result


class ProofFailureAction(Enum):
    """What becomes of a step whose proof has finally failed (the ``handler`` config group)."""

    FAIL_FAST = "fail_fast"
    CONTINUE = "continue"
    RETRY = "retry"
    FALLBACK = "fallback"


FailureAction = ProofFailureAction
"""The same enum under its shorter name."""


class ZkIntegration:
    """Proves the training steps of one run; writes the audit trail and statistics into its run dir."""

    def __init__(self, lifecycle: RunLifecycle, *, sleep: Sleep = wall_clock_sleep) -> None:
        self.lifecycle = lifecycle
        self.runtime = lifecycle.runtime
        self.setup = ProvingSetup.from_runtime(self.runtime)
        self.cache_dir = self.setup.cache_dir
        self.stats = lifecycle.stats
        self.audit = lifecycle.open(event="run.start", stats_dir=self.runtime.run_dir, **run_start_fields(self.runtime.config))
        self.pipeline: ProvingPipeline = lifecycle.pipeline(sleep=sleep)
        self._recorded: dict[int, dict[str, Any]] = {}
        """The commitments of the step being proven, what its proof is checked against on receipt
        (review55: these APIs counted a program's bad proof as proved); a job proven from a
        witness file alone (:meth:`prove_job`) is not checked."""
        self._check = ReceiptCheck(self.setup.backend, self._recorded.get, None, required=False)
        self.pipeline.check = self._check
        self._numbers = itertools.count()

    def generate_training_proof(
        self,
        model_before: nn.Module | Mapping[str, object],
        model_after: nn.Module | Mapping[str, object],
        batch_data: BatchData,
        learning_rate: float,
        step: int | None = None,
        epoch: int | None = None,
        *,
        architecture: MlpArchitecture | None = None,
    ) -> StepProof:
        """Prove that ``model_after`` is one SGD (or LoRA, detected) step from ``model_before``.

        The step is validated and its commitments recorded in the audit trail in every mode.
        Returns the result the failure action made of it (``proved``, ``failed``, ``parked``;
        ``disabled`` when proving is disabled), or raises the final error under ``fail_fast``.
        """
        training = training_step(model_before, model_after, batch_data, learning_rate, architecture)
        index = next(self._numbers) if step is None else step
        statement = self.setup.statement_for(training)
        enabled = self.runtime.proving_enabled
        self.audit.event("commitment", step=index, epoch=epoch, scheduled=enabled, **statement.commitment.to_dict())
        if not enabled:
            return StepProof(disabled_result(index), statement, epoch)
        self._recorded.clear()  # only this step's: a prove_job of the same number is not checked against it (review56)
        self._recorded[index] = statement.commitment.to_dict()
        job = self.setup.write_job(training, index, self.runtime.run_dir)
        self._check.pin(job)
        result = self.pipeline.prove(job)
        return StepProof(result, statement, epoch)

    def prove_job(
        self,
        step: int,
        witness_path: str | Path,
        *,
        circuit: dict[str, Any] | None = None,
        kind: str = "sgd",
        options: dict[str, Any] | None = None,
    ) -> ProofResult:
        """Prove an already written witness file (the lower-level job API); a ``disabled``
        result when proving is disabled (nothing runs, nothing is counted)."""
        if not self.runtime.proving_enabled:
            return disabled_result(step)
        run_dir = self.runtime.run_dir
        job = ProverRequest(
            step=step,
            kind=kind,
            circuit=dict(circuit or {}),
            witness_path=str(witness_path),
            cache_dir=str(self.cache_dir),
            output_dir=str(run_dir / "proofs" / f"step-{step:08d}"),
            options=dict(options or {}),
        )
        self._recorded.clear()
        return self.pipeline.prove(job)

    def get_stats(self) -> dict[str, Any]:
        """The proving statistics (:mod:`pot_zk.proving.stats`): ``success_rate`` = proofs of
        any type delivered / proofs requested, ``zk_success_rate`` = zero-knowledge proofs
        delivered / proofs requested, ``proof_types`` (delivered proofs by type),
        ``attempt_success_rate`` = successful attempts / attempts (each 0.0 before any), with
        ``enabled``, ``mode`` and ``failure_action``. A disabled step is not counted."""
        return {
            **self.stats.get_stats(),
            "enabled": self.runtime.proving_enabled,
            "mode": self.runtime.mode,
            "failure_action": self.pipeline.handler.name,
        }

    def close(self) -> None:
        """End the run: write stats.json / metrics.prom and the closing ``run.end`` record."""
        self.lifecycle.end("completed")

    def __enter__(self) -> "ZkIntegration":
        return self

    def __exit__(self, exc_type: type | None, error: BaseException | None, traceback: Any) -> None:
        """``run.end`` says ``completed``, ``halted`` (a pot-zk error, e.g. under fail_fast) or
        ``aborted`` (any other exception)."""
        self.lifecycle.__exit__(exc_type, error, traceback)


def create_zk_integration(
    enabled: bool = True,
    failure_action: str | ProofFailureAction | None = None,
    max_retries: int | None = None,
    *,
    mode: str | None = None,
    retry_delay: float | None = None,
    run_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    registry: StrategyRegistry | None = None,
    sleep: Sleep = wall_clock_sleep,
) -> ZkIntegration:
    """An integration for one run.

    ``mode`` (default ``development``; ``disabled`` when ``enabled=False``) sets the failure
    action and the retries; ``failure_action`` (fail_fast, continue, retry, fallback; any case,
    or a :class:`ProofFailureAction`), ``max_retries`` (retries after the first attempt) and
    ``retry_delay`` (the first sleep, in seconds) override them. ``run_dir`` defaults to a new
    ``outputs/zk_integration/...`` directory; ``cache_dir`` (compiled circuits, keys) to the
    configured one. ``overrides`` are Hydra overrides applied last (``["prover.timeout_s=60"]``).
    An unknown mode or failure action is a ConfigurationError naming the valid ones.
    """
    if not enabled and mode is not None and mode.lower() != "disabled":
        raise ConfigurationError(f"enabled=False means mode=disabled, not mode={mode}", key="mode")
    composed = seed_overrides(mode="disabled" if not enabled else mode or "development", failure_action=failure_action,
                              max_retries=max_retries, retry_delay=retry_delay, cache_dir=cache_dir)
    directory = Path(run_dir).absolute() if run_dir is not None else default_work_dir("zk_integration")
    return ZkIntegration(RunLifecycle.configure([*composed, *overrides], run_dir=directory, registry=registry), sleep=sleep)
