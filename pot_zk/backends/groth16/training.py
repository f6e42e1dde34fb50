"""Exact-mode training: a run proven with ``zk-groth16`` trains with the statement's own integers.

A ``zk-groth16`` proof shows that the state after a step (W_t+1, and whatever else the
statement commits after it) is *exactly* the statement's integer step of the committed inputs
(docs/groth16.md), so training must compute that step, not torch's float one:

* :meth:`ExactTraining.start` puts the initial model on the 2**-scale grid (rounding every
  parameter the step kind trains; frozen ones, e.g. a LoRA run's base, must already be on
  it), before it is saved and committed;
* :meth:`ExactTraining.step` takes the step torch just took (the state before, the float
  batch, the loss of the float forward pass) and replaces the state after it by the
  statement's ``exact_step``: the step kind sets the model (and the optimizer's state) to the
  dequantised integers and the returned step carries them.

The batch stays as the data loader gave it; the commitments and the prover round it onto the
grid the same way. A step the statement cannot describe (a value leaving ``value_bits`` or
``quotient_bits``) is a WitnessBuilderError naming the tensor: training stops there.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from pot_zk.backends.groth16.integers import dequantise, quantise_batch
from pot_zk.backends.groth16.statement import Groth16Statement
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.base import BatchStep
from pot_zk.kinds.registry import STEP_KINDS


@dataclasses.dataclass(frozen=True)
class ExactTraining:
    """The training arithmetic of a zk-groth16 statement (any kind)."""

    spec: Groth16Statement

    def start(self, model: nn.Module) -> None:
        """Round every trained parameter onto the grid (in place). Frozen parameters are not
        changed: they must be on the grid already (a LoRA base trained with zk-groth16)."""
        trained = dict(STEP_KINDS.get(self.spec.kind).trained_shapes(self.spec.architecture))
        self._check_dtypes(model)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in trained:
                    parameter.copy_(self._snap(parameter, f"initial {name}"))
                else:
                    self._check_frozen(name, parameter)

    def step(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: BatchStep) -> BatchStep:
        """The step with its state after replaced by the exact step; ``model`` (and the
        optimizer's state) set to it."""
        kind = STEP_KINDS.get(self.spec.kind)
        self._check_dtypes(model)  # a review: model.half() between two steps also turned off a user loop's reference check
        after = self.spec.exact_step(self.spec.integers(step, with_after=False))
        exact = kind.replace_after(step, {name: torch.from_numpy(dequantise(values, self.spec.grid(name)[0])) for name, values in after.items()})
        kind.load_after(model, optimizer, exact)
        return exact

    def _check_dtypes(self, model: nn.Module) -> None:
        narrow = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.dtype in (torch.float16, torch.bfloat16)})
        if narrow:  # a review: a bfloat16 model rounded each exact step's weights, so the model held was not the proven one
            raise ConfigurationError(
                f"the model's weights are {', '.join(narrow)}: the zk-groth16 statement's values are integers at 2**-{self.spec.scale} "
                f"up to {self.spec.value_bound:g}, which {', '.join(narrow)} cannot hold exactly; train in float32 or float64",
                key="model.dtype",
            )

    def _snap(self, values: torch.Tensor, what: str) -> torch.Tensor:
        integers = quantise_batch(values.detach().to(torch.float64).reshape(-1).numpy(), self.spec.scale, self.spec.value_bits, what)
        return torch.from_numpy(dequantise(integers, self.spec.scale)).reshape(values.shape).to(values.dtype)

    def _check_frozen(self, name: str, parameter: torch.Tensor) -> None:
        values = parameter.detach().to(torch.float64).reshape(-1).numpy()
        if not np.array_equal(values * 2.0**self.spec.scale, np.round(values * 2.0**self.spec.scale)):
            raise ConfigurationError(
                f"the frozen base weight {name} is not on the 2**-{self.spec.scale} grid of the zk-groth16 statement: "
                "train the base run with prover=groth16",
                key="model.base_run",
            )
