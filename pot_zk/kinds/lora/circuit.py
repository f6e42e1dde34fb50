"""The LoRA step circuit: an ONNX graph that *checks* a supplied update of the adapters.

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

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

import torch
from torch import nn

from pot_zk.exceptions import WitnessBuilderError
from pot_zk.kinds.lora.step import LoraArchitecture, LoraTrainingStep
from pot_zk.kinds.spec_base import CircuitInput, FixedPointCheck, export_graph

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
    param_scale: int = 20
    decomp_base: int = 256
    decomp_legs: int = 4
    tolerance_ulps: int = 4

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

    def write_onnx(self, path: Path) -> None:
        sizes = self.input_sizes()
        example = tuple(torch.zeros(1, sizes[name]) for name in INPUT_NAMES)
        export_graph(LoraUpdateCheck(self), example, path, INPUT_NAMES)

    def step_inputs(self, step: LoraTrainingStep) -> list[CircuitInput]:
        """The step's flat inputs in circuit order, after checking the step is this spec's."""
        if (
            not isinstance(step, LoraTrainingStep)
            or step.architecture != self.architecture
            or step.batch_size != self.batch_size
            or step.learning_rate != self.learning_rate
        ):
            raise WitnessBuilderError(
                "the step does not match the circuit spec",
                expected={"kind": "lora", "architecture": self.architecture.to_dict(), "batch_size": self.batch_size, "learning_rate": self.learning_rate},
                actual={"step_type": type(step).__name__, "batch_size": getattr(step, "batch_size", None)},
            )
        return [
            CircuitInput("w_before", "adapters before the step", step.flat_before()),
            CircuitInput("batch", "batch values", step.flat_batch()),
            CircuitInput("w_after", "adapters after the step", step.flat_after()),
            CircuitInput("base", "base model weights", step.flat_base()),
        ]

    def reference_output(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The float64 value of the circuit's output, for the decode check."""
        module = LoraUpdateCheck(self).double()
        with torch.no_grad():
            return module(*(x.reshape(1, -1).double() for x in inputs)).reshape(-1)


def _split(flat: torch.Tensor, shapes: list[tuple[str, tuple[int, ...]]]) -> list[torch.Tensor]:
    parts, offset = [], 0
    for _, shape in shapes:
        count = math.prod(shape)
        parts.append(flat[:, offset : offset + count].reshape(shape))
        offset += count
    return parts


def adapter_gradients(
    architecture: LoraArchitecture, base: list[torch.Tensor], adapters: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> list[torch.Tensor]:
    """Unscaled adapter gradients ``[(delta_l B_l)^T h_l, delta_l^T (h_l A_l^T)]`` per adapted
    layer (times :attr:`LoraCircuitSpec.step_constant` they are lr * dMSE/dA, dMSE/dB), where
    h_l is the layer's input and delta_l the gradient of the summed squared error at its output."""
    s = architecture.scaling
    layers = len(architecture.base.dims) - 1
    pairs = {layer: (adapters[2 * k], adapters[2 * k + 1]) for k, layer in enumerate(architecture.adapted)}
    h, inputs, pre, lowrank = x, [], [], {}
    for layer in range(layers):
        inputs.append(h)
        z = h @ base[2 * layer].t() + base[2 * layer + 1]
        if layer in pairs:
            a, b = pairs[layer]
            lowrank[layer] = h @ a.t()
            z = z + (lowrank[layer] @ b.t()) * s
        pre.append(z)
        h = torch.relu(z) if layer < layers - 1 else z
    delta = h - y
    grads: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for layer in reversed(range(architecture.adapted[0], layers)):
        projected = None
        if layer in pairs:
            a, b = pairs[layer]
            projected = delta @ b
            grads[layer] = (projected.t() @ inputs[layer], delta.t() @ lowrank[layer])
        if layer > architecture.adapted[0]:
            back = delta @ base[2 * layer]
            if projected is not None:
                back = back + (projected @ pairs[layer][0]) * s
            delta = torch.where(pre[layer - 1] > 0, back, torch.zeros_like(back))
    return [g for layer in architecture.adapted for g in grads[layer]]


class LoraUpdateCheck(nn.Module):
    """The graph exported to ONNX. Inputs are ``(1, n)`` rows; output is ``(1, adapter params)``."""

    def __init__(self, spec: LoraCircuitSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, w_before: torch.Tensor, batch: torch.Tensor, w_after: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        architecture = self.spec.architecture
        dims = architecture.base.dims
        n = self.spec.batch_size
        x = batch[:, : n * dims[0]].reshape(n, dims[0])
        y = batch[:, n * dims[0] :].reshape(n, dims[-1])
        grads = adapter_gradients(
            architecture, _split(base, architecture.base_shapes), _split(w_before, architecture.adapter_shapes), x, y
        )
        update = torch.cat([g.reshape(1, -1) for g in grads], dim=1) * self.spec.step_constant
        return w_after - (w_before - update)
