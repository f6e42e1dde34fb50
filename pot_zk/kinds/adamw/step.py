"""One step of ``torch.optim.AdamW`` (or ``Adam``) on a ReLU MLP: capturing it with its moments
and step count, and validating it before anything is proven.

torch's update (no AMSGrad, not maximising), with g the gradient of the mean loss, t the step
count after the step (1 at the first step), lr, betas (b1, b2), eps and weight decay lambda::

    Adam:   g <- g + lambda W_t                    (weight decay added to the gradient)
    AdamW:  W <- W_t (1 - lr lambda)               (decoupled), else W = W_t
    m_t+1 = b1 m_t + (1 - b1) g,   v_t+1 = b2 v_t + (1 - b2) g^2
    W_t+1 = W - lr / (1 - b1^t) * m_t+1 / (sqrt(v_t+1) / sqrt(1 - b2^t) + eps)

m and v are the optimizer's ``exp_avg`` and ``exp_avg_sq``, t its ``step``; all start at zero
(torch creates them at the first step). They are state next to the weights: captured before and
after each step, committed and chained like them (``t_before`` = t - 1, ``t_after`` = t).

An exact statement keeps moments that a float32 optimizer state cannot hold exactly (the second
moment on a fine grid): :meth:`~pot_zk.kinds.adamw.kind.AdamwKind.load_after` stores them in
float64 next to torch's own (``pot_zk_exact_exp_avg``, ``pot_zk_exact_exp_avg_sq``), and
capture reads those while torch's tensors are still their rounding (nothing changed them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from pot_zk.exceptions import InvalidModelStateError
from pot_zk.kinds.base import EXACT_STATE, BatchStep, StepTensor, check_batch, check_learning_rate, check_state, copy_state, copy_tensor, optimizer_tensor
from pot_zk.kinds.dtypes import check_batch_dtype, weights_dtype
from pot_zk.kinds.losses import check_labels, loss_for_targets, loss_value
from pot_zk.kinds.mlp import MlpArchitecture, OnMlp, architecture_of, flatten
from pot_zk.kinds.optimizer import OptimizerSettings

MOMENTS = {"exp_avg": f"{EXACT_STATE}exp_avg", "exp_avg_sq": f"{EXACT_STATE}exp_avg_sq"}
"""torch's moment state keys -> the float64 copies an exact statement's moments are kept in."""


@dataclass(frozen=True)
class AdamwArchitecture(OnMlp):
    """A ReLU MLP trained by AdamW (``decoupled_weight_decay``) or Adam, with ``betas``, ``eps``
    and ``weight_decay`` (part of the statement)."""

    mlp: MlpArchitecture
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        OptimizerSettings("adamw", 0.0, self.weight_decay, self.betas, self.eps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mlp": self.mlp.to_dict(),
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "decoupled_weight_decay": self.decoupled_weight_decay,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AdamwArchitecture":
        return cls(
            MlpArchitecture.from_dict(data["mlp"]),
            tuple(float(b) for b in data["betas"]),
            float(data["eps"]),
            float(data["weight_decay"]),
            bool(data["decoupled_weight_decay"]),
        )

    def build(self) -> nn.Sequential:
        return self.mlp.build()


@dataclass(frozen=True)
class AdamwStep(BatchStep):
    """W_t, m_t, v_t, the batch, W_t+1, m_t+1, v_t+1 (float64 copies) and the step count t."""

    kind: ClassVar[str] = "adamw"

    architecture: AdamwArchitecture
    learning_rate: float
    weights_before: dict[str, torch.Tensor]
    weights_after: dict[str, torch.Tensor]
    exp_avg_before: dict[str, torch.Tensor]
    exp_avg_after: dict[str, torch.Tensor]
    exp_avg_sq_before: dict[str, torch.Tensor]
    exp_avg_sq_after: dict[str, torch.Tensor]
    step_count: int
    """t: the optimizer's step count after this step (1 for its first)."""
    inputs: torch.Tensor
    targets: torch.Tensor
    loss: float | None = None

    def flat(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return flatten(state, self.architecture.param_shapes)


STATES = (
    ("w", "weights", "weights_before", "weights_after"),
    ("m", "first moment", "exp_avg_before", "exp_avg_after"),
    ("v", "second moment", "exp_avg_sq_before", "exp_avg_sq_after"),
)


def encode_adamw_step(step: AdamwStep) -> list[StepTensor]:
    """The canonical encoding: W_t, the batch, W_t+1, m_t, m_t+1, v_t, v_t+1 (each flat in
    parameter order), then the step count before (t - 1) and after (t), one value each."""
    encoded = [StepTensor("w_before", "weights before the step", step.flat(step.weights_before)), StepTensor("batch", "batch values", step.flat_batch())]
    encoded.append(StepTensor("w_after", "weights after the step", step.flat(step.weights_after)))
    for prefix, words, before, after in STATES[1:]:
        encoded.append(StepTensor(f"{prefix}_before", f"{words} before the step", step.flat(getattr(step, before))))
        encoded.append(StepTensor(f"{prefix}_after", f"{words} after the step", step.flat(getattr(step, after))))
    encoded.append(StepTensor("t_before", "step count before the step", torch.tensor([step.step_count - 1.0], dtype=torch.float64)))
    encoded.append(StepTensor("t_after", "step count after the step", torch.tensor([float(step.step_count)], dtype=torch.float64)))
    return encoded


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """(m, v, t) by parameter name: the exact float64 moments where the optimizer's own are
    their rounding, else its own (float64 copies), zeros and 0 before the first step."""
    moments: dict[str, dict[str, torch.Tensor]] = {key: {} for key in MOMENTS}
    counts = set()
    for name, parameter in model.named_parameters():
        state = optimizer.state.get(parameter, {})
        count = float(state["step"]) if "step" in state else 0.0
        if count != int(count):  # a review: a fractional count moves the bias correction, which int() hid
            raise InvalidModelStateError(
                f"the optimizer's step count of {name} is {count!r}, not a whole number of steps: changed outside optimizer.step()",
                expected="a whole step count", actual=count,
            )
        counts.add(int(count))
        for key, exact in MOMENTS.items():
            own = state.get(key)
            if own is None:
                moments[key][name] = torch.zeros_like(parameter, dtype=torch.float64)
            elif exact in state and torch.equal(state[exact].to(own.dtype), own):
                moments[key][name] = optimizer_tensor(state[exact], key, name, parameter)
            else:
                moments[key][name] = optimizer_tensor(own, key, name, parameter)
    if len(counts) != 1:
        raise InvalidModelStateError("the optimizer's parameters have different step counts", expected="one step count", actual=sorted(counts))
    return moments["exp_avg"], moments["exp_avg_sq"], counts.pop()


def check_adam_optimizer(optimizer: torch.optim.Optimizer) -> tuple[float, OptimizerSettings]:
    """The learning rate and settings of ``torch.optim.AdamW`` or ``Adam`` with one parameter
    group; AMSGrad, maximising and the capturable, differentiable and fused variants are refused."""
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
        raise InvalidModelStateError("only torch.optim.AdamW and Adam steps are adamw steps", expected="torch.optim.AdamW or Adam", actual=type(optimizer).__name__)
    if len(optimizer.param_groups) != 1:
        raise InvalidModelStateError("Adam with several parameter groups is not supported", expected=1, actual=len(optimizer.param_groups))
    group = optimizer.param_groups[0]
    unsupported = {"amsgrad": False, "maximize": False, "capturable": False, "differentiable": False}
    found = {key: bool(group.get(key, False)) for key in unsupported}
    if found != unsupported or group.get("fused"):
        raise InvalidModelStateError("Adam and AdamW are supported without amsgrad, maximize, capturable, differentiable or fused", expected=unsupported, actual={**found, "fused": group.get("fused")})
    return float(group["lr"]), OptimizerSettings.of(optimizer)


def capture_adamw_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> AdamwStep:
    """Run one Adam or AdamW step on ``model`` and capture it with the moments and step count
    before and after; the loss follows from the targets (:func:`~pot_zk.kinds.losses.loss_for_targets`)."""
    mlp = replace(architecture_of(model), loss=loss_for_targets(targets))
    learning_rate, settings = check_adam_optimizer(optimizer)
    optimized = {id(p) for p in optimizer.param_groups[0]["params"]}
    missing = [name for name, p in model.named_parameters() if id(p) not in optimized]
    if missing:
        raise InvalidModelStateError(f"the optimizer does not update {missing}", expected="every parameter", actual=missing, keys=missing)
    state = model.state_dict()
    check_batch_dtype(inputs, targets, weights_dtype({"model": state}))
    if mlp.loss == "cross_entropy":
        check_labels(targets, mlp.dims[-1])
    before = copy_state(state)
    m_before, v_before, count = optimizer_state(model, optimizer)
    optimizer.zero_grad()
    loss = loss_value(mlp.loss, model(inputs), targets)
    loss.backward()
    optimizer.step()
    m_after, v_after, count_after = optimizer_state(model, optimizer)
    architecture = AdamwArchitecture(mlp, settings.betas, settings.eps, settings.weight_decay, settings.name == "adamw")
    step = AdamwStep(
        architecture=architecture,
        learning_rate=learning_rate,
        weights_before=before,
        weights_after=copy_state(model.state_dict()),
        exp_avg_before=m_before,
        exp_avg_after=m_after,
        exp_avg_sq_before=v_before,
        exp_avg_sq_after=v_after,
        step_count=count_after,
        inputs=copy_tensor(inputs),
        targets=copy_tensor(targets),
        loss=float(loss.detach()),
    )
    if count_after != count + 1:
        raise InvalidModelStateError("the optimizer's step count did not advance by one", expected=count + 1, actual=count_after)
    validate_adamw_step(step)
    return step


def validate_adamw_step(step: AdamwStep) -> None:
    """Reject malformed steps before any witness or proof work starts."""
    check_learning_rate(step.learning_rate)
    for _, _, before, after in STATES:
        for name in (before, after):
            check_state(name, getattr(step, name), step.architecture.param_shapes, "architecture")
    for name in ("exp_avg_sq_before", "exp_avg_sq_after"):
        if any(bool((tensor < 0).any()) for tensor in getattr(step, name).values()):
            raise InvalidModelStateError(f"{name} has negative values: a second moment is a mean of squares", expected=">= 0", actual="negative")
    if not (isinstance(step.step_count, int) and not isinstance(step.step_count, bool) and step.step_count >= 1):
        raise InvalidModelStateError("the step count must be an integer >= 1 (torch counts from the first step)", expected=">= 1", actual=step.step_count)
    check_batch(step, step.architecture.dims, step.architecture.loss)
