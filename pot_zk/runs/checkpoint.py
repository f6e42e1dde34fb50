"""The run's checkpoint: the model after the last committed step, the optimizer's momentum
buffers (the velocity, for SGD with momentum) and the next step number, so that a resumed
run continues exactly where the killed one stopped."""

from __future__ import annotations

from pathlib import Path

import torch

from pot_zk.runs.bundle import load_model, save_model

VELOCITY_PREFIX = "optimizer.momentum_buffer."


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, next_step: int) -> None:
    tensors = dict(model.state_dict())
    for name, parameter in model.named_parameters():
        buffer = optimizer.state.get(parameter, {}).get("momentum_buffer")
        if buffer is not None:
            tensors[VELOCITY_PREFIX + name] = buffer
    save_model(tensors, path, {"next_step": str(next_step)})


def restore_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load a checkpoint (or the initial model file: step 0, no velocity) into ``model`` and
    ``optimizer``; return the next step number."""
    tensors, metadata = load_model(path)
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(VELOCITY_PREFIX)})
    parameters = dict(model.named_parameters())
    for key, value in tensors.items():
        if key.startswith(VELOCITY_PREFIX):
            optimizer.state[parameters[key.removeprefix(VELOCITY_PREFIX)]]["momentum_buffer"] = value.clone()
    return int(metadata.get("next_step", 0))
