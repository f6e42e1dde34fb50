"""What the check statements of a full MLP step share (the ``sgd`` and ``momentum`` kinds):
reading the flat circuit inputs, the step constant of the loss, and the cross-entropy
specifics of ezkl's circuits.

Cross-entropy (``loss=cross_entropy``): ezkl's softmax looks exp up in a table at the scale of
its input, which with ``param_scale = 20`` would be 2**-20. So a cross-entropy statement takes
``param_scale = scale``, its constants are applied by :func:`scaled_product`, and the table
covers [-EXP_RANGE, 0], where :func:`~pot_zk.kinds.losses.clamped_softmax` keeps every exp
input (ezkl's prover does not terminate on a lookup outside its table).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.losses import EXP_RANGE, gradient_scale, target_shape, targets_per_sample
from pot_zk.kinds.mlp import backprop
from pot_zk.kinds.spec_base import FixedPointCheck


def unpack(architecture: Any, batch_size: int, w_before: torch.Tensor, batch: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The per-layer parameters, X and the targets (Y, or the labels) of ``(1, n)`` rows."""
    dims = architecture.dims
    params = []
    offset = 0
    for _, shape in architecture.param_shapes:
        count = math.prod(shape)
        params.append(w_before[:, offset : offset + count].reshape(shape))
        offset += count
    x = batch[:, : batch_size * dims[0]].reshape(batch_size, dims[0])
    y = batch[:, batch_size * dims[0] :].reshape(target_shape(architecture.loss, batch_size, dims[-1]))
    return params, x, y


def scaled_product(values: torch.Tensor, constant: float, bits: int) -> torch.Tensor:
    """``values * constant`` for a circuit whose constants have ``bits`` fractional bits: as
    is when ``constant`` is exact at ``bits``; else ``constant * 2**s`` (in [0.5, 1), so
    ~``bits`` significant bits survive), then times 2**-s in exact powers of two of at most
    ``bits`` bits each."""
    if float(constant * 2.0**bits).is_integer():
        return values * constant  # exact at ``bits``: one product
    shift = max(0, -math.floor(math.log2(constant)) - 1)
    out = values * (constant * 2.0**shift)
    while shift > 0:
        step = min(shift, bits)
        out = out * 2.0**-step
        shift -= step
    return out


class MlpCheck(FixedPointCheck):
    """Mixin of the full-MLP check specs (frozen dataclasses whose ``architecture`` has
    ``dims``, ``loss``, ``param_shapes`` and ``num_params``)."""

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

    def to_dict(self) -> dict[str, Any]:
        """A cross_entropy statement also names its exp clamp (``exp_range``); an mse one's dict
        is as it always was (same circuit ids)."""
        data = super().to_dict()
        if self.cross_entropy:
            data["exp_range"] = EXP_RANGE
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        spec = super().from_dict(data)
        if data.get("exp_range", EXP_RANGE if spec.cross_entropy else None) != (EXP_RANGE if spec.cross_entropy else None):
            raise ConfigurationError(
                f"this pot-zk proves cross_entropy statements with exp_range {EXP_RANGE} (and mse ones without), not {data.get('exp_range')!r}",
                key="circuit.exp_range",
            )
        return spec

    @property
    def cross_entropy(self) -> bool:
        return self.architecture.loss == "cross_entropy"

    @property
    def gradient_constant(self) -> float:
        """The factor that makes the backward pass the gradient of the mean loss."""
        return gradient_scale(self.architecture.loss, self.batch_size, self.architecture.dims[-1])

    @property
    def step_constant(self) -> float:
        return self.learning_rate * self.gradient_constant

    @property
    def lookup_range(self) -> tuple[int, int] | None:
        """The exp table's input range (fixed-point integers), for cross_entropy."""
        return (-EXP_RANGE * 2**self.scale, 0) if self.cross_entropy else None

    def batch_values(self) -> int:
        """How many values the batch input holds: X, then Y or the labels."""
        dims = self.architecture.dims
        return self.batch_size * (dims[0] + targets_per_sample(self.architecture.loss, dims[-1]))

    def unpack(self, w_before: torch.Tensor, batch: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        return unpack(self.architecture, self.batch_size, w_before, batch)

    def gradients(self, w_before: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The backward pass's weight gradients, in parameter order, as one ``(1, P)`` row."""
        params, x, y = self.unpack(w_before, batch)
        trace = backprop(params, x, y, loss=self.architecture.loss)
        return torch.cat([g.reshape(1, -1) for layer in range(len(params) // 2) for g in trace.weight_grads[layer]], dim=1)


def backprop_products(spec: MlpCheck, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What ``freivalds`` reveals of a full-MLP step: Z_l, the weight gradients G_l and the
    back-propagated products B_l (l > 0), float64."""
    params, x, y = spec.unpack(named["w_before"].reshape(1, -1), named["batch"].reshape(1, -1))
    trace = backprop(params, x, y, loss=spec.architecture.loss)
    out = {f"z{l}": z for l, z in enumerate(trace.pre)}
    out.update({f"g{l}": grads[0] for l, grads in trace.weight_grads.items()})
    out.update({f"b{l}": back for l, back in trace.back.items()})
    return out
