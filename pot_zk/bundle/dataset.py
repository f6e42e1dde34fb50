"""``dataset.json``'s leaves: each batch committed in its canonical encoding (X then Y,
row-major, float64) under the run's commitment scheme. The trainer commits its batches with
it before the first step; ``pot-zk verify`` recomputes them from the declared data set."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from pot_zk.backends.base import CommitmentScheme
from pot_zk.core.merkle import dataset_root
from pot_zk.data.datasets import Batch


def batch_values(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The canonical encoding of a batch (or of the held-out set): X then Y, flat float64."""
    return torch.cat([inputs.reshape(-1), targets.reshape(-1)]).double()


def dataset_leaves(batches: Sequence[Batch], commitments: CommitmentScheme) -> list[str]:
    """The batch commitments (canonical batch encoding, X then Y) under a run's scheme."""
    return [commitments.commit(batch_values(b.inputs, b.targets), f"batch {b.index}") for b in batches]


def holdout_commitment(dataset: Mapping[str, Any]) -> Any:
    """The held-out set's commitment a dataset declaration (the manifest's or dataset.json's)
    names; None without one, or when its ``holdout`` is not an object."""
    holdout = dataset.get("holdout")
    return holdout.get("commitment") if isinstance(holdout, Mapping) else None


def declared_root(leaves: Sequence[Any], holdout: Any) -> str | None:
    """:func:`~pot_zk.core.merkle.dataset_root` of leaves and a held-out commitment a bundle
    declares; None when one is no hex string (a review's sweep of single values: a leaf "x" or
    a commitment ``true`` raised where verify compared roots)."""
    try:
        return dataset_root(leaves, holdout)
    except (ValueError, TypeError, AttributeError):
        return None


def _row_keys(inputs: torch.Tensor, targets: torch.Tensor) -> list[bytes]:
    """Each sample's identity: its input row and its target (a row, or a class label), as float64 bytes."""
    x = inputs.detach().to("cpu", torch.float64).reshape(len(inputs), -1)
    y = targets.detach().to("cpu", torch.float64).reshape(len(targets), -1)
    return [x[i].numpy().tobytes() + b"|" + y[i].numpy().tobytes() for i in range(len(x))]


def sample_indices(batches: Sequence[Batch], inputs: torch.Tensor, targets: torch.Tensor) -> list[list[int] | None]:
    """For each batch, the positions of its samples among a data set's (``inputs``, ``targets``);
    None for a batch with a sample the data set does not hold (same values, X and target)."""
    index: dict[bytes, int] = {}
    for position, key in enumerate(_row_keys(inputs, targets)):
        index.setdefault(key, position)
    found: list[list[int] | None] = []
    for batch in batches:
        positions = [index.get(key) for key in _row_keys(batch.inputs, batch.targets)]
        found.append(None if any(p is None for p in positions) else [int(p) for p in positions if p is not None])
    return found


def sampled_leaves(samples: Sequence[Sequence[int]], inputs: torch.Tensor, targets: torch.Tensor, commitments: CommitmentScheme) -> list[str]:
    """The leaves of batches made of the declared samples (positions into ``inputs``, ``targets``)."""
    leaves = []
    for number, positions in enumerate(samples):
        chosen = torch.tensor(list(positions), dtype=torch.long)
        leaves.append(commitments.commit(batch_values(inputs[chosen], targets[chosen]), f"batch {number}"))
    return leaves
