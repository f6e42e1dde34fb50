"""Exact-mode training: a run proven with ``zk-groth16`` trains with the statement's own integers.

A ``zk-groth16`` proof shows that W_t+1 is *exactly* the fixed-point step of W_t on the batch
(docs/groth16.md), so training must compute that step, not torch's float one:

* :meth:`start` puts the initial model on the 2**-scale grid (rounding every trained
  parameter; a LoRA run's frozen base must already be on it), before it is saved and committed;
* :meth:`step` takes the step torch just captured (W_t, the float batch, the loss of the float
  forward pass on W_t) and replaces its update by :func:`~pot_zk.backends.groth16.exact.exact_sgd_step`
  (or :func:`~pot_zk.backends.groth16.exact_lora.exact_lora_step`): the model's parameters are
  set to the dequantised integers and the returned step carries them as W_t+1.

The batch stays as the data loader gave it; the commitments and the prover round it onto the
grid the same way. A step the statement cannot describe (a value leaving ``value_bits`` or
``quotient_bits``) is a WitnessBuilderError naming the tensor: training stops there.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import torch
from torch import nn

from pot_zk.backends.groth16.exact import dequantise, exact_sgd_step, quantise_batch, quantise_weights
from pot_zk.backends.groth16.exact_lora import exact_lora_step
from pot_zk.backends.groth16.lora_spec import Groth16LoraSpec, Groth16Spec
from pot_zk.backends.groth16.spec import Groth16SgdSpec
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.base import BatchStep
from pot_zk.kinds.mlp import Shapes, unflatten


@dataclasses.dataclass(frozen=True)
class ExactTraining:
    """The training arithmetic of a zk-groth16 statement (SGD or LoRA)."""

    spec: Groth16Spec

    def start(self, model: nn.Module) -> None:
        """Round every trained parameter onto the grid (in place). A LoRA run's frozen base
        is not changed: it must be on the grid already (a base run trained with zk-groth16)."""
        trained = dict(self._trained_shapes())
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in trained:
                    parameter.copy_(self._snap(parameter, f"initial {name}"))
        if isinstance(self.spec, Groth16LoraSpec):
            self._check_base(model)

    def step(self, model: nn.Module, step: BatchStep) -> BatchStep:
        """The captured step with W_t+1 replaced by the exact step; ``model`` set to it."""
        spec, scale, bits = self.spec, self.spec.scale, self.spec.value_bits
        before = quantise_weights(step.flat_before().numpy(), scale, bits, "weights before the step")
        x = quantise_batch(step.inputs.numpy(), scale, bits, "batch inputs X").reshape(step.inputs.shape)
        y = quantise_batch(step.targets.numpy(), scale, bits, "batch targets Y").reshape(step.targets.shape)
        if isinstance(spec, Groth16SgdSpec):
            after = exact_sgd_step(spec, before, x, y)
        else:
            base = quantise_weights(step.flat_base().numpy(), scale, bits, "base weights")
            after = exact_lora_step(spec, base, before, x, y)
        state = unflatten(torch.from_numpy(dequantise(after, scale)), self._trained_shapes())
        _load_parameters(model, state)
        field = "weights_after" if isinstance(spec, Groth16SgdSpec) else "adapters_after"
        return dataclasses.replace(step, **{field: state})

    def _trained_shapes(self) -> Shapes:
        architecture = self.spec.architecture
        return architecture.param_shapes if isinstance(self.spec, Groth16SgdSpec) else architecture.adapter_shapes

    def _snap(self, values: torch.Tensor, what: str) -> torch.Tensor:
        integers = quantise_batch(values.detach().to(torch.float64).reshape(-1).numpy(), self.spec.scale, self.spec.value_bits, what)
        return torch.from_numpy(dequantise(integers, self.spec.scale)).reshape(values.shape).to(values.dtype)

    def _check_base(self, model: nn.Module) -> None:
        for name, parameter in model.named_parameters():
            if name.endswith(("lora_A", "lora_B")):
                continue
            values = parameter.detach().to(torch.float64).reshape(-1).numpy()
            if not np.array_equal(values * 2.0**self.spec.scale, np.round(values * 2.0**self.spec.scale)):
                raise ConfigurationError(
                    f"the frozen base weight {name} is not on the 2**-{self.spec.scale} grid of the zk-groth16 statement: "
                    "train the base run with prover=groth16",
                    key="model.base_run",
                )


def _load_parameters(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, values in state.items():
            parameter = model.get_parameter(name)
            parameter.copy_(values.to(parameter.dtype))
