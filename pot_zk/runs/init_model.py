"""The model a run starts from: a pure function of its statement's architecture and the
training seed, so ``pot-zk verify`` can recompute the initial weights a run declares."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from pot_zk.kinds.registry import STEP_KINDS


def seeded_model(spec: Any, seed: int, base_state: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """``torch.manual_seed(seed)``, then the model of ``spec``'s kind and architecture (on the
    frozen ``base_state`` when given; its trained weights do not depend on it). Seeds torch's
    global generator, as training does."""
    torch.manual_seed(seed)
    return STEP_KINDS.get(spec.kind).build_model(spec.architecture, base_state)
