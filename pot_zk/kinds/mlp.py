"""The ReLU MLP every step kind trains: its architecture, reading it from torch, and its
forward and backward pass, written once.

Supported: ``nn.Sequential`` of ``nn.Linear`` layers with ``nn.ReLU`` between them (the last
layer linear), the losses of :mod:`pot_zk.kinds.losses` (mean squared error, softmax
cross-entropy), ``torch.optim.SGD`` with one parameter group, no
momentum, no weight decay, no dampening, no nesterov, not maximising. Anything else raises
:class:`~pot_zk.exceptions.InvalidModelStateError` naming what was found.

:func:`backprop` is the one backward pass: the step kinds' check graphs (exported to ONNX, so
their operations *are* the circuits), their float64 references and the ``freivalds``
certificates all read their products from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
from torch import nn

from pot_zk.exceptions import ConfigurationError, InvalidModelStateError
from pot_zk.kinds.losses import check_loss, output_delta

Shapes = list[tuple[str, tuple[int, ...]]]


@dataclass(frozen=True)
class MlpArchitecture:
    """A ReLU MLP: ``dims[0]`` inputs, hidden widths, ``dims[-1]`` outputs, trained with
    ``loss`` (``mse`` or ``cross_entropy``, :mod:`pot_zk.kinds.losses`)."""

    dims: tuple[int, ...]
    activation: str = "relu"
    loss: str = "mse"

    def __post_init__(self) -> None:
        check_loss(self.loss)
        if len(self.dims) < 2 or not all(type(d) is int and d >= 1 for d in self.dims):  # review51: dims [] raised IndexError in verify
            raise ConfigurationError(f"an MLP's dims are at least two widths >= 1, got {list(self.dims)}", key="dims")

    @property
    def param_shapes(self) -> Shapes:
        """Canonical parameter order: per layer, ``weight`` (out x in, row-major) then ``bias``."""
        shapes: Shapes = []
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
    """Read the architecture of a supported model, or say precisely why it is not supported.
    The types are torch's own, not subclasses, and no module has hooks: a subclass's forward or a
    hook would compute another function than the statement's MLP, which its reference step (taken
    on a copy of the same model) would not notice (found by a review)."""
    if type(model) is not nn.Sequential:
        raise InvalidModelStateError(
            f"unsupported model type {type(model).__name__}",
            expected="nn.Sequential of nn.Linear with nn.ReLU between them",
            actual=type(model).__name__,
        )
    modules = list(model)
    kinds = [type(m).__name__ for m in modules]
    valid = len(modules) % 2 == 1 and all(
        type(m) is nn.Linear if i % 2 == 0 else type(m) is nn.ReLU for i, m in enumerate(modules)
    )
    if not valid or not modules:
        raise InvalidModelStateError(
            f"unsupported layer sequence {', '.join(kinds) or '(empty)'}: the statement's MLP is Linear, ReLU, Linear, ..., Linear "
            "(torch's own classes; no dropout, normalisation or other activation)",
            expected="Linear, ReLU, Linear, ..., Linear (torch's own classes)", actual=kinds,
        )
    hooked = [name or type(model).__name__ for name, m in model.named_modules() if _hooks(m)]
    if hooked:
        raise InvalidModelStateError(
            f"modules with forward or backward hooks: {hooked}: a hook changes what the step computes; remove them",
            expected="no module hooks", actual=hooked,
        )
    dims = [modules[0].in_features] + [m.out_features for m in modules[0::2]]
    for i, m in enumerate(modules[0::2]):
        if m.bias is None:
            raise InvalidModelStateError(
                f"layer {2 * i} has no bias (nn.Linear(bias=False)): the statement's layers have biases", expected="nn.Linear(bias=True)", actual="bias=None"
            )
        if m.in_features != dims[i]:
            raise InvalidModelStateError(
                f"layer {2 * i} input width does not match the previous layer", expected=dims[i], actual=m.in_features
            )
    return MlpArchitecture(dims=tuple(dims))


def _hooks(module: nn.Module) -> bool:
    return any(getattr(module, name, None) for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))


def check_optimizer_covers(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every trainable parameter of ``model`` is in ``optimizer`` (the statement's step trains
    them all; a parameter the loop's optimizer leaves out would be trained by the exact step and
    not by the loop: found by a review)."""
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    left_out = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in optimized]
    if left_out:
        raise InvalidModelStateError(
            f"trainable parameters the optimizer does not train: {left_out}; give the optimizer every trainable parameter "
            "(or freeze these)", expected="every trainable parameter in the optimizer", actual=left_out,
        )


