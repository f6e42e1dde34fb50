"""The typed view of the configuration that training needs: :class:`TrainingPlan`.

Made by :func:`pot_zk.config.build.build` (the one boundary) from the groups ``model``,
``data``, ``train``, ``policy``, ``executor``, ``prover``, ``circuit``, ``srs`` and
``cache_dir``: the step kind and its architecture, the backend's circuit spec and commitment
scheme, the data, the schedule, the policy and where proofs run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from pot_zk.backends.base import CommitmentScheme, KeySettings, ProverBackend
from pot_zk.data.datasets import DataSettings
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.base import ModelSettings, StepKind
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.kinds.schedule import Schedule


@dataclass(frozen=True)
class WitnessSettings:
    """Which step witnesses a run keeps (config group ``witness``; :mod:`pot_zk.runs.witnesses`)."""

    retain: str = "auto"
    max_step_bytes: int = 1 << 20


@dataclass(frozen=True)
class LoggerSettings:
    """Where a run's scalars go (config group ``logger``; :mod:`pot_zk.core.scalars`)."""

    name: str = "none"
    log_dir: Path | None = None


@dataclass(frozen=True)
class TrainingPlan:
    """What a training run does, typed."""

    run_dir: Path
    cache_dir: Path
    model: ModelSettings
    spec: Any
    """The configured backend's circuit spec of one step (a :class:`~pot_zk.backends.base.Statement`)."""
    backend: ProverBackend
    circuit: Mapping[str, Any]
    """The backend's circuit settings as configured (config group ``circuit``)."""
    keys: KeySettings
    data: DataSettings
    epochs: int
    max_steps: int | None
    seed: int
    progress: bool
    policy: Callable[[int], bool]
    executor: str
    workers: int
    witness: WitnessSettings = WitnessSettings()
    batch_order: str = "seeded"
    """``seeded``: epochs visit the batches in a seeded permutation (``pot-zk train``);
    ``recorded``: a user loop chose each step's batch, recorded per step (:mod:`pot_zk.hooks`)."""
    scheduler_address: str | None = None
    """executor=dask: the scheduler to use; None starts a LocalCluster."""
    streamed: bool = False
    """``batch_order: recorded`` only: the loop committed each batch as it came (``pot_zk.track``),
    none declared up front."""
    schedule: Schedule | None = None
    """The declared learning-rate schedule (``optimizer.schedule``): step t trains at
    ``schedule.rate(t)``, and the statement takes the rate as a public value; None: every step at
    the statement's own rate."""
    logger: LoggerSettings = LoggerSettings()
    record_loss: bool = True
    """Each step's training loss goes into its commitment record (``train.record_loss``)."""

    @property
    def kind(self) -> StepKind:
        return STEP_KINDS.get(self.spec.kind)

    def learning_rate(self, step: int) -> float:
        """The learning rate step ``step`` trains at: the schedule's, or the statement's own."""
        return self.spec.learning_rate if self.schedule is None else self.schedule.rate(step)

    def check_rates(self, steps: int) -> None:
        """ConfigurationError, before anything is written, when the schedule's rate at one of
        the first ``steps`` steps rounds to the statement's update constant 0: that step would
        train nothing (exact training refuses it when it comes; verify fails it, ``zero-rate``)."""
        constant = getattr(self.spec, "rate_constant", None)
        if self.schedule is None or constant is None:
            return
        idle = next((step for step in range(steps) if constant(self.schedule.rate(step)) == 0), None)
        if idle is not None:
            raise ConfigurationError(
                f"the schedule {self.schedule.describe()} trains step {idle} at rate {self.schedule.rate(idle):.3g}, which rounds to "
                f"the update constant 0 at circuit.param_scale={self.spec.param_scale}: that step would train nothing; raise "
                "circuit.param_scale or keep the rate higher (eta_min, end_factor, gamma)",
                key="optimizer.schedule",
            )

    @property
    def commitments(self) -> CommitmentScheme:
        """How every step of the run is committed: the scheme of the backend's circuit."""
        return self.backend.commitments(self.spec)

    @property
    def base_run(self) -> Path | None:
        """The run whose final model is the frozen base, for a kind that has one (LoRA)."""
        return self.model.base_run if self.kind.base_architecture(self.spec.architecture) is not None else None
