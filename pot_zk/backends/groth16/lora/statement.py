"""The zk-groth16 statement of a ``lora`` step: :class:`Groth16LoraStatement`.

Its parameters and bounds are :class:`~pot_zk.backends.groth16.lora.spec.Groth16LoraSpec`, its
integer step :func:`~pot_zk.backends.groth16.lora.exact.exact_lora_step`, its circuit
:func:`~pot_zk.backends.groth16.lora.circuit.lora_circuit_source`; the shared machinery asks
it through :class:`~pot_zk.backends.groth16.statement.Groth16Statement`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from pot_zk.backends.groth16.lora.circuit import lora_circuit_source
from pot_zk.backends.groth16.lora.exact import exact_lora_step
from pot_zk.backends.groth16.lora.spec import Groth16LoraSpec
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.lora.step import LoraArchitecture


@dataclass(frozen=True)
class Groth16LoraStatement(Groth16LoraSpec):
    """One exact SGD step on the LoRA adapters of a frozen ReLU MLP (MSE or softmax cross-entropy loss), proven with Groth16."""

    @classmethod
    def create(cls, architecture: LoraArchitecture, batch_size: int, learning_rate: float, settings: Mapping[str, Any]) -> "Groth16LoraStatement":
        base = architecture.base
        if base.activation != "relu" or base.loss not in cls.losses:
            raise ConfigurationError(
                f"the groth16 backend proves lora steps of ReLU MLPs with loss {' or '.join(cls.losses)}, not {base.activation} with {base.loss}",
                key="model.loss",
            )
        return cls(
            tuple(base.dims), tuple(architecture.adapted), int(architecture.rank), float(architecture.alpha), batch_size, learning_rate,
            **settings, loss=base.loss,
        )

    def exact_step(self, integers: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"w_after": exact_lora_step(self, integers["base"], integers["w_before"], integers["x"], integers["y"], self.update_constant(integers))}

    def circuit_source(self) -> str:
        return lora_circuit_source(self)
