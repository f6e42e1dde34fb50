"""The SGD step circuit: an ONNX graph that *checks* a supplied update.

Statement proven for an :class:`SgdCircuitSpec` (see docs/proofs.md):

    Inputs (private, each Poseidon-hashed; the three hashes are public instances):
      w_before  flat parameters W_t,    fixed-point at ``scale`` bits
      batch     X (N x d_in) then Y (N x d_out), row-major, same scale
      w_after   flat parameters W_t+1,  same scale
    Output (public): residual = w_after - (w_before - c * G(w_before, X, Y))
      where G is the gradient of sum((f(X) - Y)^2) for the ReLU MLP f, and
      c = 2 * learning_rate / (N * d_out) (so c * G is lr times the gradient of the mean
      squared error), a constant fixed in the circuit at ``param_scale`` bits.

The verifier accepts only if every residual entry is within ``tolerance_ulps`` units of
2**-scale. Everything that defines the statement is in the spec, and the circuit id is a
hash of it, so a proof made for another learning rate, shape or scale is a proof of another
circuit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pot_zk.kinds.base import StepTensor
from pot_zk.kinds.mlp import MlpArchitecture, backprop
from pot_zk.kinds.sgd.step import TrainingStep, encode_sgd_step
from pot_zk.kinds.spec_base import FixedPointCheck

CIRCUIT_VERSION = "sgd-check/1"
INPUT_NAMES = ("w_before", "batch", "w_after")


@dataclass(frozen=True)
class SgdCircuitSpec(FixedPointCheck):
    kind: ClassVar[str] = "sgd"
    input_names: ClassVar[tuple[str, ...]] = INPUT_NAMES
    circuit_version: ClassVar[str] = CIRCUIT_VERSION
    architecture_type: ClassVar[type] = MlpArchitecture

    architecture: MlpArchitecture
    batch_size: int
    learning_rate: float
    scale: int = 12
    param_scale: int = 20
    decomp_base: int = 256
    decomp_legs: int = 4
    tolerance_ulps: int = 4

    @property
    def step_constant(self) -> float:
        dims = self.architecture.dims
        return 2.0 * self.learning_rate / (self.batch_size * dims[-1])

    @property
    def num_outputs(self) -> int:
        return self.architecture.num_params

    def input_sizes(self) -> dict[str, int]:
        dims = self.architecture.dims
        p = self.architecture.num_params
        return {"w_before": p, "batch": self.batch_size * (dims[0] + dims[-1]), "w_after": p}

    def encode(self, step: TrainingStep) -> list[StepTensor]:
        return encode_sgd_step(step)

    def check_module(self) -> nn.Module:
        return SgdUpdateCheck(self)


def unpack(spec: SgdCircuitSpec, w_before: torch.Tensor, batch: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The per-layer parameters, X and Y of ``(1, n)`` rows."""
    dims = spec.architecture.dims
    n = spec.batch_size
    params = []
    offset = 0
    for _, shape in spec.architecture.param_shapes:
        count = math.prod(shape)
        params.append(w_before[:, offset : offset + count].reshape(shape))
        offset += count
    x = batch[:, : n * dims[0]].reshape(n, dims[0])
    y = batch[:, n * dims[0] :].reshape(n, dims[-1])
    return params, x, y


class SgdUpdateCheck(nn.Module):
    """The graph exported to ONNX. Inputs are ``(1, n)`` rows; output is ``(1, num_params)``."""

    def __init__(self, spec: SgdCircuitSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, w_before: torch.Tensor, batch: torch.Tensor, w_after: torch.Tensor) -> torch.Tensor:
        params, x, y = unpack(self.spec, w_before, batch)
        trace = backprop(params, x, y)
        grads = [g for layer in range(len(params) // 2) for g in trace.weight_grads[layer]]
        update = torch.cat([g.reshape(1, -1) for g in grads], dim=1) * self.spec.step_constant
        return w_after - (w_before - update)
