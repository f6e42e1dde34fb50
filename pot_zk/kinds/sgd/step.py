"""Capturing one SGD step of a ReLU MLP (all parameters trained) and validating it before
anything is proven. The model, loss and optimizer supported are those of :mod:`pot_zk.kinds.mlp`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Mapping

import torch
from torch import nn

from pot_zk.exceptions import InvalidModelStateError
from pot_zk.kinds.base import BatchStep, StepTensor, check_batch, check_learning_rate, check_state, copy_state, copy_tensor
from pot_zk.kinds.dtypes import check_batch_dtype, weights_dtype
from pot_zk.kinds.losses import check_labels, loss_for_targets, loss_value
from pot_zk.kinds.mlp import MlpArchitecture, architecture_of, check_sgd_optimizer, flatten


@dataclass(frozen=True)
class TrainingStep(BatchStep):
    """Everything about one SGD step that a proof speaks of. Tensors are float64 copies."""

    kind: ClassVar[str] = "sgd"

    architecture: MlpArchitecture
    learning_rate: float
    weights_before: dict[str, torch.Tensor]
    weights_after: dict[str, torch.Tensor]
    inputs: torch.Tensor
    targets: torch.Tensor
    loss: float | None = None

    def flat_before(self) -> torch.Tensor:
        return flatten(self.weights_before, self.architecture.param_shapes)

    def flat_after(self) -> torch.Tensor:
        return flatten(self.weights_after, self.architecture.param_shapes)


def encode_sgd_step(step: TrainingStep) -> list[StepTensor]:
    """The canonical encoding: W_t, the batch (X then Y), W_t+1, each flat."""
    return [
        StepTensor("w_before", "weights before the step", step.flat_before()),
        StepTensor("batch", "batch values", step.flat_batch()),
        StepTensor("w_after", "weights after the step", step.flat_after()),
    ]


def capture_sgd_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> TrainingStep:
    """Run one SGD step on ``model`` and capture it for proving: cross-entropy for integer
    class labels, else the mean squared error (:func:`~pot_zk.kinds.losses.loss_for_targets`).
    Dtypes are checked before the step runs (:mod:`pot_zk.kinds.dtypes`)."""
    architecture = replace(architecture_of(model), loss=loss_for_targets(targets))
    learning_rate = check_sgd_optimizer(optimizer)
    state = model.state_dict()
    check_batch_dtype(inputs, targets, weights_dtype({"model": state}))
    if architecture.loss == "cross_entropy":
        check_labels(targets, architecture.dims[-1])
    before = copy_state(state)
    optimizer.zero_grad()
    loss = loss_value(architecture.loss, model(inputs), targets)
    loss.backward()
    optimizer.step()
    step = TrainingStep(
        architecture=architecture,
        learning_rate=learning_rate,
        weights_before=before,
        weights_after=copy_state(model.state_dict()),
        inputs=copy_tensor(inputs),
        targets=copy_tensor(targets),
        loss=float(loss.detach()),
    )
    validate_sgd_step(step)
    return step


def step_from_states(
    before: Mapping[str, torch.Tensor],
    after: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    learning_rate: float,
    architecture: MlpArchitecture,
) -> TrainingStep:
    """Build a step from saved states (e.g. two checkpoints) and validate it. The weights and
    the batch must share one floating dtype (:mod:`pot_zk.kinds.dtypes`)."""
    for name, state in (("before", before), ("after", after)):
        if not state:
            raise InvalidModelStateError(f"the {name} state is empty", expected="parameters", actual={})
    inputs, targets = torch.as_tensor(inputs), torch.as_tensor(targets)
    check_batch_dtype(inputs, targets, weights_dtype({"weights_before": before, "weights_after": after}))
    step = TrainingStep(
        architecture=architecture,
        learning_rate=float(learning_rate),
        weights_before=copy_state(before),
        weights_after=copy_state(after),
        inputs=copy_tensor(inputs),
        targets=copy_tensor(targets),
    )
    validate_sgd_step(step)
    return step


def validate_sgd_step(step: TrainingStep) -> None:
    """Reject malformed steps before any witness or proof work starts."""
    check_learning_rate(step.learning_rate)
    for name, state in (("weights_before", step.weights_before), ("weights_after", step.weights_after)):
        check_state(name, state, step.architecture.param_shapes, "architecture")
    check_batch(step, step.architecture.dims, step.architecture.loss)
