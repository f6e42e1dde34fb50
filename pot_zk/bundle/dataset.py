"""``dataset.json``'s leaves: each batch committed in its canonical encoding (X then Y,
row-major, float64) under the run's commitment scheme. The trainer commits its batches with
it before the first step; ``pot-zk verify`` recomputes them from the declared data set."""

from __future__ import annotations

from typing import Sequence

import torch

from pot_zk.backends.base import CommitmentScheme
from pot_zk.data.datasets import Batch


def batch_values(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The canonical encoding of a batch (or of the held-out set): X then Y, flat float64."""
    return torch.cat([inputs.reshape(-1), targets.reshape(-1)]).double()


def dataset_leaves(batches: Sequence[Batch], commitments: CommitmentScheme) -> list[str]:
    """The batch commitments (canonical batch encoding, X then Y) under a run's scheme."""
    return [commitments.commit(batch_values(b.inputs, b.targets), f"batch {b.index}") for b in batches]
