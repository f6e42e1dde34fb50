"""The SGD step circuit: an ONNX graph that *checks* a supplied update.

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

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
from torch import nn

from pot_zk.exceptions import ConfigurationError, WitnessBuilderError
from pot_zk.kinds.base import StepTensor
from pot_zk.kinds.losses import gradient_scale, target_shape, targets_per_sample
from pot_zk.kinds.mlp import MlpArchitecture, backprop
from pot_zk.kinds.sgd.step import TrainingStep, encode_sgd_step
from pot_zk.kinds.spec_base import FixedPointCheck

CIRCUIT_VERSION = "sgd-check/1"
INPUT_NAMES = ("w_before", "batch", "w_after")
EXP_RANGE = 16
"""cross_entropy: ezkl's softmax looks exp up in a table over [-EXP_RANGE, 0] (logit minus the
row's largest logit); a batch whose logits spread wider is refused before proving."""


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
    param_scale: int | None = None
    """None: 20 for mse; ``scale`` for cross_entropy (the only value it accepts)."""
    decomp_base: int = 256
    decomp_legs: int = 4
    tolerance_ulps: int = 4

    def default_param_scale(self) -> int:
        return self.scale if self.cross_entropy else 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cross_entropy and self.param_scale != self.scale:
            raise ConfigurationError(
                f"a cross_entropy statement needs circuit.param_scale = circuit.scale ({self.scale}): ezkl's softmax "
                f"looks exp up at the scale of its input; got param_scale {self.param_scale}",
                key="circuit.param_scale",
            )

    @property
    def cross_entropy(self) -> bool:
        return self.architecture.loss == "cross_entropy"

    @property
    def step_constant(self) -> float:
        dims = self.architecture.dims
        return self.learning_rate * gradient_scale(self.architecture.loss, self.batch_size, dims[-1])

    @property
    def lookup_range(self) -> tuple[int, int] | None:
        """The exp table's input range (fixed-point integers), for cross_entropy."""
        return (-EXP_RANGE * 2**self.scale, 0) if self.cross_entropy else None

    def check_ranges(self, inputs: Sequence[torch.Tensor]) -> None:
        """Prover side, on grid values in input order: a cross_entropy batch whose logits spread
        beyond the exp table is refused (the prover would not terminate on it)."""
        if not self.cross_entropy:
            return
        params, x, _ = unpack(self, inputs[0].reshape(1, -1).double(), inputs[1].reshape(1, -1).double())
        logits = backprop(params, x, torch.zeros(x.shape[0]), loss="cross_entropy").pre[-1]
        spread = float((logits.max(dim=1).values - logits.min(dim=1).values).max())
        if spread > EXP_RANGE - 1:
            raise WitnessBuilderError(
                f"the logits of this batch spread by {spread:.3g} > {EXP_RANGE - 1}, beyond the circuit's exp table",
                expected=f"max - min of each row's logits <= {EXP_RANGE - 1}",
                actual=spread,
            )

    @property
    def num_outputs(self) -> int:
        return self.architecture.num_params

    def input_sizes(self) -> dict[str, int]:
        dims = self.architecture.dims
        p = self.architecture.num_params
        targets = targets_per_sample(self.architecture.loss, dims[-1])
        return {"w_before": p, "batch": self.batch_size * (dims[0] + targets), "w_after": p}

    def encode(self, step: TrainingStep) -> list[StepTensor]:
        return encode_sgd_step(step)

    def check_module(self) -> nn.Module:
        return SgdUpdateCheck(self)


def unpack(spec: SgdCircuitSpec, w_before: torch.Tensor, batch: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The per-layer parameters, X and the targets (Y, or the labels) of ``(1, n)`` rows."""
    dims = spec.architecture.dims
    n = spec.batch_size
    params = []
    offset = 0
    for _, shape in spec.architecture.param_shapes:
        count = math.prod(shape)
        params.append(w_before[:, offset : offset + count].reshape(shape))
        offset += count
    x = batch[:, : n * dims[0]].reshape(n, dims[0])
    y = batch[:, n * dims[0] :].reshape(target_shape(spec.architecture.loss, n, dims[-1]))
    return params, x, y


class SgdUpdateCheck(nn.Module):
    """The graph exported to ONNX. Inputs are ``(1, n)`` rows; output is ``(1, num_params)``."""

    def __init__(self, spec: SgdCircuitSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, w_before: torch.Tensor, batch: torch.Tensor, w_after: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        params, x, y = unpack(spec, w_before, batch)
        trace = backprop(params, x, y, loss=spec.architecture.loss)
        grads = torch.cat([g.reshape(1, -1) for layer in range(len(params) // 2) for g in trace.weight_grads[layer]], dim=1)
        if not spec.cross_entropy:
            return w_after - (w_before - grads * spec.step_constant)
        return w_after - (w_before - scaled_product(grads, spec.step_constant, spec.scale))


def scaled_product(values: torch.Tensor, constant: float, scale: int) -> torch.Tensor:
    """``values * constant`` for a circuit whose constants have ``scale`` fractional bits:
    ``constant * 2**s`` (in [0.5, 1), so ~``scale`` significant bits survive), then times
    2**-s in exact powers of two of at most ``scale`` bits each."""
    shift = max(0, -math.floor(math.log2(constant)) - 1)
    out = values * (constant * 2.0**shift)
    while shift > 0:
        step = min(shift, scale)
        out = out * 2.0**-step
        shift -= step
    return out