class OnMlp:
    """What an architecture that trains an MLP (``self.mlp``) with an optimizer of its own
    (momentum, AdamW) says of it: the MLP's dims, loss and parameters."""

    mlp: MlpArchitecture

    @property
    def dims(self) -> tuple[int, ...]:
        return self.mlp.dims

    @property
    def loss(self) -> str:
        return self.mlp.loss

    @property
    def param_shapes(self) -> Shapes:
        return self.mlp.param_shapes

    @property
    def num_params(self) -> int:
        return self.mlp.num_params


def mlp_from_dims(dims: Sequence[int], loss: str = "mse") -> MlpArchitecture:
    """The architecture of configured widths (``model.dims``) and loss, checked."""
    architecture = MlpArchitecture(tuple(int(d) for d in dims), loss=loss)
    if len(architecture.dims) < 2 or min(architecture.dims) < 1:
        raise ConfigurationError(f"model.dims must list >= 2 positive widths, got {list(architecture.dims)}", key="model.dims")
    return architecture


def check_sgd_optimizer(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of a plain SGD optimizer; anything else is rejected."""
    if type(optimizer) is not torch.optim.SGD:
        raise InvalidModelStateError(
            "only torch.optim.SGD steps can be proven", expected="torch.optim.SGD", actual=type(optimizer).__name__
        )
    if len(optimizer.param_groups) != 1:
        raise InvalidModelStateError(
            "SGD with several parameter groups is not supported", expected=1, actual=len(optimizer.param_groups)
        )
    group = optimizer.param_groups[0]
    plain = {"momentum": 0, "weight_decay": 0, "dampening": 0, "nesterov": False, "maximize": False, "differentiable": False}
    found = {key: group.get(key, plain[key]) for key in plain}
    if found != plain:
        raise InvalidModelStateError("only plain SGD is supported", expected=plain, actual=found)
    return float(group["lr"])


@dataclass(frozen=True)
class MomentumSettings:
    """SGD's momentum (no dampening, no Nesterov) and L2 weight decay."""

    momentum: float
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.momentum) and 0.0 < self.momentum < 1.0):
            raise ConfigurationError(f"momentum must be in (0, 1), got {self.momentum}", key="optimizer.momentum")
        if not (math.isfinite(self.weight_decay) and 0.0 <= self.weight_decay < 1.0):
            raise ConfigurationError(f"weight_decay must be in [0, 1), got {self.weight_decay}", key="optimizer.weight_decay")


def check_momentum_optimizer(optimizer: torch.optim.Optimizer) -> tuple[float, MomentumSettings]:
    """The learning rate and momentum settings of ``torch.optim.SGD`` with momentum (weight
    decay allowed); dampening, Nesterov, maximising and several groups are rejected."""
    if type(optimizer) is not torch.optim.SGD:
        raise InvalidModelStateError("only torch.optim.SGD steps can be proven", expected="torch.optim.SGD", actual=type(optimizer).__name__)
    if len(optimizer.param_groups) != 1:
        raise InvalidModelStateError("SGD with several parameter groups is not supported", expected=1, actual=len(optimizer.param_groups))
    group = optimizer.param_groups[0]
    unsupported = {"dampening": 0, "nesterov": False, "maximize": False, "differentiable": False}
    found = {key: group.get(key, unsupported[key]) for key in unsupported}
    if found != unsupported:
        used = ", ".join(f"{key}={found[key]!r}" for key in unsupported if found[key] != unsupported[key])
        raise InvalidModelStateError(f"SGD with momentum is supported without dampening, Nesterov or maximize; this optimizer has {used}", expected=unsupported, actual=found)
    try:
        settings = MomentumSettings(float(group["momentum"]), float(group.get("weight_decay", 0.0)))
    except ConfigurationError as exc:
        raise InvalidModelStateError(exc.message, expected="0 < momentum < 1, 0 <= weight_decay < 1", actual={"momentum": group["momentum"], "weight_decay": group.get("weight_decay")}) from exc
    return float(group["lr"]), settings


