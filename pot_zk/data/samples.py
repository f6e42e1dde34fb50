"""A data set declared sample by sample, for a loop that forms its own batches (``pot_zk.track``,
shuffling DataLoaders): its Merkle root, committed before the first step, and where each
batch's samples sit in it.

A sample's leaf is ``SHA-256("pot-zk/sample/v1" || x || y)`` over the float64 bytes of its
input row and its target (a row, or a class label), row-major; the root is
:func:`pot_zk.core.merkle.merkle_root` over the leaves in data-set order. The root depends on
the samples alone (not on the run's statement), so whoever holds the data computes it with
:func:`sample_root` and hands it to the auditor (``pot-zk verify --expect-root``); for a
built-in data set ``pot-zk verify`` recomputes it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import torch
from torch.utils.data import TensorDataset

from pot_zk.core.merkle import merkle_root
from pot_zk.data.datasets import load_dataset, select_part
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError

LEAF_DOMAIN = b"pot-zk/sample/v1"
LEAF = "sha256 of one sample: its input row then its target, float64, row-major"
LEAF_NAME = "sample"
"""What a streamed run's manifest names its leaves (``dataset.leaf``): one :data:`LEAF` per sample."""
OWN_DATA = "user"
"""The name a streamed run declares for a loop's own data set (not a built-in one)."""
UNDECLARED = "undeclared"
"""The name a streamed run declares when its loop named no data set (no root)."""


def _rows(tensor: torch.Tensor, count: int) -> torch.Tensor:
    return torch.as_tensor(tensor).detach().to("cpu", torch.float64).reshape(count, -1).contiguous()


def sample_keys(inputs: torch.Tensor, targets: torch.Tensor) -> list[bytes]:
    """Each sample's identity: the float64 bytes of its input row, then of its target."""
    count = len(inputs)
    x, y = _rows(inputs, count), _rows(targets, count)
    return [x[i].numpy().tobytes() + y[i].numpy().tobytes() for i in range(count)]


def sample_root(inputs: torch.Tensor, targets: torch.Tensor) -> str:
    """The Merkle root of a data set's samples (module docstring)."""
    if len(inputs) == 0 or len(inputs) != len(targets):
        raise ConfigurationError(f"a declared data set needs samples and one target per sample, got {len(inputs)} and {len(targets)}", key="dataset")
    return merkle_root([hashlib.sha256(LEAF_DOMAIN + key).hexdigest() for key in sample_keys(inputs, targets)])


def stacked(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A map-style data set (``len`` and ``dataset[i] -> (x, y)``, e.g. a torch ``Dataset``) as
    two tensors, sample order kept."""
    try:
        count = len(dataset)
        pairs = [dataset[i] for i in range(count)]
        inputs = torch.stack([torch.as_tensor(x) for x, _ in pairs])
        targets = torch.stack([torch.as_tensor(y) for _, y in pairs])
    except (TypeError, ValueError, RuntimeError, IndexError, KeyError) as exc:
        raise ConfigurationError(
            f"the declared data set is not a map-style data set of (input, target) pairs ({type(dataset).__name__}): {exc}", key="dataset"
        ) from exc
    return inputs, targets


def built_in_dataset(name: str, in_features: int, out_features: int, *, loss: str = "mse", num_samples: int = 256, seed: int = 0, part: str = "all") -> TensorDataset:
    """A built-in data set's samples as a torch data set to draw batches from (a DataLoader over
    it), exactly the samples ``track(..., dataset=name)`` declares with the same ``data.*``
    settings (``num_samples`` and ``seed``: synthetic data only; ``part``) and loss."""
    inputs, targets = load_dataset(name, in_features, out_features, num_samples, seed, loss)
    return TensorDataset(*select_part(inputs, targets, part))


@dataclass(frozen=True)
class SampleSet:
    """The declared samples: ``name`` (a built-in set's, or ``user``), their values and root."""

    name: str
    inputs: torch.Tensor
    targets: torch.Tensor
    root: str

    @classmethod
    def of(cls, name: str, inputs: torch.Tensor, targets: torch.Tensor) -> "SampleSet":
        return cls(name, inputs, targets, sample_root(inputs, targets))

    def __len__(self) -> int:
        return len(self.inputs)

    def locate(self, inputs: torch.Tensor, targets: torch.Tensor, indices: Sequence[int] | None, step: int) -> tuple[int, ...]:
        """The positions of a batch's samples: ``indices`` checked to hold the batch's values, or
        found by value. WitnessBuilderError for a batch with a sample the set does not hold."""
        if len(inputs) != len(targets):
            raise WitnessBuilderError(f"step {step}: {len(inputs)} inputs but {len(targets)} targets", expected=len(inputs), actual=len(targets), step=step)
        wanted = sample_keys(inputs, targets)
        if indices is not None:
            positions = [int(i) for i in indices]
            if len(positions) != len(wanted) or not all(0 <= i < len(self) for i in positions):
                raise WitnessBuilderError(
                    f"step {step}: indices must name {len(wanted)} samples of the declared data set (0..{len(self) - 1})",
                    expected=len(wanted), actual=positions[:10], step=step,
                )
            held = sample_keys(self.inputs[positions], self.targets[positions])
            differ = [n for n, (a, b) in enumerate(zip(wanted, held)) if a != b]
            if differ:
                raise WitnessBuilderError(
                    f"step {step}: batch rows {differ[:10]} are not the samples their indices name in the declared data set",
                    expected="the samples at indices", actual=[positions[n] for n in differ[:10]], step=step,
                )
            return tuple(positions)
        found = [self._by_value.get(key) for key in wanted]
        strangers = [n for n, position in enumerate(found) if position is None]
        if strangers:
            raise WitnessBuilderError(
                f"step {step}: batch rows {strangers[:10]} are not samples of the declared data set ({self.name})",
                expected="samples of the declared data set", actual=strangers[:10], step=step,
            )
        return tuple(int(p) for p in found if p is not None)

    @cached_property
    def _by_value(self) -> dict[bytes, int]:
        index: dict[bytes, int] = {}
        for position, key in enumerate(sample_keys(self.inputs, self.targets)):
            index.setdefault(key, position)
        return index
