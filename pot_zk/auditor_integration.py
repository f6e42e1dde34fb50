"""The seed's auditor integration: ``create_zk_integration(...)`` -> :class:`ZkIntegration` with
``generate_training_proof(model_before, model_after, batch_data, learning_rate, step=, epoch=)``
and ``get_stats()``.

Here the failure action applies (:class:`ProofFailureAction`): ``fail_fast`` raises the final
error, ``continue`` returns a ``failed`` result and goes on, ``retry`` parks the step for
``pot-zk prove-pending``, ``fallback`` proves with the next strategy of the chain, labelled.
The mode applies too: ``enabled=False`` (``mode=disabled``) runs no prover and returns None.
"""

from __future__ import annotations

import itertools
import time
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Sequence

from torch import nn

from pot_zk.auto_prover import default_work_dir, training_step
from pot_zk.config.build import path_override
from pot_zk.core.audit import run_start_fields
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.proving.pipeline import ProofResult, ProvingPipeline
from pot_zk.proving.retry import Sleep
from pot_zk.proving.strategies import ProofJob, StrategyRegistry
from pot_zk.runs.lifecycle import RunLifecycle
from pot_zk.step_proof import BatchData, ProvingSetup, StepProof


class ProofFailureAction(Enum):
    """What becomes of a step whose proof has finally failed (the ``handler`` config group)."""

    FAIL_FAST = "fail_fast"
    CONTINUE = "continue"
    RETRY = "retry"
    FALLBACK = "fallback"


class ZkIntegration:
    """Proves the training steps of one run; writes the audit trail and statistics into its run dir."""

    def __init__(self, lifecycle: RunLifecycle, *, sleep: Sleep = time.sleep) -> None:
        self.lifecycle = lifecycle
        self.runtime = lifecycle.runtime
        self.setup = ProvingSetup.from_runtime(self.runtime)
        self.cache_dir = self.setup.cache_dir
        self.stats = lifecycle.stats
        self.audit = lifecycle.open(event="run.start", stats_dir=self.runtime.run_dir, **run_start_fields(self.runtime.config))
        self.pipeline: ProvingPipeline = lifecycle.pipeline(sleep=sleep)
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
    ) -> StepProof | None:
        """Prove that ``model_after`` is one SGD (or LoRA, detected) step from ``model_before``.

        The step is validated and its commitments recorded in the audit trail in every mode.
        Returns None when proving is disabled; otherwise the result the failure action made of
        it (``proved``, ``failed``, ``parked``), or the final error under ``fail_fast``.
        """
        training = training_step(model_before, model_after, batch_data, learning_rate, architecture)
        index = next(self._numbers) if step is None else step
        statement = self.setup.statement_for(training)
        enabled = self.runtime.proving_enabled
        self.audit.event("commitment", step=index, epoch=epoch, scheduled=enabled, **statement.commitment.to_dict())
        if not enabled:
            return None
        result = self.pipeline.prove(self.setup.write_job(training, index, self.runtime.run_dir))
        return StepProof(result, statement, epoch)

    def prove_job(
        self,
        step: int,
        witness_path: str | Path,
        *,
        circuit: dict[str, Any] | None = None,
        kind: str = "sgd",
        options: dict[str, Any] | None = None,
    ) -> ProofResult | None:
        """Prove an already written witness file (the lower-level job API); None when proving
        is disabled (nothing runs, nothing is counted)."""
        if not self.runtime.proving_enabled:
            return None
        run_dir = self.runtime.run_dir
        job = ProofJob(
            step=step,
            kind=kind,
            circuit=dict(circuit or {}),
            witness_path=str(witness_path),
            cache_dir=str(self.cache_dir),
            output_dir=str(run_dir / "proofs" / f"step-{step:08d}"),
            options=dict(options or {}),
        )
        return self.pipeline.prove(job)

    def get_stats(self) -> dict[str, Any]:
        """The proving statistics (``success_rate`` = proofs delivered / proofs requested,
        ``attempt_success_rate`` = successful attempts / attempts; both 0.0 before any), with
        ``enabled``, ``mode`` and ``failure_action``."""
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
    run_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    registry: StrategyRegistry | None = None,
    sleep: Sleep = time.sleep,
) -> ZkIntegration:
    """An integration for one run.

    ``mode`` (default ``development``; ``disabled`` when ``enabled=False``) sets the failure
    action and the retries; ``failure_action`` (fail_fast, continue, retry, fallback) and
    ``max_retries`` (retries after the first attempt) override them. ``run_dir`` defaults to a
    new ``outputs/zk_integration/...`` directory; ``cache_dir`` (compiled circuits, keys) to the
    configured one. ``overrides`` are Hydra overrides applied last (``["prover.timeout_s=60"]``).
    An unknown mode or failure action is a ConfigurationError naming the valid ones.
    """
    if not enabled and mode not in (None, "disabled"):
        raise ConfigurationError(f"enabled=False means mode=disabled, not mode={mode}", key="mode")
    action = failure_action.value if isinstance(failure_action, ProofFailureAction) else failure_action
    composed = [f"mode={'disabled' if not enabled else mode or 'development'}"]
    composed += [] if action is None else [f"handler={action}"]
    composed += [] if max_retries is None else [f"retry.max_retries={max_retries}"]
    composed += [] if cache_dir is None else [path_override("cache_dir", Path(cache_dir).expanduser().absolute())]
    directory = Path(run_dir).absolute() if run_dir is not None else default_work_dir("zk_integration")
    return ZkIntegration(RunLifecycle.configure([*composed, *overrides], run_dir=directory, registry=registry), sleep=sleep)