def flatten(state: Mapping[str, torch.Tensor], shapes: Shapes) -> torch.Tensor:
    """The tensors of ``state`` in the order of ``shapes``, each row-major, as one vector.
    ValueError for a tensor of another shape (a review: a model file's ``[4, 3]`` weight in place
    of the architecture's ``[3, 4]`` flattened to the committed values, and final-model passed)."""
    wrong = [f"{key} {tuple(state[key].shape)} (the architecture's {tuple(shape)})" for key, shape in shapes if tuple(state[key].shape) != tuple(shape)]
    if wrong:
        raise ValueError(f"tensors of other shapes: {', '.join(wrong[:5])}")
    return torch.cat([state[key].reshape(-1) for key, _ in shapes])


def unflatten(flat: torch.Tensor, shapes: Shapes) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for key, shape in shapes:
        count = math.prod(shape)
        out[key] = flat[offset : offset + count].reshape(shape).clone()
        offset += count
    return out


@dataclass
class Backprop:
    """The forward and backward pass of one batch, every product kept by layer number l.

    ``inputs[l]`` is layer l's input H_l (X, then the ReLU outputs), ``pre[l]`` its
    pre-activation Z_l. For adapted layers (adapters A_l, B_l, scaling s): ``lowrank[l]`` is
    U_l = H_l A_l^T, ``projected[l]`` V_l = D_l B_l (D_l the gradient of the summed loss at
    the layer's output, up to the loss's constant factor), ``adapter_grads[l]`` (V_l^T H_l, D_l^T U_l). When the base
    weights train, ``weight_grads[l]`` is (D_l^T H_l, sum over the batch of D_l).
    ``back[l]`` = D_l W_l (+ s V_l A_l), before the ReLU mask, for the layers above the
    lowest trained one.
    """

    inputs: list[torch.Tensor] = field(default_factory=list)
    pre: list[torch.Tensor] = field(default_factory=list)
    lowrank: dict[int, torch.Tensor] = field(default_factory=dict)
    projected: dict[int, torch.Tensor] = field(default_factory=dict)
    weight_grads: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    adapter_grads: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    back: dict[int, torch.Tensor] = field(default_factory=dict)


def backprop(
    params: list[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    adapters: Mapping[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
    scaling: float = 1.0,
    train_base: bool = True,
    loss: str = "mse",
) -> Backprop:
    """One forward and backward pass of the ReLU MLP with weights ``params`` (per layer W_l,
    b_l) and, on some layers, adapters (A_l, B_l) whose product is scaled by ``scaling``.

    The gradients are unscaled: they start from :func:`~pot_zk.kinds.losses.output_delta` of
    ``loss`` (``y`` holds its targets), and the gradient of the mean loss is
    :func:`~pot_zk.kinds.losses.gradient_scale` times them. Which weights train decides how far down the backward pass
    runs: every layer with ``train_base``, else down to the lowest adapted layer.
    """
    adapters = dict(adapters or {})
    layers = len(params) // 2
    trace = Backprop()
    h = x
    for layer in range(layers):
        trace.inputs.append(h)
        z = h @ params[2 * layer].t() + params[2 * layer + 1]
        if layer in adapters:
            a, b = adapters[layer]
            trace.lowrank[layer] = h @ a.t()
            z = z + (trace.lowrank[layer] @ b.t()) * scaling
        trace.pre.append(z)
        h = torch.relu(z) if layer < layers - 1 else z
    delta = output_delta(loss, h, y)
    lowest = 0 if train_base else min(adapters)
    for layer in reversed(range(lowest, layers)):
        if train_base:
            trace.weight_grads[layer] = (delta.t() @ trace.inputs[layer], delta.sum(0))
        if layer in adapters:
            trace.projected[layer] = delta @ adapters[layer][1]
            trace.adapter_grads[layer] = (trace.projected[layer].t() @ trace.inputs[layer], delta.t() @ trace.lowrank[layer])
        if layer > lowest:
            back = delta @ params[2 * layer]
            if layer in adapters:
                back = back + (trace.projected[layer] @ adapters[layer][0]) * scaling
            trace.back[layer] = back
            delta = torch.where(trace.pre[layer - 1] > 0, back, torch.zeros_like(back))
    return trace
