"""The run's checkpoint: the model after the last committed step, the optimizer's state (SGD's
momentum buffers, Adam's moments and step count: every tensor torch keeps per parameter) and
the next step number, so that a resumed run continues exactly where the killed one stopped.

An optimizer tensor is stored as ``optimizer.<state key>.<parameter name>`` (state keys have no
dot), e.g. ``optimizer.momentum_buffer.0.weight``."""

from __future__ import annotations

from pathlib import Path

import torch

from pot_zk.runs.bundle import load_model, save_model

OPTIMIZER_PREFIX = "optimizer."


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, next_step: int) -> None:
    tensors = dict(model.state_dict())
    for name, parameter in model.named_parameters():
        for key, value in optimizer.state.get(parameter, {}).items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIMIZER_PREFIX}{key}.{name}"] = value
    save_model(tensors, path, {"next_step": str(next_step)})


def restore_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load a checkpoint (or the initial model file: step 0, no optimizer state) into ``model``
    and ``optimizer``; return the next step number."""
    tensors, metadata = load_model(path)
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIX)})
    parameters = dict(model.named_parameters())
    for key, value in tensors.items():
        if key.startswith(OPTIMIZER_PREFIX):
            state_key, _, name = key.removeprefix(OPTIMIZER_PREFIX).partition(".")
            optimizer.state[parameters[name]][state_key] = value.clone()
    return int(metadata.get("next_step", 0))
