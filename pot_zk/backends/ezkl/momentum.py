"""The ezkl statement of a ``momentum`` step: an ONNX graph that *checks* a supplied update of the weights and
of the velocity.

Statement proven for a :class:`MomentumCircuitSpec` (docs/proofs.md):

    Inputs (private, each Poseidon-hashed; the five hashes are public instances, in this order):
      w_before, batch, w_after  as for an SGD step
      v_before, v_after         the velocity V_t, V_t+1 (flat, parameter order, same scale)
    Output (public): [residual_w, residual_v], 2 * num_params values:
      residual_v = v_after - (mu * v_before + c_g * G(w_before, X, Y) + lambda * w_before)
      residual_w = w_after - (w_before - lr * v_after)
    where G is the backward pass of the loss (as for SGD) and c_g its gradient scale, so
    c_g * G is the gradient of the mean loss. The constants are applied by
    :func:`~pot_zk.backends.ezkl.statement.scaled_product` at ``param_scale`` bits; mu as
    ``v - (1 - mu) * v`` (the error of the constant then scales with 1 - mu, not mu).

The verifier accepts only if every entry of both residuals is within ``tolerance_ulps`` of
2**-scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pot_zk.backends.ezkl.statement import MlpCheck, scaled_product
from pot_zk.kinds.momentum.step import MomentumArchitecture

CIRCUIT_VERSION = "momentum-check/1"
INPUT_NAMES = ("w_before", "batch", "w_after", "v_before", "v_after")


@dataclass(frozen=True)
class MomentumCircuitSpec(MlpCheck):
    kind: ClassVar[str] = "momentum"
    input_names: ClassVar[tuple[str, ...]] = INPUT_NAMES
    circuit_version: ClassVar[str] = CIRCUIT_VERSION
    architecture_type: ClassVar[type] = MomentumArchitecture

    architecture: MomentumArchitecture
    batch_size: int
    learning_rate: float
    scale: int = 12
    param_scale: int | None = None
    """None: 20 for mse; ``scale`` for cross_entropy (the only value it accepts)."""
    decomp_base: int = 256
    decomp_legs: int = 4
    tolerance_ulps: int = 4

    @property
    def num_outputs(self) -> int:
        return 2 * self.architecture.num_params

    def input_sizes(self) -> dict[str, int]:
        p = self.architecture.num_params
        return {"w_before": p, "batch": self.batch_values(), "w_after": p, "v_before": p, "v_after": p}

    def check_module(self) -> nn.Module:
        return MomentumUpdateCheck(self)

    def calibration_inputs(self) -> list[torch.Tensor]:
        """Uniform values in [-1, 1] (seeded by the circuit id) for W_t, the batch and V_t, and
        the V_t+1, W_t+1 that make both residuals zero."""
        generator = torch.Generator().manual_seed(int(self.circuit_id()[:8], 16))
        sizes = self.input_sizes()
        w, batch, v = (torch.rand(sizes[name], generator=generator, dtype=torch.float64) * 2 - 1 for name in ("w_before", "batch", "v_before"))
        residual = self.reference_output([w, batch, w, v, v])
        v_after = v - residual[self.architecture.num_params :]
        w_after = w - self.learning_rate * v_after
        return [w, batch, w_after, v, v_after]


class MomentumUpdateCheck(nn.Module):
    """The graph exported to ONNX. Inputs are ``(1, n)`` rows; output is ``(1, 2 * num_params)``."""

    def __init__(self, spec: MomentumCircuitSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, w_before: torch.Tensor, batch: torch.Tensor, w_after: torch.Tensor, v_before: torch.Tensor, v_after: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        architecture = spec.architecture
        bits = spec.param_scale
        gradient = scaled_product(spec.gradients(w_before, batch), spec.gradient_constant, bits)
        if architecture.weight_decay:
            gradient = gradient + scaled_product(w_before, architecture.weight_decay, bits)
        velocity = v_before - scaled_product(v_before, 1.0 - architecture.momentum, bits) + gradient
        residual_v = v_after - velocity
        residual_w = w_after - (w_before - scaled_product(v_after, spec.learning_rate, bits))
        return torch.cat([residual_w, residual_v], dim=1)

