"""The run's checkpoint: the model after the last committed step, the optimizer's state (SGD's
momentum buffers, Adam's moments and step count: every tensor torch keeps per parameter) and
the next step number, so that a resumed run continues exactly where the killed one stopped.

An optimizer tensor is stored as ``optimizer.<state key>.<parameter name>`` (state keys have no
dot), e.g. ``optimizer.momentum_buffer.0.weight``."""

from __future__ import annotations

from pathlib import Path

import torch

from pot_zk.exceptions import ConfigurationError
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
    weights = {k: v for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIX)}
    found = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    saved = {name: tuple(value.shape) for name, value in weights.items()}
    if found != saved:  # review27: a loop resumed with another model got torch's multi-line RuntimeError
        other = sorted(set(found) ^ set(saved)) or [name for name in saved if found[name] != saved[name]]
        raise ConfigurationError(
            f"the model does not fit the run's {path.name}: {other[0]} is {saved.get(other[0], 'absent')} there and "
            f"{found.get(other[0], 'absent')} in the model (resume with the model the run declared)", key="model",
        )
    model.load_state_dict(weights)
    parameters = dict(model.named_parameters())
    for key, value in tensors.items():
        if key.startswith(OPTIMIZER_PREFIX):
            state_key, _, name = key.removeprefix(OPTIMIZER_PREFIX).partition(".")
            optimizer.state[parameters[name]][state_key] = value.clone()
    return int(metadata.get("next_step", 0))
