"""The float64 reference of an ``adamw`` step: torch's Adam / AdamW update (no AMSGrad) from the
canonical encoding, on the gradient of :func:`pot_zk.kinds.reference.mean_loss_gradient`.

It agrees with ``torch.optim.AdamW`` / ``Adam`` on a float64 model to round-off (tested: within
1e-12 relative on W_t+1, m_t+1 and v_t+1 over 20 steps); an exact statement is measured against it.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch

from pot_zk.kinds.adamw.step import AdamwArchitecture
from pot_zk.kinds.reference import mean_loss_gradient


def adamw_reference(architecture: AdamwArchitecture, batch_size: int, learning_rate: float, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``w_after``, ``m_after``, ``v_after`` and ``t_after`` (flat float64) from the encoding's
    ``w_before``, ``batch``, ``m_before``, ``v_before`` and ``t_before``."""
    w = named["w_before"].reshape(-1).to(torch.float64)
    gradient = mean_loss_gradient(architecture, batch_size, named)
    decay = architecture.weight_decay
    if not architecture.decoupled_weight_decay:
        gradient = gradient + decay * w
    b1, b2 = architecture.betas
    t = float(named["t_before"].reshape(-1)[0]) + 1.0
    m = b1 * named["m_before"].reshape(-1).to(torch.float64) + (1 - b1) * gradient
    v = b2 * named["v_before"].reshape(-1).to(torch.float64) + (1 - b2) * gradient * gradient
    decayed = w * (1 - learning_rate * decay) if architecture.decoupled_weight_decay else w
    step_size = learning_rate / (1 - b1**t)
    denominator = v.sqrt() / math.sqrt(1 - b2**t) + architecture.eps
    return {"w_after": decayed - step_size * m / denominator, "m_after": m, "v_after": v, "t_after": torch.tensor([t], dtype=torch.float64)}
