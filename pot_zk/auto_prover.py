"""Proving single training steps from Python: ``auto_prove_training_step`` and :class:`AutoProver`.

Layering, as the seed has it: these prove a step or raise. Every prover attempt goes through
the configured retry schedule (every ProofGenerationError is retried); when the proof has
finally failed they raise the typed error: ``RetryExhaustedError`` (a ProofGenerationError;
``attempts``, ``last_error``), or at once ``ProverNotFoundError``, ``WitnessBuilderError``,
``ConfigurationError``. What to do with a step whose proof failed (the failure actions
``continue`` and ``retry``) is the trainer's decision:
:func:`pot_zk.auditor_integration.create_zk_integration`, ``proven_training`` and
``pot-zk train``. ``handler=fallback`` works here too: a cheaper, labelled proof, or the primary
error when the whole chain fails. The mode applies: ``mode=disabled`` runs no prover (the
result says ``disabled``), the mode's retries are the schedule.

SGD and LoRA steps are told apart from the models themselves
(:func:`pot_zk.kinds.registry.step_from_models`); :meth:`AutoProver.prove_sgd_step` and
:meth:`AutoProver.prove_lora_step` prove only their kind, the second against the declared
``lora_config`` (:mod:`pot_zk.lora_settings`).
The strategy chain, retry schedule, circuit settings and ``cache_dir`` come from the same Hydra
config as ``pot-zk train``: the seed's keywords (``mode``, ``max_retries``, ``retry_delay``)
stand for overrides, and ``overrides`` (such as ``["retry=none"]``) are applied last.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from torch import nn

from pot_zk.config.build import path_override
from pot_zk.core.audit import run_start_fields
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import capture_step, step_from_models
from pot_zk.kinds.sgd.step import step_from_states
from pot_zk.backends.base import Statement
from pot_zk.lora_settings import LoraSettings
from pot_zk.proving.handlers import FallbackChain
from pot_zk.proving.pipeline import ProofFailure, ProofResult, ProvingPipeline
from pot_zk.proving.receipt import ReceiptCheck
from pot_zk.proving.retry import Sleep, wall_clock_sleep
from pot_zk.runs.lifecycle import RunLifecycle
from pot_zk.step_proof import AnyStep, BatchData, ProvingSetup, StepProof, batch_tensors, disabled_result
from pot_zk.verify.step import StepStatement, StepVerdict, verify_step

TRAINER_ACTIONS = ("continue", "retry")
"""Failure actions that decide what becomes of a failed step: a trainer's, not AutoProver's."""

KIND_NAMES = {
    "sgd": "full SGD step (models without LoRA adapters, every weight trained)",
    "lora": "LoRA step (LoRA adapters trained, their base frozen)",
}


def default_work_dir(kind: str) -> Path:
    """A fresh path ``outputs/<kind>/<date>_<time>-<random>`` under the current directory
    (created when the first file is written)."""
    return (Path("outputs") / kind / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}-{uuid.uuid4().hex[:8]}").absolute()


SEED_BACKEND = "ezkl"
"""The backend of the seed's single-step calls (see :func:`seed_overrides`)."""


def seed_overrides(
    *,
    mode: str | None = None,
    failure_action: str | Enum | None = None,
    max_retries: int | None = None,
    retry_delay: float | None = None,
    cache_dir: str | Path | None = None,
) -> list[str]:
    """The Hydra overrides the seed's keyword arguments stand for; None leaves the config's.
    ``mode`` and ``failure_action`` in any case (``FAIL_FAST``) or as an enum member;
    ``max_retries`` counts the retries after the first attempt; ``retry_delay`` is the first
    sleep in seconds (then doubling).

    The seed's calls prove the steps of float models (trained by torch, not in an exact
    statement's integers), so they start from the backend that states a float step within a
    tolerance, :data:`SEED_BACKEND` (``prover=ezkl``): pot-zk's default backend (``groth16``)
    proves only steps its own exact arithmetic took. An override ``prover=groth16`` (applied
    last) proves models trained on its grid."""
    action = failure_action.value if isinstance(failure_action, Enum) else failure_action
    overrides = [f"prover={SEED_BACKEND}"]
    overrides += [] if mode is None else [f"mode={mode}"]
    overrides += [] if action is None else [f"handler={action}"]
    overrides += [] if max_retries is None else [f"retry.max_retries={max_retries}"]
    overrides += [] if retry_delay is None else [f"retry.initial_delay_s={retry_delay}"]
    overrides += [] if cache_dir is None else [path_override("cache_dir", Path(cache_dir).expanduser().absolute())]
    return overrides


