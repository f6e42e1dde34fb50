"""One step of ``torch.optim.SGD`` with momentum (and weight decay) on a ReLU MLP: capturing
it with its velocity, and validating it before anything is proven.

torch's update, with g the gradient of the mean loss, mu the momentum and lambda the weight
decay (no dampening, no Nesterov)::

    d = g + lambda * W_t;   V_t+1 = mu * V_t + d;   W_t+1 = W_t - lr * V_t+1

where V is the optimizer's ``momentum_buffer`` (torch sets it to d at the first step, which is
the rule above from V_0 = 0). The velocity is state next to the weights: captured before and
after each step, committed and chained like them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from pot_zk.exceptions import InvalidModelStateError
from pot_zk.kinds.base import BatchStep, StepTensor, check_batch, check_learning_rate, check_state, copy_state, copy_tensor, optimizer_tensor
from pot_zk.kinds.dtypes import check_batch_dtype, weights_dtype
from pot_zk.kinds.losses import check_labels, loss_for_targets, loss_value
from pot_zk.kinds.mlp import MlpArchitecture, MomentumSettings, OnMlp, architecture_of, check_momentum_optimizer, flatten


@dataclass(frozen=True)
class MomentumArchitecture(OnMlp):
    """A ReLU MLP trained by SGD with ``momentum`` and ``weight_decay`` (part of the statement)."""

    mlp: MlpArchitecture
    momentum: float
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        MomentumSettings(self.momentum, self.weight_decay)

    def to_dict(self) -> dict[str, Any]:
        return {"mlp": self.mlp.to_dict(), "momentum": self.momentum, "weight_decay": self.weight_decay}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MomentumArchitecture":
        return cls(MlpArchitecture.from_dict(data["mlp"]), float(data["momentum"]), float(data["weight_decay"]))

    def build(self) -> nn.Sequential:
        return self.mlp.build()


@dataclass(frozen=True)
class MomentumStep(BatchStep):
    """W_t, V_t, the batch, W_t+1, V_t+1 of one momentum step (float64 copies)."""

    kind: ClassVar[str] = "momentum"

    architecture: MomentumArchitecture
    learning_rate: float
    weights_before: dict[str, torch.Tensor]
    weights_after: dict[str, torch.Tensor]
    velocity_before: dict[str, torch.Tensor]
    velocity_after: dict[str, torch.Tensor]
    inputs: torch.Tensor
    targets: torch.Tensor
    loss: float | None = None

    def flat(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return flatten(state, self.architecture.param_shapes)


def encode_momentum_step(step: MomentumStep) -> list[StepTensor]:
    """The canonical encoding: W_t, the batch, W_t+1, V_t, V_t+1, each flat in parameter order."""
    return [
        StepTensor("w_before", "weights before the step", step.flat(step.weights_before)),
        StepTensor("batch", "batch values", step.flat_batch()),
        StepTensor("w_after", "weights after the step", step.flat(step.weights_after)),
        StepTensor("v_before", "velocity before the step", step.flat(step.velocity_before)),
        StepTensor("v_after", "velocity after the step", step.flat(step.velocity_after)),
    ]


def velocity(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's momentum buffers by parameter name (zeros before the first step)."""
    out = {}
    for name, parameter in model.named_parameters():
        buffer = optimizer.state.get(parameter, {}).get("momentum_buffer")
        out[name] = optimizer_tensor(buffer, "momentum_buffer", name, parameter) if buffer is not None else torch.zeros_like(parameter, dtype=torch.float64)
    return out


def capture_momentum_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> MomentumStep:
    """Run one step of SGD with momentum on ``model`` and capture it with the velocity before
    and after; the loss follows from the targets (:func:`~pot_zk.kinds.losses.loss_for_targets`)."""
    mlp = replace(architecture_of(model), loss=loss_for_targets(targets))
    learning_rate, settings = check_momentum_optimizer(optimizer)
    optimized = {id(p) for p in optimizer.param_groups[0]["params"]}
    missing = [name for name, p in model.named_parameters() if id(p) not in optimized]
    if missing:
        raise InvalidModelStateError(f"the optimizer does not update {missing}", expected="every parameter", actual=missing, keys=missing)
    state = model.state_dict()
    check_batch_dtype(inputs, targets, weights_dtype({"model": state}))
    if mlp.loss == "cross_entropy":
        check_labels(targets, mlp.dims[-1])
    before, velocity_before = copy_state(state), velocity(model, optimizer)
    optimizer.zero_grad()
    loss = loss_value(mlp.loss, model(inputs), targets)
    loss.backward()
    optimizer.step()
    step = MomentumStep(
        architecture=MomentumArchitecture(mlp, settings.momentum, settings.weight_decay),
        learning_rate=learning_rate,
        weights_before=before,
        weights_after=copy_state(model.state_dict()),
        velocity_before=velocity_before,
        velocity_after=velocity(model, optimizer),
        inputs=copy_tensor(inputs),
        targets=copy_tensor(targets),
        loss=float(loss.detach()),
    )
    validate_momentum_step(step)
    return step


def validate_momentum_step(step: MomentumStep) -> None:
    """Reject malformed steps before any witness or proof work starts."""
    check_learning_rate(step.learning_rate)
    for name in ("weights_before", "weights_after", "velocity_before", "velocity_after"):
        check_state(name, getattr(step, name), step.architecture.param_shapes, "architecture")
    check_batch(step, step.architecture.dims, step.architecture.loss)

