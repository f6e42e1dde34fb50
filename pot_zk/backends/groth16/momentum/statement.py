"""The zk-groth16 statement of a ``momentum`` step: :class:`Groth16MomentumStatement`.

Its parameters and bounds are :class:`~pot_zk.backends.groth16.momentum.spec.Groth16MomentumSpec`,
its integer step :func:`~pot_zk.backends.groth16.momentum.exact.exact_momentum_step`, its
circuit :func:`~pot_zk.backends.groth16.momentum.circuit.momentum_circuit_source`; the shared
machinery asks it through :class:`~pot_zk.backends.groth16.statement.Groth16Statement`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from pot_zk.backends.groth16.momentum.circuit import momentum_circuit_source
from pot_zk.backends.groth16.momentum.exact import exact_momentum_step
from pot_zk.backends.groth16.momentum.spec import Groth16MomentumSpec
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.momentum.step import MomentumArchitecture


@dataclass(frozen=True)
class Groth16MomentumStatement(Groth16MomentumSpec):
    """One exact step of SGD with momentum (and weight decay) of a ReLU MLP, proven with Groth16."""

    @classmethod
    def create(cls, architecture: MomentumArchitecture, batch_size: int, learning_rate: float, settings: Mapping[str, Any]) -> "Groth16MomentumStatement":
        mlp = architecture.mlp
        if mlp.activation != "relu" or mlp.loss not in cls.losses:
            raise ConfigurationError(
                f"the groth16 backend proves momentum steps of ReLU MLPs with loss {' or '.join(cls.losses)}, not {mlp.activation} with {mlp.loss}",
                key="model.loss",
            )
        return cls(
            tuple(mlp.dims), batch_size, learning_rate, **settings,
            loss=mlp.loss, momentum=float(architecture.momentum), weight_decay=float(architecture.weight_decay),
        )

    def exact_step(self, integers: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        w_after, v_after = exact_momentum_step(self, integers["w_before"], integers["x"], integers["y"], integers["v_before"])
        return {"w_after": w_after, "v_after": v_after}

    def circuit_source(self) -> str:
        return momentum_circuit_source(self)
