"""LoRA layers and captured LoRA training steps (see docs/lora.md).

A LoRA model here is a ReLU MLP (:class:`~pot_zk.kinds.mlp.MlpArchitecture`) whose base weights
W0, b0 are all frozen and where some linear layers carry adapters A (r x in), B (out x r):

    layer(x) = x W0^T + b0 + (alpha / r) (x A^T) B^T

Only A and B are trained. Canonical orders: the base as ``MlpArchitecture.param_shapes``
(``"{i}.weight"``, ``"{i}.bias"`` with ``i`` the index in the ``nn.Sequential``), the adapters
as ``"{i}.lora_A"`` then ``"{i}.lora_B"`` per adapted layer, in layer order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from pot_zk.exceptions import InvalidModelStateError
from pot_zk.kinds.base import BatchStep, StepTensor, check_batch, check_learning_rate, check_state
from pot_zk.kinds.mlp import MlpArchitecture, Shapes, flatten


class LoraLinear(nn.Module):
    """pot-zk's own LoRA linear layer: a frozen ``base`` nn.Linear plus trainable A, B."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1:
            raise InvalidModelStateError("LoRA rank must be >= 1", expected=">= 1", actual=rank)
        self.base = base
        self.rank = rank
        self.alpha = float(alpha)
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * (x @ self.lora_A.t()) @ self.lora_B.t()


def attach_lora(model: nn.Sequential, layers: tuple[int, ...], rank: int, alpha: float) -> nn.Sequential:
    """Freeze every ``nn.Linear`` of ``model`` (existing adapters stay trainable) and replace
    the ones at the given Sequential indices by LoraLinear."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.requires_grad_(False)
    for index in layers:
        if not isinstance(model[index], nn.Linear):
            raise InvalidModelStateError(
                f"module {index} is not an nn.Linear", expected="nn.Linear", actual=type(model[index]).__name__
            )
        model[index] = LoraLinear(model[index], rank, alpha)
    return model


@dataclass(frozen=True)
class LoraArchitecture:
    """A ReLU MLP (``base``, whose ``loss`` the steps train with: mse or cross_entropy) with
    adapters of one rank and alpha on the layers ``adapted`` (layer numbers 0..L-1, not
    Sequential indices)."""

    base: MlpArchitecture
    adapted: tuple[int, ...]
    rank: int
    alpha: float

    def __post_init__(self) -> None:
        layers = len(self.base.dims) - 1
        if not self.adapted or sorted(set(self.adapted)) != list(self.adapted) or not all(0 <= l < layers for l in self.adapted):
            raise InvalidModelStateError(
                f"adapted layers must be distinct, increasing layer numbers in 0..{layers - 1}, got {list(self.adapted)}",
                expected=f"subset of 0..{layers - 1}", actual=list(self.adapted)
            )
        if self.rank < 1 or not (math.isfinite(self.alpha) and self.alpha > 0):
            raise InvalidModelStateError("LoRA needs rank >= 1 and alpha > 0", expected="rank >= 1, alpha > 0", actual=[self.rank, self.alpha])

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    @property
    def base_shapes(self) -> Shapes:
        return self.base.param_shapes

    @property
    def adapter_shapes(self) -> Shapes:
        dims = self.base.dims
        shapes: Shapes = []
        for layer in self.adapted:
            shapes.append((f"{2 * layer}.lora_A", (self.rank, dims[layer])))
            shapes.append((f"{2 * layer}.lora_B", (dims[layer + 1], self.rank)))
        return shapes

    @property
    def num_adapter_params(self) -> int:
        return sum(math.prod(shape) for _, shape in self.adapter_shapes)

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "adapted": list(self.adapted), "rank": self.rank, "alpha": self.alpha}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LoraArchitecture":
        return cls(
            base=MlpArchitecture.from_dict(data["base"]),
            adapted=tuple(int(l) for l in data["adapted"]),
            rank=int(data["rank"]),
            alpha=float(data["alpha"]),
        )


@dataclass(frozen=True)
class LoraTrainingStep(BatchStep):
    """One SGD step on the adapters of a LoRA model. Tensors are float64 copies."""

    kind: ClassVar[str] = "lora"

    architecture: LoraArchitecture
    learning_rate: float
    base: dict[str, torch.Tensor]
    adapters_before: dict[str, torch.Tensor]
    adapters_after: dict[str, torch.Tensor]
    inputs: torch.Tensor
    targets: torch.Tensor
    loss: float | None = None

    def flat_base(self) -> torch.Tensor:
        return flatten(self.base, self.architecture.base_shapes)

    def flat_before(self) -> torch.Tensor:
        return flatten(self.adapters_before, self.architecture.adapter_shapes)

    def flat_after(self) -> torch.Tensor:
        return flatten(self.adapters_after, self.architecture.adapter_shapes)


def encode_lora_step(step: LoraTrainingStep) -> list[StepTensor]:
    """The canonical encoding: the adapters before, the batch (X then Y), the adapters after,
    the frozen base, each flat."""
    return [
        StepTensor("w_before", "adapters before the step", step.flat_before()),
        StepTensor("batch", "batch values", step.flat_batch()),
        StepTensor("w_after", "adapters after the step", step.flat_after()),
        StepTensor("base", "base model weights", step.flat_base()),
    ]


def validate_lora_step(step: LoraTrainingStep) -> None:
    """Reject malformed LoRA steps before any witness or proof work starts."""
    check_learning_rate(step.learning_rate)
    check_state("base", step.base, step.architecture.base_shapes, "LoRA architecture")
    check_state("adapters_before", step.adapters_before, step.architecture.adapter_shapes, "LoRA architecture")
    check_state("adapters_after", step.adapters_after, step.architecture.adapter_shapes, "LoRA architecture")
    check_batch(step, step.architecture.base.dims, step.architecture.base.loss)
