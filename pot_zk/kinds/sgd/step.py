"""Capturing one SGD training step and validating it before anything is proven.

Supported: ``nn.Sequential`` of ``nn.Linear`` layers with ``nn.ReLU`` between them (the last
layer linear), mean-squared-error loss (``reduction="mean"``), ``torch.optim.SGD`` with one
parameter group, no momentum, no weight decay, no dampening, no nesterov, not maximising.
Anything else raises :class:`~pot_zk.exceptions.InvalidModelStateError` naming what was found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from pot_zk.exceptions import InvalidModelStateError, WitnessBuilderError
from pot_zk.kinds.dtypes import check_batch_dtype, weights_dtype


@dataclass(frozen=True)
class MlpArchitecture:
    """A ReLU MLP: ``dims[0]`` inputs, hidden widths, ``dims[-1]`` outputs; MSE loss."""

    dims: tuple[int, ...]
    activation: str = "relu"
    loss: str = "mse"

    @property
    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Canonical parameter order: per layer, ``weight`` (out x in, row-major) then ``bias``."""
        shapes: list[tuple[str, tuple[int, ...]]] = []
        for layer in range(len(self.dims) - 1):
            index = 2 * layer  # index of the Linear inside the nn.Sequential
            shapes.append((f"{index}.weight", (self.dims[layer + 1], self.dims[layer])))
            shapes.append((f"{index}.bias", (self.dims[layer + 1],)))
        return shapes

    @property
    def num_params(self) -> int:
        return sum(math.prod(shape) for _, shape in self.param_shapes)

    def to_dict(self) -> dict:
        return {"dims": list(self.dims), "activation": self.activation, "loss": self.loss}

    @classmethod
    def from_dict(cls, data: Mapping) -> "MlpArchitecture":
        return cls(dims=tuple(int(d) for d in data["dims"]), activation=data["activation"], loss=data["loss"])

    def build(self) -> nn.Sequential:
        layers: list[nn.Module] = []
        for layer in range(len(self.dims) - 1):
            layers.append(nn.Linear(self.dims[layer], self.dims[layer + 1]))
            if layer < len(self.dims) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)


def architecture_of(model: nn.Module) -> MlpArchitecture:
    """Read the architecture of a supported model, or say precisely why it is not supported."""
    if not isinstance(model, nn.Sequential):
        raise InvalidModelStateError(
            f"unsupported model type {type(model).__name__}",
            expected="nn.Sequential of nn.Linear with nn.ReLU between them",
            actual=type(model).__name__,
        )
    modules = list(model)
    kinds = [type(m).__name__ for m in modules]
    valid = len(modules) % 2 == 1 and all(
        isinstance(m, nn.Linear) if i % 2 == 0 else isinstance(m, nn.ReLU) for i, m in enumerate(modules)
    )
    if not valid or not modules:
        raise InvalidModelStateError(
            "unsupported layer sequence",
            expected="Linear, ReLU, Linear, ..., Linear",
            actual=kinds,
        )
    dims = [modules[0].in_features] + [m.out_features for m in modules[0::2]]
    for i, m in enumerate(modules[0::2]):
        if m.bias is None:
            raise InvalidModelStateError(
                f"layer {2 * i} has no bias", expected="nn.Linear(bias=True)", actual="bias=None"
            )
        if m.in_features != dims[i]:
            raise InvalidModelStateError(
                f"layer {2 * i} input width does not match the previous layer",
                expected=dims[i],
                actual=m.in_features,
            )
    return MlpArchitecture(dims=tuple(dims))


