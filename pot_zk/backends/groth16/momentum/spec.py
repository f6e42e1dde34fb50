"""The parameters of one exactly proven step of SGD with momentum: :class:`Groth16MomentumSpec`
(the statement is :class:`~pot_zk.backends.groth16.momentum.statement.Groth16MomentumStatement`).

The SGD statement's parameters (:class:`~pot_zk.backends.groth16.sgd.spec.Groth16SgdSpec`:
architecture, loss, batch size, learning rate, grid and bounds) plus torch's ``momentum`` mu
and (L2) ``weight_decay`` lambda. The velocity V is committed state on the weights' grid and
range (``scale``, ``value_bits``). Four constants at ``param_scale`` bits, each the float's
exact binary value rounded half away from zero (an error of at most 2**-(param_scale+1), the
same either side, and the rounding the batch is quantised with)::

    g_fix  = round(c * 2**p)      c = 2 / (N d_out) (mse) or 1 / N (cross_entropy): the
                                  gradient of the mean loss is c * G / 2**scale
    mu_fix = round(mu * 2**p),  wd_fix = round(lambda * 2**p),  lr_fix = round(lr * 2**p)

A constant of a non-zero setting that rounds to 0 is refused (``ConfigurationError``): the
statement would then drop that term. MSE and cross-entropy have their own circuit versions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Mapping

from pot_zk.backends.groth16.sgd.spec import Groth16SgdSpec
from pot_zk.backends.groth16.statement import BACKEND, round_half_away, strict_int
from pot_zk.exceptions import ConfigurationError

VERSIONS = {"mse": "groth16-momentum/1", "cross_entropy": "groth16-momentum-ce/1"}
"""The circuit version of each loss the momentum circuit states."""
KIND = "momentum"


@dataclass(frozen=True)
class Groth16MomentumSpec(Groth16SgdSpec):
    """One exact step of SGD with momentum (and weight decay) of a ReLU MLP with MSE or softmax
    cross-entropy loss."""

    takes_schedule: ClassVar[bool] = False
    """Its circuit holds the rate as a constant: a schedule is refused."""
    versions: ClassVar[Mapping[str, str]] = VERSIONS

    kind: ClassVar[str] = KIND
    public_names: ClassVar[tuple[str, ...]] = ("w_before", "batch", "w_after", "v_before", "v_after")
    after_names: ClassVar[tuple[str, ...]] = ("w_after", "v_after")
    signal_names: ClassVar[Mapping[str, str]] = {name: name for name in ("w_before", "x", "y", "w_after", "v_before", "v_after")}

    momentum: float = field(default=0.0, metadata={"setting": False})
    """mu, in (0, 1): a hyper-parameter of the training, not a fixed-point setting."""
    weight_decay: float = field(default=0.0, metadata={"setting": False})
    """lambda, in [0, 1)."""

    def __post_init__(self) -> None:
        if not (isinstance(self.momentum, float) and math.isfinite(self.momentum) and 0.0 < self.momentum < 1.0):
            raise ConfigurationError(f"momentum must be a float in (0, 1), not {self.momentum!r}", key="optimizer.momentum")
        if not (isinstance(self.weight_decay, float) and math.isfinite(self.weight_decay) and 0.0 <= self.weight_decay < 1.0):
            raise ConfigurationError(f"weight_decay must be a float in [0, 1), not {self.weight_decay!r}", key="optimizer.weight_decay")
        super().__post_init__()
        for name, value, fixed in (("momentum", self.momentum, self.mu_fix), ("weight_decay", self.weight_decay, self.wd_fix), ("learning_rate", self.learning_rate, self.lr_fix)):
            if value and fixed == 0:
                raise ConfigurationError(f"{name} {value!r} rounds to 0 at param_scale={self.param_scale}; raise param_scale", key="circuit.param_scale")

    @property
    def architecture(self) -> Any:
        """The step kind's :class:`~pot_zk.kinds.momentum.step.MomentumArchitecture` (imported here)."""
        from pot_zk.kinds.mlp import MlpArchitecture
        from pot_zk.kinds.momentum.step import MomentumArchitecture

        return MomentumArchitecture(MlpArchitecture(self.dims, loss=self.loss), self.momentum, self.weight_decay)

    def input_sizes(self) -> dict[str, int]:
        return {**super().input_sizes(), "v_before": self.num_params, "v_after": self.num_params}

    @property
    def step_constant(self) -> Fraction:
        """c, the gradient constant (``c_fix`` is ``g_fix``): the learning rate multiplies the
        velocity, not the gradient."""
        return super().step_constant / Fraction(self.learning_rate)

    @property
    def mu_fix(self) -> int:
        return round_half_away(Fraction(self.momentum) * 2**self.param_scale)

    @property
    def wd_fix(self) -> int:
        return round_half_away(Fraction(self.weight_decay) * 2**self.param_scale)

    @property
    def lr_fix(self) -> int:
        return round_half_away(Fraction(self.learning_rate) * 2**self.param_scale)

    def update_bound(self) -> int:
        """The products the update rounds: the velocity's ``mu_fix S V + g_fix G + wd_fix S W``
        (G at S**2: the SGD step's ``g_fix GW`` and ``g_fix gb`` times S bound it) and ``lr_fix V'``."""
        v, unit = 2 ** (self.value_bits - 1), 2**self.scale
        return max(super().update_bound() * unit + (self.mu_fix + self.wd_fix) * unit * v, self.lr_fix * v)

    def to_dict(self) -> dict[str, Any]:
        mlp = {"dims": list(self.dims), "activation": "relu", "loss": self.loss}
        return {
            "kind": KIND,
            "backend": BACKEND,
            "circuit_version": self.circuit_version,
            "architecture": {"mlp": mlp, "momentum": self.momentum, "weight_decay": self.weight_decay},
            **self._fixed_point_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Groth16MomentumSpec":
        try:
            architecture = cls._check_header(data)
            mlp = architecture["mlp"]
            if mlp.get("activation") != "relu" or mlp.get("loss") not in cls.losses:
                raise ValueError(f"only ReLU MLPs with loss {' or '.join(cls.losses)}, not {mlp}")
            return cls(
                dims=tuple(strict_int(d) for d in mlp["dims"]),
                loss=str(mlp["loss"]),
                momentum=float(architecture["momentum"]),
                weight_decay=float(architecture["weight_decay"]),
                **cls._fixed_point_fields(data),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigurationError(f"malformed groth16 momentum spec: {exc!r}", key="circuit") from exc
