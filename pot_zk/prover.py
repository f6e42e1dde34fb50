"""The seed's core prover: one training step, proven as LoRA or as full SGD by what the models are.

    with TrainingStepProver(AutoProver(lora_config={"rank": 2, "alpha": 4.0})) as prover:
        result = prover.prove_step(model_before, model_after, batch_data, 0.01)
        print(result["proof_type"])

Models with LoRA adapters get a LoRA proof (:meth:`AutoProver.prove_lora_step`, the adapters
checked against ``lora_config``). The SGD fallback: models without adapters, and a LoRA step
whose LoRA proof failed (a ProofGenerationError, after its retries), go to
:meth:`AutoProver.prove_sgd_step`. When the fallback of a failed LoRA proof fails too, the
caller gets ``ProofGenerationError("SGD fallback failed: ...")`` chained to its cause, with the
LoRA proof's error as ``lora_error``. A LoRA step has no full SGD proof (its base is frozen; its
merged weights move by the product of the new adapters, not by a gradient step), so for one
``prove_sgd_step`` refuses at once and that refusal is the cause; models without adapters raise
their SGD proof's error as themselves. Nothing here makes a proof up: a result is the proving
pipeline's, labelled with the proof type that produced it, and :meth:`verify` checks it against
the step as a verifier would.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping

from torch import nn

from pot_zk.auto_prover import AutoProver, training_step
from pot_zk.exceptions import PotZkError, ProofGenerationError
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.step_proof import BatchData, StepProof
from pot_zk.verify.step import StepVerdict


class TrainingStepProver:
    """Proves training steps, LoRA or full SGD, with ``auto_prover`` (default: an
    :class:`AutoProver` of the default configuration in a new ``outputs/auto_prover/...``)."""

    def __init__(self, auto_prover: AutoProver | None = None) -> None:
        self.auto_prover = auto_prover if auto_prover is not None else AutoProver()
        self._numbers = itertools.count()

    def prove_step(
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
        """Prove the step from ``model_before`` to ``model_after`` (see the module docstring).
        Invalid models or batch raise their typed error before anything runs."""
        step = training_step(model_before, model_after, batch_data, learning_rate, architecture)
        index = next(self._numbers) if step_number is None else step_number
        if step.kind != "lora":
            return self.auto_prover.prove_sgd_step(model_before, model_after, batch_data, learning_rate, index, epoch, architecture=architecture)
        try:
            return self.auto_prover.prove_lora_step(model_before, model_after, batch_data, learning_rate, index, epoch)
        except ProofGenerationError as lora_error:
            self.auto_prover.audit.event("sgd.fallback", step=index, error=lora_error.to_record())
            try:
                return self.auto_prover.prove_sgd_step(model_before, model_after, batch_data, learning_rate, index, epoch)
            except PotZkError as error:
                raise ProofGenerationError(
                    f"SGD fallback failed: {error} (the LoRA proof had failed: {lora_error.error_class}: {lora_error})",
                    lora_error=lora_error,
                ) from error

    def verify(
        self,
        model_before: nn.Module | Mapping[str, object],
        model_after: nn.Module | Mapping[str, object],
        batch_data: BatchData,
        learning_rate: float,
        result: StepProof,
        *,
        architecture: MlpArchitecture | None = None,
    ) -> StepVerdict:
        """Check ``result`` against the step recomputed from the models and batch, as a verifier
        would (:meth:`AutoProver.verify`)."""
        return self.auto_prover.verify(training_step(model_before, model_after, batch_data, learning_rate, architecture), result)

    def close(self) -> None:
        self.auto_prover.close()

    def __enter__(self) -> "TrainingStepProver":
        return self

    def __exit__(self, exc_type: type | None, error: BaseException | None, traceback: Any) -> None:
        self.auto_prover.__exit__(exc_type, error, traceback)
