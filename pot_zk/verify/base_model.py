"""The frozen base an auditor expects, from the base model it holds: what ``pot-zk verify
--expect-base`` takes for a LoRA run whose base did not come from a pot-zk run (a pretrained
model fine-tuned with peft in a loop of one's own, :func:`pot_zk.track`).

The commitment is the run's statement's commitment scheme over the base MLP's parameters in
canonical order (per layer the weight row-major, then the bias: ``MlpArchitecture.param_shapes``),
the value every step of the run records as ``base`` and the circuit exposes."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from pot_zk.backends.registry import commitments_of
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.mlp import flatten
from pot_zk.kinds.registry import STEP_KINDS


def base_commitment(base_state: Mapping[str, torch.Tensor], statement: Any) -> str:
    """The commitment of the base MLP ``base_state`` (an ``nn.Sequential``'s state dict:
    ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ...) under ``statement`` (a run's, e.g.
    ``spec_from_dict(manifest["circuit"])``). ConfigurationError for a statement without a frozen
    base or a state that is not its base (other tensors, or other layer shapes: the commitment
    alone would not tell a reshaped base from the real one)."""
    base = STEP_KINDS.get(statement.kind).base_architecture(statement.architecture)
    if base is None:
        raise ConfigurationError(f"a {statement.kind} statement has no frozen base", key="circuit")
    expected = {name for name, _ in base.param_shapes}
    if set(base_state) != expected:
        raise ConfigurationError(f"the base holds {sorted(base_state)}, the statement's base is {sorted(expected)}", key="base")
    wrong = [f"{name} {tuple(base_state[name].shape)} (the statement's {tuple(shape)})" for name, shape in base.param_shapes if tuple(base_state[name].shape) != tuple(shape)]
    if wrong:
        raise ConfigurationError(f"the base's layer shapes are not the statement's base: {', '.join(wrong)}", key="base")
    values = flatten({name: torch.as_tensor(value).double() for name, value in base_state.items()}, base.param_shapes)
    return commitments_of(statement).commit(values, "base model weights")
