"""Tiny circuits and honest training steps shared by the real-prover tests."""

from __future__ import annotations

import torch

from pot_zk.backends.ezkl.sgd import SgdCircuitSpec
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.sgd.step import TrainingStep, capture_sgd_step

TINY = MlpArchitecture((4, 3, 2))
BATCH = 2
LR = 0.1


def tiny_spec(**overrides) -> SgdCircuitSpec:
    values = {"architecture": TINY, "batch_size": BATCH, "learning_rate": LR, **overrides}
    return SgdCircuitSpec(**values)


def train_steps(count: int, seed: int = 0, architecture: MlpArchitecture = TINY, lr: float = LR) -> list[TrainingStep]:
    """``count`` consecutive honest SGD steps of one model on random batches."""
    torch.manual_seed(seed)
    model = architecture.build()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    dims = architecture.dims
    return [
        capture_sgd_step(model, optimizer, torch.randn(BATCH, dims[0]), torch.randn(BATCH, dims[-1]))
        for _ in range(count)
    ]
