"""The ezkl statement of a ``lora`` step: an ONNX graph that *checks* a supplied update of the adapters.

Statement proven for a :class:`LoraCircuitSpec` (see docs/lora.md):

    Inputs (private, each Poseidon-hashed; the four hashes are public instances, in order):
      w_before  adapters before the step (per adapted layer A then B, row-major)
      batch     X (N x d_in) then Y (N x d_out), row-major
      w_after   adapters after the step, same layout
      base      the frozen base MLP: per layer W0 (row-major) then b0
    all fixed-point at ``scale`` bits.
    Output (public): residual = w_after - (w_before - c * G(base, w_before, X, Y))
      where G is the gradient with respect to the adapters of sum((f(X) - Y)^2), f the MLP
      whose adapted layers compute x W0^T + b0 + s (x A^T) B^T with s = alpha / rank, and
      c = 2 * learning_rate / (N * d_out).

The verifier accepts only if every residual entry is within ``tolerance_ulps`` units of
2**-scale, and only for the base commitment it declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pot_zk.backends.ezkl.statement import FixedPointCheck
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.lora.reference import adapter_gradients
from pot_zk.kinds.lora.step import LoraArchitecture

CIRCUIT_VERSION = "lora-check/1"
INPUT_NAMES = ("w_before", "batch", "w_after", "base")


@dataclass(frozen=True)
class LoraCircuitSpec(FixedPointCheck):
    kind: ClassVar[str] = "lora"
    input_names: ClassVar[tuple[str, ...]] = INPUT_NAMES
    circuit_version: ClassVar[str] = CIRCUIT_VERSION
    architecture_type: ClassVar[type] = LoraArchitecture

    architecture: LoraArchitecture
    batch_size: int
    learning_rate: float
    scale: int = 12
    param_scale: int | None = None
    """None: 20."""
    decomp_base: int = 256
    decomp_legs: int = 4
    tolerance_ulps: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.architecture.base.loss != "mse":
            raise ConfigurationError(
                f"the zk-halo2 LoRA statement states the mean squared error, not {self.architecture.base.loss}: "
                "prove LoRA steps with cross-entropy with prover=groth16",
                key="model.loss",
            )

    @property
    def step_constant(self) -> float:
        """lr times d(mean squared error)/d(adapter) = step_constant * (unscaled product)."""
        dims = self.architecture.base.dims
        return 2.0 * self.learning_rate * self.architecture.scaling / (self.batch_size * dims[-1])

    @property
    def num_outputs(self) -> int:
        return self.architecture.num_adapter_params

    def input_sizes(self) -> dict[str, int]:
        dims = self.architecture.base.dims
        a = self.architecture.num_adapter_params
        return {"w_before": a, "batch": self.batch_size * (dims[0] + dims[-1]), "w_after": a, "base": self.architecture.base.num_params}

    def check_module(self) -> nn.Module:
        return LoraUpdateCheck(self)


class LoraUpdateCheck(nn.Module):
    """The graph exported to ONNX. Inputs are ``(1, n)`` rows; output is ``(1, adapter params)``.
    Per adapted layer the unscaled gradients are (delta B)^T h and delta^T (h A^T); times
    :attr:`LoraCircuitSpec.step_constant` they are lr * dMSE/dA, dMSE/dB."""

    def __init__(self, spec: LoraCircuitSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, w_before: torch.Tensor, batch: torch.Tensor, w_after: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        update = adapter_gradients(spec.architecture, spec.batch_size, w_before, batch, base) * spec.step_constant
        return w_after - (w_before - update)
