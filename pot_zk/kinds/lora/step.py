"""LoRA layers and captured LoRA training steps (see docs/lora.md).

A LoRA model here is a ReLU MLP (:class:`~pot_zk.kinds.sgd.step.MlpArchitecture`) whose base weights
W0, b0 are all frozen and where some linear layers carry adapters A (r x in), B (out x r):

    layer(x) = x W0^T + b0 + (alpha / r) (x A^T) B^T

Only A and B are trained. Canonical orders: the base as ``MlpArchitecture.param_shapes``
(``"{i}.weight"``, ``"{i}.bias"`` with ``i`` the index in the ``nn.Sequential``), the adapters
as ``"{i}.lora_A"`` then ``"{i}.lora_B"`` per adapted layer, in layer order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from pot_zk.exceptions import InvalidModelStateError, WitnessBuilderError
from pot_zk.kinds.dtypes import check_batch_dtype, weights_dtype
from pot_zk.kinds.sgd.step import MlpArchitecture


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
    """A ReLU MLP (``base``) with adapters of one rank and alpha on the layers ``adapted``
    (layer numbers 0..L-1, not Sequential indices); MSE loss."""

    base: MlpArchitecture
    adapted: tuple[int, ...]
    rank: int
    alpha: float

    def __post_init__(self) -> None:
        layers = len(self.base.dims) - 1
        if not self.adapted or sorted(set(self.adapted)) != list(self.adapted) or not all(0 <= l < layers for l in self.adapted):
            raise InvalidModelStateError(
                "adapted layers must be distinct, increasing layer numbers", expected=f"subset of 0..{layers - 1}", actual=list(self.adapted)
            )
        if self.rank < 1 or not (math.isfinite(self.alpha) and self.alpha > 0):
            raise InvalidModelStateError("LoRA needs rank >= 1 and alpha > 0", expected="rank >= 1, alpha > 0", actual=[self.rank, self.alpha])

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    @property
    def base_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        return self.base.param_shapes

    @property
    def adapter_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        dims = self.base.dims
        shapes: list[tuple[str, tuple[int, ...]]] = []
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


def flatten(state: Mapping[str, torch.Tensor], shapes: list[tuple[str, tuple[int, ...]]]) -> torch.Tensor:
    return torch.cat([state[key].reshape(-1) for key, _ in shapes])


def unflatten(flat: torch.Tensor, shapes: list[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for key, shape in shapes:
        count = math.prod(shape)
        out[key] = flat[offset : offset + count].reshape(shape).clone()
        offset += count
    return out


@dataclass(frozen=True)
class LoraTrainingStep:
    """One SGD step on the adapters of a LoRA model. Tensors are float64 copies."""

    architecture: LoraArchitecture
    learning_rate: float
    base: dict[str, torch.Tensor]
    adapters_before: dict[str, torch.Tensor]
    adapters_after: dict[str, torch.Tensor]
    inputs: torch.Tensor
    targets: torch.Tensor
    loss: float | None = None

    @property
    def batch_size(self) -> int:
        return int(self.inputs.shape[0])

    def flat_base(self) -> torch.Tensor:
        return flatten(self.base, self.architecture.base_shapes)

    def flat_before(self) -> torch.Tensor:
        return flatten(self.adapters_before, self.architecture.adapter_shapes)

    def flat_after(self) -> torch.Tensor:
        return flatten(self.adapters_after, self.architecture.adapter_shapes)

    def flat_batch(self) -> torch.Tensor:
        """Canonical batch encoding: X row-major, then Y row-major."""
        return torch.cat([self.inputs.reshape(-1), self.targets.reshape(-1)])


def _check_state(name: str, state: Mapping[str, torch.Tensor], shapes: list[tuple[str, tuple[int, ...]]]) -> None:
    expected = dict(shapes)
    if set(state) != set(expected):
        raise InvalidModelStateError(
            f"{name} keys do not match the LoRA architecture",
            expected=sorted(expected),
            actual=sorted(state),
            missing=sorted(set(expected) - set(state)),
            unexpected=sorted(set(state) - set(expected)),
        )
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise InvalidModelStateError(f"{name}[{key}] has the wrong shape", expected=list(shape), actual=list(state[key].shape), key=key)
        if not torch.isfinite(state[key]).all():
            raise InvalidModelStateError(f"{name}[{key}] contains NaN or Inf", expected="finite values", actual="NaN/Inf", key=key)


def validate_lora_step(step: LoraTrainingStep) -> None:
    """Reject malformed LoRA steps before any witness or proof work starts."""
    if not (isinstance(step.learning_rate, float) and math.isfinite(step.learning_rate) and step.learning_rate > 0):
        raise InvalidModelStateError("learning rate must be a finite number > 0", expected="> 0", actual=step.learning_rate)
    _check_state("base", step.base, step.architecture.base_shapes)
    _check_state("adapters_before", step.adapters_before, step.architecture.adapter_shapes)
    _check_state("adapters_after", step.adapters_after, step.architecture.adapter_shapes)
    dims = step.architecture.base.dims
    n = step.inputs.shape[0] if step.inputs.dim() == 2 else -1
    if n < 1 or tuple(step.inputs.shape) != (n, dims[0]) or tuple(step.targets.shape) != (n, dims[-1]):
        raise WitnessBuilderError(
            "batch shapes do not match the architecture",
            expected={"inputs": ["N", dims[0]], "targets": ["N", dims[-1]]},
            actual={"inputs": list(step.inputs.shape), "targets": list(step.targets.shape)},
        )
    for name, tensor in (("inputs", step.inputs), ("targets", step.targets)):
        if not torch.isfinite(tensor).all():
            raise WitnessBuilderError(f"batch {name} contain NaN or Inf", expected="finite values", actual="NaN/Inf")


def save_lora_step(step: LoraTrainingStep, path: Path) -> None:
    """Write the step's tensors as safetensors (atomically) with its metadata."""
    from safetensors.torch import save_file

    from pot_zk.core.atomic import atomic_path

    tensors = {
        "base": step.flat_base(),
        "a_before": step.flat_before(),
        "a_after": step.flat_after(),
        "x": step.inputs,
        "y": step.targets,
    }
    meta = {"kind": "lora", "architecture": json.dumps(step.architecture.to_dict()), "learning_rate": repr(step.learning_rate)}
    with atomic_path(Path(path)) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)