def training_step(
    model_before: nn.Module | Mapping[str, object],
    model_after: nn.Module | Mapping[str, object],
    batch_data: BatchData,
    learning_rate: float,
    architecture: MlpArchitecture | None = None,
) -> AnyStep:
    """The validated step from two models (SGD or LoRA, detected) or two state dicts of an MLP
    (then ``architecture`` is needed). Bad input raises before anything is written."""
    inputs, targets = batch_tensors(batch_data)
    if isinstance(model_before, nn.Module) and isinstance(model_after, nn.Module):
        return step_from_models(model_before, model_after, inputs, targets, learning_rate)
    if architecture is None:
        raise InvalidModelStateError(
            "pass the models as nn.Module (SGD or LoRA is detected from them), or their state dicts with architecture=",
            expected_format="two nn.Module, or two state dicts and an MlpArchitecture",
            actual_format=f"{type(model_before).__name__}, {type(model_after).__name__}",
        )
    return step_from_states(_state(model_before), _state(model_after), inputs, targets, learning_rate, architecture)


def _state(model: nn.Module | Mapping[str, object]) -> dict[str, torch.Tensor]:
    if isinstance(model, nn.Module):
        return model.state_dict()
    return {key: torch.as_tensor(value) for key, value in model.items()}


@dataclass(frozen=True)
class ProofOrRaise:
    """AutoProver's failure handling: the fallback chain when one is configured; then the
    primary strategy's final error is raised (the chain's errors are in the audit trail)."""

    fallback: FallbackChain | None
    name: str = "fail_fast"

    def __call__(self, failure: ProofFailure, pipeline: ProvingPipeline) -> ProofResult:
        if self.fallback is not None:
            result = self.fallback(failure, pipeline)
            if result.status == "proved":
                return result
        raise failure.error


def _check_no_trainer_action(overrides: Sequence[str]) -> None:
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.key_or_group in ("handler", "handler.name") and str(override.value()).lower() in TRAINER_ACTIONS:
            raise ConfigurationError(
                f"AutoProver proves or raises; handler={override.value()} decides what a trainer does with a failed "
                "step (create_zk_integration, proven_training, pot-zk train). Use handler=fail_fast or handler=fallback.",
                key="handler",
                options=["fail_fast", "fallback"],
            )


