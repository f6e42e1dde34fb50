"""Tiny LoRA models and honest LoRA steps shared by the tests (real prover and certificates)."""

from __future__ import annotations

import torch
from torch import nn

from pot_zk.kinds.lora.step import LoraArchitecture, LoraTrainingStep, attach_lora
from pot_zk.kinds.lora.capture import capture_lora_step
from pot_zk.backends.ezkl.lora import LoraCircuitSpec
from pot_zk.kinds.mlp import MlpArchitecture

BASE = MlpArchitecture((4, 3, 2))
RANK = 2
ALPHA = 4.0
BATCH = 2
LR = 0.1


def lora_model(seed: int = 0, rank: int = RANK, alpha: float = ALPHA) -> nn.Sequential:
    """The tiny base MLP with pot-zk LoRA on its first layer; B is random (not zero) so the
    first step already moves A."""
    torch.manual_seed(seed)
    model = attach_lora(BASE.build(), (0,), rank=rank, alpha=alpha)
    with torch.no_grad():
        model[0].lora_B.normal_(0.0, 0.5)
    return model


def lora_steps(count: int, seed: int = 0, model: nn.Module | None = None) -> list[LoraTrainingStep]:
    """``count`` consecutive honest SGD steps on the adapters of one model."""
    model = model if model is not None else lora_model(seed)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR)
    generator = torch.Generator().manual_seed(seed + 100)
    dims = BASE.dims
    return [
        capture_lora_step(model, optimizer, torch.randn(BATCH, dims[0], generator=generator), torch.randn(BATCH, dims[-1], generator=generator))
        for _ in range(count)
    ]


def lora_spec(rank: int = RANK, alpha: float = ALPHA, **overrides) -> LoraCircuitSpec:
    architecture = LoraArchitecture(BASE, adapted=(0,), rank=rank, alpha=alpha)
    return LoraCircuitSpec(**{"architecture": architecture, "batch_size": BATCH, "learning_rate": LR, **overrides})