def load_lora_step(path: Path) -> LoraTrainingStep:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises several unrelated types on a bad file
        raise WitnessBuilderError(f"cannot read step file {path}: {exc}", expected="safetensors LoRA step file", actual=str(path)) from exc
    required = {"base", "a_before", "a_after", "x", "y"}
    if required - set(tensors) or meta.get("kind") != "lora" or "architecture" not in meta or "learning_rate" not in meta:
        raise WitnessBuilderError(
            f"{path} is not a complete LoRA step file",
            expected=sorted(required) + ["metadata: kind=lora, architecture, learning_rate"],
            actual=sorted(tensors) + sorted(meta),
        )
    try:
        architecture = LoraArchitecture.from_dict(json.loads(meta["architecture"]))
        sizes = {"base": architecture.base.num_params, "a_before": architecture.num_adapter_params, "a_after": architecture.num_adapter_params}
        if any(tensors[key].numel() != size for key, size in sizes.items()):
            raise ValueError(f"tensor sizes {[tensors[k].numel() for k in sizes]} differ from the architecture's {list(sizes.values())}")
    except (KeyError, TypeError, ValueError) as exc:
        raise WitnessBuilderError(f"{path} has malformed LoRA metadata: {exc}", expected="LoRA architecture", actual=meta) from exc
    weights = {key: tensors[key] for key in ("base", "a_before", "a_after")}
    check_batch_dtype(tensors["x"], tensors["y"], weights_dtype({"step file": weights}))
    step = LoraTrainingStep(
        architecture=architecture,
        learning_rate=float(meta["learning_rate"]),
        base=unflatten(tensors["base"].to(torch.float64), architecture.base_shapes),
        adapters_before=unflatten(tensors["a_before"].to(torch.float64), architecture.adapter_shapes),
        adapters_after=unflatten(tensors["a_after"].to(torch.float64), architecture.adapter_shapes),
        inputs=tensors["x"].to(torch.float64),
        targets=tensors["y"].to(torch.float64),
    )
    validate_lora_step(step)
    return step