def check_sgd_optimizer(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of a plain SGD optimizer; anything else is rejected."""
    if type(optimizer) is not torch.optim.SGD:
        raise InvalidModelStateError(
            "only torch.optim.SGD steps can be proven",
            expected="torch.optim.SGD",
            actual=type(optimizer).__name__,
        )
    if len(optimizer.param_groups) != 1:
        raise InvalidModelStateError(
            "SGD with several parameter groups is not supported",
            expected=1,
            actual=len(optimizer.param_groups),
        )
    group = optimizer.param_groups[0]
    plain = {"momentum": 0, "weight_decay": 0, "dampening": 0, "nesterov": False, "maximize": False}
    found = {key: group.get(key, plain[key]) for key in plain}
    if found != plain:
        raise InvalidModelStateError("only plain SGD is supported", expected=plain, actual=found)
    return float(group["lr"])


@dataclass(frozen=True)
class TrainingStep:
    """Everything about one SGD step that a proof speaks of. Tensors are float64 copies."""

    architecture: MlpArchitecture
    learning_rate: float
    weights_before: dict[str, torch.Tensor]
    weights_after: dict[str, torch.Tensor]
    inputs: torch.Tensor
    targets: torch.Tensor
    loss: float | None = None

    @property
    def batch_size(self) -> int:
        return int(self.inputs.shape[0])

    def flat_before(self) -> torch.Tensor:
        return flatten_params(self.weights_before, self.architecture)

    def flat_after(self) -> torch.Tensor:
        return flatten_params(self.weights_after, self.architecture)

    def flat_batch(self) -> torch.Tensor:
        """Canonical batch encoding: X row-major, then Y row-major."""
        return torch.cat([self.inputs.reshape(-1), self.targets.reshape(-1)])


def _copy_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().to(torch.float64).clone() for key, value in state.items()}


def flatten_params(state: Mapping[str, torch.Tensor], architecture: MlpArchitecture) -> torch.Tensor:
    return torch.cat([state[key].reshape(-1) for key, _ in architecture.param_shapes])


def unflatten_params(flat: torch.Tensor, architecture: MlpArchitecture) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for key, shape in architecture.param_shapes:
        count = math.prod(shape)
        out[key] = flat[offset : offset + count].reshape(shape).clone()
        offset += count
    return out


def capture_sgd_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor
) -> TrainingStep:
    """Run one SGD step (MSE loss) on ``model`` and capture it for proving. Dtypes are
    checked before the step runs (:mod:`pot_zk.kinds.dtypes`)."""
    architecture = architecture_of(model)
    learning_rate = check_sgd_optimizer(optimizer)
    state = model.state_dict()
    check_batch_dtype(inputs, targets, weights_dtype({"model": state}))
    before = _copy_state(state)
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(inputs), targets)
    loss.backward()
    optimizer.step()
    step = TrainingStep(
        architecture=architecture,
        learning_rate=learning_rate,
        weights_before=before,
        weights_after=_copy_state(model.state_dict()),
        inputs=inputs.detach().to(torch.float64).clone(),
        targets=targets.detach().to(torch.float64).clone(),
        loss=float(loss.detach()),
    )
    validate_step(step)
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
        weights_before=_copy_state(before),
        weights_after=_copy_state(after),
        inputs=inputs.detach().to(torch.float64).clone(),
        targets=targets.detach().to(torch.float64).clone(),
    )
    validate_step(step)
    return step


def validate_step(step: TrainingStep) -> None:
    """Reject malformed steps before any witness or proof work starts."""
    if not (isinstance(step.learning_rate, float) and math.isfinite(step.learning_rate) and step.learning_rate > 0):
        raise InvalidModelStateError("learning rate must be a finite number > 0", expected="> 0", actual=step.learning_rate)
    expected = dict(step.architecture.param_shapes)
    for name, state in (("weights_before", step.weights_before), ("weights_after", step.weights_after)):
        if set(state) != set(expected):
            raise InvalidModelStateError(
                f"{name} keys do not match the architecture",
                expected=sorted(expected),
                actual=sorted(state),
                missing=sorted(set(expected) - set(state)),
                unexpected=sorted(set(state) - set(expected)),
            )
        for key, shape in expected.items():
            if tuple(state[key].shape) != shape:
                raise InvalidModelStateError(
                    f"{name}[{key}] has the wrong shape", expected=list(shape), actual=list(state[key].shape), key=key
                )
            if not torch.isfinite(state[key]).all():
                raise InvalidModelStateError(f"{name}[{key}] contains NaN or Inf", expected="finite values", actual="NaN/Inf", key=key)
    dims = step.architecture.dims
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


def save_step(step: TrainingStep, path: Path) -> None:
    """Write the step's tensors as safetensors (atomically) with its metadata."""
    import json

    from safetensors.torch import save_file

    from pot_zk.core.atomic import atomic_path

    tensors = {"w_before": step.flat_before(), "w_after": step.flat_after(), "x": step.inputs, "y": step.targets}
    meta = {"architecture": json.dumps(step.architecture.to_dict()), "learning_rate": repr(step.learning_rate)}
    with atomic_path(Path(path)) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)


def load_step(path: Path) -> TrainingStep:
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises several unrelated types on a bad file
        raise WitnessBuilderError(f"cannot read step file {path}: {exc}", expected="safetensors step file", actual=str(path)) from exc
    missing = {"w_before", "w_after", "x", "y"} - set(tensors)
    if missing or "architecture" not in meta or "learning_rate" not in meta:
        raise WitnessBuilderError(
            f"step file {path} is incomplete",
            expected=["w_before", "w_after", "x", "y", "metadata: architecture, learning_rate"],
            actual=sorted(tensors) + sorted(meta),
        )
    architecture = MlpArchitecture.from_dict(json.loads(meta["architecture"]))
    return step_from_states(
        unflatten_params(tensors["w_before"], architecture),
        unflatten_params(tensors["w_after"], architecture),
        tensors["x"],
        tensors["y"],
        float(meta["learning_rate"]),
        architecture,
    )
