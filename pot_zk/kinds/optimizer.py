"""The optimizer a run trains with, as the step kinds see it.

:class:`OptimizerSettings` is read from the configuration (group ``optimizer``: ``name``,
``momentum``, ``weight_decay``, ``betas``, ``eps``; the learning rate is ``train.learning_rate``)
or from a user's torch optimizer (:meth:`OptimizerSettings.of`). Which step kind a model
trained with it makes is the kinds' to say (:meth:`pot_zk.kinds.base.StepKind.takes`, asked by
:func:`pot_zk.kinds.registry.kind_for`); :meth:`OptimizerSettings.build` makes the torch
optimizer ``pot-zk train`` steps with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Iterable

import torch

from pot_zk.exceptions import ConfigurationError, InvalidModelStateError

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
"""``optimizer.name`` -> the torch optimizer: SGD (with or without momentum), Adam (weight decay
added to the gradient) and AdamW (decoupled weight decay)."""


@dataclass(frozen=True)
class OptimizerSettings:
    """An optimizer's name and the settings the statements depend on (one parameter group)."""

    name: str = "sgd"
    momentum: float = 0.0
    """SGD's momentum (0: plain SGD)."""
    weight_decay: float = 0.0
    """SGD and Adam: L2 weight decay added to the gradient; AdamW: decoupled decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam and AdamW: the decay rates of the first and second moment."""
    eps: float = 1e-8
    """Adam and AdamW: added to the square root of the second moment."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.name not in OPTIMIZERS:
            raise ConfigurationError(f"unknown optimizer.name {self.name!r}; valid: {', '.join(OPTIMIZERS)}", key="optimizer.name", valid=list(OPTIMIZERS))
        if not (math.isfinite(self.momentum) and 0.0 <= self.momentum < 1.0):
            raise ConfigurationError(f"optimizer.momentum must be in [0, 1), got {self.momentum}", key="optimizer.momentum")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0.0):
            raise ConfigurationError(f"optimizer.weight_decay must be >= 0, got {self.weight_decay}", key="optimizer.weight_decay")
        if len(self.betas) != 2 or not all(math.isfinite(b) and 0.0 <= b < 1.0 for b in self.betas):
            raise ConfigurationError(f"optimizer.betas must be two numbers in [0, 1), got {list(self.betas)}", key="optimizer.betas")
        if not (math.isfinite(self.eps) and self.eps > 0.0):
            raise ConfigurationError(f"optimizer.eps must be > 0, got {self.eps}", key="optimizer.eps")

    @classmethod
    def of(cls, optimizer: torch.optim.Optimizer) -> "OptimizerSettings":
        """The settings of a torch optimizer's first parameter group (the kind's capture checks
        the rest: one group, no dampening, Nesterov, AMSGrad...). InvalidModelStateError for an
        optimizer other than SGD, Adam and AdamW, or settings out of range."""
        kind = type(optimizer)
        if kind not in OPTIMIZERS.values():
            raise InvalidModelStateError(
                f"only torch.optim.SGD, Adam and AdamW steps can be proven, not {kind.__name__}",
                expected=[c.__name__ for c in OPTIMIZERS.values()],
                actual=kind.__name__,
            )
        group: dict[str, Any] = optimizer.param_groups[0] if optimizer.param_groups else {}
        name = next(key for key, value in OPTIMIZERS.items() if value is kind)
        if name == "adam" and group.get("decoupled_weight_decay"):
            name = "adamw"
        try:
            if name == "sgd":
                return cls(name, float(group.get("momentum", 0.0)), float(group.get("weight_decay", 0.0)))
            return cls(name, 0.0, float(group.get("weight_decay", 0.0)), tuple(float(b) for b in group.get("betas", cls.betas)), float(group.get("eps", cls.eps)))
        except (ConfigurationError, TypeError) as exc:
            raise InvalidModelStateError(f"the {kind.__name__} settings cannot be proven: {exc}", expected="settings in range", actual=dict(group)) from exc

    def changed(self) -> list[str]:
        """The settings that differ from the defaults (plain SGD), as config keys."""
        default = OptimizerSettings()
        return [f"optimizer.{f.name}" for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)]

    def describe(self) -> str:
        return ", ".join(f"{key}={getattr(self, key.removeprefix('optimizer.'))}" for key in self.changed()) or "plain SGD"

    def build(self, parameters: Iterable[torch.nn.Parameter], learning_rate: float) -> torch.optim.Optimizer:
        """The torch optimizer of these settings over ``parameters``."""
        if self.name == "sgd":
            return torch.optim.SGD(parameters, lr=learning_rate, momentum=self.momentum, weight_decay=self.weight_decay)
        return OPTIMIZERS[self.name](parameters, lr=learning_rate, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)
