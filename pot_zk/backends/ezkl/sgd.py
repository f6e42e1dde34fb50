"""The ezkl statement of an ``sgd`` step: an ONNX graph that *checks* a supplied update.

Statement proven for an :class:`SgdCircuitSpec` (see docs/proofs.md):

    Inputs (private, each Poseidon-hashed; the three hashes are public instances):
      w_before  flat parameters W_t,    fixed-point at ``scale`` bits
      batch     X (N x d_in) then the targets, row-major, same scale: Y (N x d_out) for
                ``mse``, the class labels (N) for ``cross_entropy``
      w_after   flat parameters W_t+1,  same scale
    Output (public): residual = w_after - (w_before - c * G(w_before, X, Y))
      where G is the backward pass of the ReLU MLP f from the loss's output delta
      (pot_zk.kinds.losses: f(X) - Y for mse, softmax(f(X)) - one_hot(labels) for
      cross_entropy) and c = learning_rate * gradient_scale (2 / (N * d_out) for mse, 1 / N
      for cross_entropy), so c * G is lr times the gradient of the mean loss. For mse, c is a
      constant of the circuit at ``param_scale`` bits; for cross_entropy (whose exp table
      needs ``param_scale == scale``) c is applied as c * 2**s at ``scale`` bits, with
      c * 2**s in [0.5, 1), then times 2**-s (exact powers of two), which keeps ~``scale``
      significant bits of c.

The verifier accepts only if every residual entry is within ``tolerance_ulps`` units of
2**-scale. Everything that defines the statement is in the spec, and the circuit id is a
hash of it, so a proof made for another learning rate, shape or scale is a proof of another
circuit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pot_zk.backends.ezkl.statement import MlpCheck, scaled_product
from pot_zk.kinds.mlp import MlpArchitecture

CIRCUIT_VERSION = "sgd-check/1"
INPUT_NAMES = ("w_before", "batch", "w_after")


@dataclass(frozen=True)
class SgdCircuitSpec(MlpCheck):
    kind: ClassVar[str] = "sgd"
    input_names: ClassVar[tuple[str, ...]] = INPUT_NAMES
    circuit_version: ClassVar[str] = CIRCUIT_VERSION
    architecture_type: ClassVar[type] = MlpArchitecture

    architecture: MlpArchitecture
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
        return self.architecture.num_params

    def input_sizes(self) -> dict[str, int]:
        p = self.architecture.num_params
        return {"w_before": p, "batch": self.batch_values(), "w_after": p}

    def check_module(self) -> nn.Module:
        return SgdUpdateCheck(self)


class SgdUpdateCheck(nn.Module):
    """The graph exported to ONNX. Inputs are ``(1, n)`` rows; output is ``(1, num_params)``."""

    def __init__(self, spec: SgdCircuitSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, w_before: torch.Tensor, batch: torch.Tensor, w_after: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        grads = spec.gradients(w_before, batch)
        if not spec.cross_entropy:
            return w_after - (w_before - grads * spec.step_constant)
        return w_after - (w_before - scaled_product(grads, spec.step_constant, spec.scale))