class AutoProver:
    """Proves steps with the configured strategy, retry schedule and fallback chain, or raises.

    ``work_dir`` (default: a new ``outputs/auto_prover/...`` directory) receives the witnesses,
    proofs, the audit trail and, on :meth:`close`, ``stats.json``. ``lora_config`` (a peft
    ``LoraConfig`` or a dict: rank, alpha, target modules) declares the adapters of the LoRA
    steps it proves; ``mode``, ``max_retries`` and ``retry_delay`` as :func:`seed_overrides`
    says; ``overrides`` last. A bad setting is a ConfigurationError before anything is written."""

    def __init__(
        self,
        work_dir: str | Path | None = None,
        overrides: Sequence[str] = (),
        *,
        lora_config: Any = None,
        mode: str | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        cache_dir: str | Path | None = None,
        sleep: Sleep = wall_clock_sleep,
    ) -> None:
        overrides = [*seed_overrides(mode=mode, max_retries=max_retries, retry_delay=retry_delay, cache_dir=cache_dir), *overrides]
        _check_no_trainer_action(overrides)
        self.lora_settings = LoraSettings.of(lora_config)
        self.work_dir = Path(work_dir).absolute() if work_dir is not None else default_work_dir("auto_prover")
        self.lifecycle = RunLifecycle.configure(overrides, run_dir=self.work_dir)
        self.runtime = self.lifecycle.runtime
        self.setup = ProvingSetup.from_runtime(self.runtime)
        self.cache_dir = self.setup.cache_dir
        self.stats = self.lifecycle.stats
        self.audit = self.lifecycle.open(event="run.start", stats_dir=self.work_dir, **run_start_fields(self.runtime.config))
        handler = self.runtime.handler
        on_failure = ProofOrRaise(handler, "fallback") if isinstance(handler, FallbackChain) else ProofOrRaise(None)
        self._recorded: dict[int, dict[str, Any]] = {}
        """The commitments of the step being proven, what its proof is checked against on receipt (review55)."""
        self._check = ReceiptCheck(self.setup.backend, self._recorded.get, None)
        self.pipeline = ProvingPipeline(
            self.runtime.strategy, self.runtime.schedule, on_failure, self.audit, self.stats, sleep=sleep,
            check=self._check,
        )
        self._numbers = itertools.count()

    def spec_for(self, step: AnyStep) -> Statement:
        return self.setup.spec_for(step)

    def capture(self, model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> AnyStep:
        """Run one SGD step on ``model`` and capture it, as an SGD or a LoRA step by what the
        model is."""
        return capture_step(model, optimizer, inputs, targets)

    def prove(self, step: AnyStep, index: int | None = None, *, epoch: int | None = None) -> StepProof:
        """Prove ``step`` (numbered ``index``, default: the next number). With proving disabled
        the result says ``disabled`` (no prover runs); raises the typed error when the proof
        has finally failed, or when a LoRA step's adapters are not the declared ones."""
        if self.lora_settings is not None and step.kind == "lora":
            self.lora_settings.check(step)
        index = next(self._numbers) if index is None else index
        statement = self.setup.statement_for(step)
        self.audit.event("commitment", step=index, epoch=epoch, scheduled=self.runtime.proving_enabled, **statement.commitment.to_dict())
        if not self.runtime.proving_enabled:
            return StepProof(disabled_result(index), statement, epoch)
        self._recorded.clear()
        self._recorded[index] = statement.commitment.to_dict()
        job = self.setup.write_job(step, index, self.work_dir)
        self._check.pin(job)
        result = self.pipeline.prove(job)
        return StepProof(result, statement, epoch)

    def prove_sgd_step(
        self,
        model_before: nn.Module | Mapping[str, object],
        model_after: nn.Module | Mapping[str, object],
        batch_data: BatchData,
        learning_rate: float,
        step_number: int | None = None,
        epoch: int | None = None,
        *,
        architecture: MlpArchitecture | None = None,
    ) -> StepProof:
        """Prove a full SGD step (every weight trained). Models with LoRA adapters are an
        InvalidModelStateError before anything runs: their step is no full SGD step."""
        return self.prove(self._step_of_kind("sgd", model_before, model_after, batch_data, learning_rate, architecture), step_number, epoch=epoch)

    def prove_lora_step(
        self,
        model_before: nn.Module,
        model_after: nn.Module,
        batch_data: BatchData,
        learning_rate: float,
        step_number: int | None = None,
        epoch: int | None = None,
    ) -> StepProof:
        """Prove a LoRA step (adapters trained, base frozen), its adapters checked against
        ``lora_config``. Models without LoRA adapters are an InvalidModelStateError."""
        return self.prove(self._step_of_kind("lora", model_before, model_after, batch_data, learning_rate, None), step_number, epoch=epoch)

    def _step_of_kind(self, kind: str, model_before: Any, model_after: Any, batch_data: BatchData, learning_rate: float,
                      architecture: MlpArchitecture | None) -> AnyStep:
        step = training_step(model_before, model_after, batch_data, learning_rate, architecture)
        if step.kind != kind:
            other = "prove_lora_step" if step.kind == "lora" else "prove_sgd_step"
            raise InvalidModelStateError(
                f"prove_{kind}_step proves a {KIND_NAMES[kind]}, and these models make a {KIND_NAMES[step.kind]}; {other} proves it",
                expected_format=KIND_NAMES[kind],
                actual_format=KIND_NAMES[step.kind],
            )
        return step

    def verify(self, step: AnyStep, proof: StepProof | ProofResult) -> StepVerdict:
        """Check a proof against the statement of ``step`` as a verifier would: the circuit and
        the commitments are recomputed from the step itself, never taken from the prover."""
        result = proof.result if isinstance(proof, StepProof) else proof
        if result.status != "proved" or result.response is None or result.proof_type is None:
            return StepVerdict(False, str(result.proof_type), "not-proved", f"the step was {result.status}")
        statement: StepStatement = self.setup.statement_for(step)
        return verify_step(
            statement,
            result.proof_type,
            Path(result.response.artifacts["proof"]),
            cache_dir=self.cache_dir / "verifier",
            keys=self.setup.verifier_keys(statement.spec, result.proof_type),
        )

    def close(self) -> None:
        """Write ``stats.json`` / ``metrics.prom`` and the closing ``run.end`` audit record."""
        self.lifecycle.end("completed")

    def __enter__(self) -> "AutoProver":
        return self

    def __exit__(self, exc_type: type | None, error: BaseException | None, traceback: Any) -> None:
        """``run.end`` says ``completed``, ``halted`` (a pot-zk error, e.g. the final proof
        error) or ``aborted`` (any other exception)."""
        self.lifecycle.__exit__(exc_type, error, traceback)


def auto_prove_training_step(
    model_before: nn.Module | Mapping[str, object],
    model_after: nn.Module | Mapping[str, object],
    batch_data: BatchData,
    learning_rate: float,
    step_number: int | None = None,
    epoch: int | None = None,
    *,
    work_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    architecture: MlpArchitecture | None = None,
    lora_config: Any = None,
    mode: str | None = None,
    max_retries: int | None = None,
    retry_delay: float | None = None,
    sleep: Sleep = wall_clock_sleep,
) -> StepProof:
    """Prove that ``model_after`` is one SGD step (MSE loss) from ``model_before`` on
    ``batch_data`` (``(inputs, targets)`` or ``{"inputs": ..., "targets": ...}``) with
    ``learning_rate``; a LoRA step when the models carry LoRA adapters.

    Returns a :class:`~pot_zk.step_proof.StepProof` (``result["proof_type"]``,
    ``result.proof_type``, ...; ``disabled`` with ``mode=disabled``). Raises the typed error
    when the step is invalid (before anything is written) or its proof has finally failed.
    ``work_dir`` defaults to a new ``outputs/auto_prover/...`` directory under the current
    directory; the other keywords are :class:`AutoProver`'s.
    """
    step = training_step(model_before, model_after, batch_data, learning_rate, architecture)
    with AutoProver(work_dir, overrides, lora_config=lora_config, mode=mode, max_retries=max_retries, retry_delay=retry_delay, sleep=sleep) as prover:
        return prover.prove(step, step_number, epoch=epoch)
