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
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from pot_zk.exceptions import WitnessBuilderError
from pot_zk.kinds.spec_base import CircuitInput, FixedPointCheck, export_graph
from pot_zk.kinds.sgd.step import MlpArchitecture, TrainingStep

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

    def write_onnx(self, path: Path) -> None:
        export_onnx(self, path)

    def step_inputs(self, step: TrainingStep) -> list[CircuitInput]:
        """The step's flat inputs in circuit order, after checking the step is this spec's."""
        if (
            not isinstance(step, TrainingStep)
            or step.architecture != self.architecture
            or step.batch_size != self.batch_size
            or step.learning_rate != self.learning_rate
        ):
            raise WitnessBuilderError(
                "the step does not match the circuit spec",
                expected={"kind": "sgd", "dims": list(self.architecture.dims), "batch_size": self.batch_size, "learning_rate": self.learning_rate},
                actual=_step_summary(step),
            )
        return [
            CircuitInput("w_before", "weights before the step", step.flat_before()),
            CircuitInput("batch", "batch values", step.flat_batch()),
            CircuitInput("w_after", "weights after the step", step.flat_after()),
        ]

    def reference_output(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        return reference_residual(self, *inputs)


def _step_summary(step: object) -> dict[str, Any]:
    architecture = getattr(step, "architecture", None)
    return {
        "step_type": type(step).__name__,
        "architecture": architecture.to_dict() if architecture is not None else None,
        "batch_size": getattr(step, "batch_size", None),
        "learning_rate": getattr(step, "learning_rate", None),
    }


class SgdUpdateCheck(nn.Module):
    """The graph exported to ONNX. Inputs are ``(1, n)`` rows; output is ``(1, num_params)``."""

    def __init__(self, spec: SgdCircuitSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, w_before: torch.Tensor, batch: torch.Tensor, w_after: torch.Tensor) -> torch.Tensor:
        spec = self.spec
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
        layers = len(dims) - 1
        activations = [x]
        pre_activations = []
        h = x
        for layer in range(layers):
            z = h @ params[2 * layer].t() + params[2 * layer + 1]
            pre_activations.append(z)
            h = torch.relu(z) if layer < layers - 1 else z
            activations.append(h)
        delta = h - y
        grads: list[torch.Tensor] = [delta] * len(params)
        for layer in reversed(range(layers)):
            grads[2 * layer] = delta.t() @ activations[layer]
            grads[2 * layer + 1] = delta.sum(0)
            if layer > 0:
                back = delta @ params[2 * layer]
                delta = torch.where(pre_activations[layer - 1] > 0, back, torch.zeros_like(back))
        update = torch.cat([g.reshape(1, -1) for g in grads], dim=1) * spec.step_constant
        return w_after - (w_before - update)


def export_onnx(spec: SgdCircuitSpec, path: Path) -> None:
    """Export the check graph for ``spec`` to ``path``."""
    p = spec.architecture.num_params
    dims = spec.architecture.dims
    example = (
        torch.zeros(1, p),
        torch.zeros(1, spec.batch_size * (dims[0] + dims[-1])),
        torch.zeros(1, p),
    )
    export_graph(SgdUpdateCheck(spec), example, path, INPUT_NAMES)


def reference_residual(spec: SgdCircuitSpec, w_before: torch.Tensor, batch: torch.Tensor, w_after: torch.Tensor) -> torch.Tensor:
    """The float64 value of the circuit's output, for the decode check."""
    module = SgdUpdateCheck(spec).double()
    with torch.no_grad():
        return module(
            w_before.reshape(1, -1).double(), batch.reshape(1, -1).double(), w_after.reshape(1, -1).double()
        ).reshape(-1)
