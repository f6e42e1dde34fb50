"""The zk-groth16 statement of an ``sgd`` step: :class:`Groth16SgdStatement`.

Its parameters and bounds are :class:`~pot_zk.backends.groth16.sgd.spec.Groth16SgdSpec`, its
integer step :func:`~pot_zk.backends.groth16.sgd.exact.exact_sgd_step`, its circuit
:func:`~pot_zk.backends.groth16.sgd.circuit.sgd_circuit_source`; the shared machinery (keys,
proving, verification, exact training) asks it through
:class:`~pot_zk.backends.groth16.statement.Groth16Statement`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from pot_zk.backends.groth16.sgd.circuit import sgd_circuit_source
from pot_zk.backends.groth16.sgd.exact import exact_sgd_step
from pot_zk.backends.groth16.sgd.spec import Groth16SgdSpec
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.mlp import MlpArchitecture


@dataclass(frozen=True)
class Groth16SgdStatement(Groth16SgdSpec):
    """One exact SGD step of a ReLU MLP with MSE or softmax cross-entropy loss, proven with Groth16."""

    @classmethod
    def create(cls, architecture: MlpArchitecture, batch_size: int, learning_rate: float, settings: Mapping[str, Any]) -> "Groth16SgdStatement":
        if architecture.activation != "relu" or architecture.loss not in cls.losses:
            raise ConfigurationError(
                f"the groth16 backend proves sgd steps of ReLU MLPs with loss {' or '.join(cls.losses)}, "
                f"not {architecture.activation} with {architecture.loss}",
                key="model.loss",
            )
        return cls(tuple(architecture.dims), batch_size, learning_rate, **settings, loss=architecture.loss)

    def exact_step(self, integers: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"w_after": exact_sgd_step(self, integers["w_before"], integers["x"], integers["y"], self.update_constant(integers))}

    def circuit_source(self) -> str:
        return sgd_circuit_source(self)
