"""The zk-groth16 statement of an ``adamw`` step: :class:`Groth16AdamwStatement`.

Its parameters and bounds are :class:`~pot_zk.backends.groth16.adamw.spec.Groth16AdamwSpec`,
its integer step :func:`~pot_zk.backends.groth16.adamw.exact.exact_adamw_step`, its circuit
:func:`~pot_zk.backends.groth16.adamw.circuit.adamw_circuit_source`; the shared machinery asks
it through :class:`~pot_zk.backends.groth16.statement.Groth16Statement`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from pot_zk.backends.groth16.adamw.circuit import adamw_circuit_source
from pot_zk.backends.groth16.adamw.exact import exact_adamw_step
from pot_zk.backends.groth16.adamw.spec import MOMENT_SCALE, SECOND_SCALE, Groth16AdamwSpec
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.adamw.step import AdamwArchitecture


@dataclass(frozen=True)
class Groth16AdamwStatement(Groth16AdamwSpec):
    """One exact Adam or AdamW step of a ReLU MLP, proven with Groth16."""

    @classmethod
    def create(cls, architecture: AdamwArchitecture, batch_size: int, learning_rate: float, settings: Mapping[str, Any]) -> "Groth16AdamwStatement":
        mlp = architecture.mlp
        if mlp.activation != "relu" or mlp.loss not in cls.losses:
            raise ConfigurationError(
                f"the groth16 backend proves adamw steps of ReLU MLPs with loss {' or '.join(cls.losses)}, not {mlp.activation} with {mlp.loss}",
                key="model.loss",
            )
        return cls(
            tuple(mlp.dims), batch_size, learning_rate, **settings, loss=mlp.loss, betas=tuple(architecture.betas), eps=float(architecture.eps),
            weight_decay=float(architecture.weight_decay), decoupled_weight_decay=bool(architecture.decoupled_weight_decay),
        )

    def exact_step(self, integers: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return exact_adamw_step(self, integers)

    def circuit_source(self) -> str:
        return adamw_circuit_source(self)

    def sample_step(self, seed: int = 0) -> dict[str, np.ndarray]:
        """A fixed honest step: weights U(-0.5, 0.5), X U(-1, 1), Y U(-1, 1) or random labels,
        moments of a few earlier steps' size (m ~ U(-0.05, 0.05), v = m^2 plus up to 1e-4),
        step count 4 -> 5; the state after it from :meth:`exact_step`."""
        rng = np.random.default_rng(seed)

        def grid(values: np.ndarray, scale: int) -> np.ndarray:
            return np.round(values * 2.0**scale).astype(np.int64)

        n = self.batch_size
        m = grid(rng.uniform(-0.05, 0.05, self.num_params), MOMENT_SCALE)
        integers = {
            "w_before": grid(rng.uniform(-0.5, 0.5, self.num_params), self.scale),
            "x": grid(rng.uniform(-1, 1, (n, self.dims[0])), self.scale),
            "y": rng.integers(0, self.dims[-1], n).astype(np.int64) * 2**self.scale if self.loss == "cross_entropy" else grid(rng.uniform(-1, 1, (n, self.dims[-1])), self.scale),
            "m_before": m,
            "v_before": m * m * 2 ** (SECOND_SCALE - 2 * MOMENT_SCALE) + grid(rng.uniform(0, 1e-4, self.num_params), SECOND_SCALE),
            "t_before": np.array([4], dtype=np.int64),
        }
        return {**integers, **self.exact_step(integers)}
