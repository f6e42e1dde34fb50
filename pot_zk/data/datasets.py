"""Training data that ships with an installed package (no downloads), cut into fixed batches.

Data sets are registered by name in :data:`DATASETS` (``data.name`` in config), the parts of a
data set (``data.part``) in :data:`PARTS` (both in :mod:`pot_zk.data.catalog`, which imports no torch). A seeded share of the declared samples is held out (never trained on; the models are
evaluated on it). The rest is cut into batches, fixed before training so the dataset
commitment (a Merkle root over the batch commitments, then the held-out set's commitment) can
be published first; each epoch visits the batches in a seeded permutation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from pot_zk.data.catalog import BUILT_IN, CLASSES, DATASETS, PARTS, DataSettings  # noqa: F401 (re-exported)
from pot_zk.exceptions import ConfigurationError


@dataclass(frozen=True)
class Batch:
    index: int
    inputs: torch.Tensor
    targets: torch.Tensor


@dataclass(frozen=True)
class HeldOut:
    """The held-out samples of a data set: never trained on, the models are evaluated on them."""

    inputs: torch.Tensor
    targets: torch.Tensor
    indices: tuple[int, ...]
    """Their positions among the declared samples (after ``select_part``), increasing."""
    fraction: float
    seed: int
    of: int
    """How many samples the declared data set has (held out and trained on)."""


def digits(in_features: int, out_features: int, num_samples: int = 0, seed: int = 0, loss: str = "mse") -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits: pixels averaged over 2x2 blocks (16 features) or
    kept (64), scaled to [0, 1]; targets one-hot over the 10 classes (mse) or the class labels
    (cross_entropy, int64). All 1797 samples: ``num_samples`` and ``seed`` do not apply."""
    from sklearn.datasets import load_digits

    if out_features != 10 or in_features not in (16, 64):
        raise ConfigurationError(
            f"the digits data needs a model with 16 or 64 inputs and 10 outputs, not {in_features} -> {out_features}",
            key="model.dims",
        )
    loaded = load_digits()
    images = torch.tensor(loaded.images, dtype=torch.float32) / 16.0
    if in_features == 16:
        images = images.reshape(-1, 4, 2, 4, 2).mean(dim=(2, 4))
    inputs = images.reshape(len(images), -1)
    labels = torch.tensor(loaded.target, dtype=torch.int64)
    if loss == "cross_entropy":
        return inputs, labels
    return inputs, torch.nn.functional.one_hot(labels, 10).to(torch.float32)


def synthetic(in_features: int, out_features: int, num_samples: int, seed: int, loss: str = "mse") -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs uniform in [-1, 1]; targets from a fixed random linear teacher plus noise (mse),
    or the index of the teacher's largest output (cross_entropy: class labels, int64)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(num_samples, in_features, generator=generator) * 2 - 1
    teacher = torch.randn(in_features, out_features, generator=generator) / in_features**0.5
    targets = inputs @ teacher + 0.05 * torch.randn(num_samples, out_features, generator=generator)
    if loss == "cross_entropy":
        return inputs, targets.argmax(dim=1)
    return inputs, targets


def load_dataset(name: str, in_features: int, out_features: int, num_samples: int, seed: int, loss: str = "mse") -> tuple[torch.Tensor, torch.Tensor]:
    return DATASETS.get(name)(in_features, out_features, num_samples, seed, loss)


def select_part(inputs: torch.Tensor, targets: torch.Tensor, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    chosen = PARTS.get(part)(len(inputs))
    return inputs[chosen], targets[chosen]


def holdout_indices(num_samples: int, fraction: float, seed: int) -> list[int]:
    """The positions held out of ``num_samples`` declared samples: ``round(fraction * n)`` of
    them, a seeded choice (a pure function of the three numbers, so a verifier recomputes it)."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigurationError(f"data.holdout must be in [0, 1), got {fraction}", key="data.holdout")
    count = round(fraction * num_samples)
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    return sorted(order[:count].tolist())


def split_holdout(inputs: torch.Tensor, targets: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, HeldOut | None]:
    """The samples to train on and the held-out set (None when ``fraction`` holds none out)."""
    held = holdout_indices(len(inputs), fraction, seed)
    if not held:
        return inputs, targets, None
    keep = torch.ones(len(inputs), dtype=torch.bool)
    keep[held] = False
    index = torch.tensor(held)
    return inputs[keep], targets[keep], HeldOut(inputs[index], targets[index], tuple(held), float(fraction), int(seed), len(inputs))


def fixed_batches(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int) -> list[Batch]:
    """Shuffle once (seeded) and cut into full batches; a last partial batch is dropped."""
    if batch_size < 1 or batch_size > len(inputs):
        raise ConfigurationError(f"batch_size must be in 1..{len(inputs)}, got {batch_size}", key="train.batch_size")
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))
    count = len(inputs) // batch_size
    return [
        Batch(i, inputs[order[i * batch_size : (i + 1) * batch_size]], targets[order[i * batch_size : (i + 1) * batch_size]])
        for i in range(count)
    ]


def seeded_batches(
    data: DataSettings, in_features: int, out_features: int, batch_size: int, seed: int, loss: str = "mse"
) -> tuple[list[Batch], HeldOut | None]:
    """A built-in data set as ``pot-zk train`` cuts it and ``pot-zk verify`` recomputes it: the
    declared samples (``name``, ``part``; ``num_samples`` and ``seed`` for ``synthetic``) with
    the targets of ``loss``, the seeded ``holdout`` fraction held out (chosen with ``seed``),
    the rest cut into fixed batches by the training ``seed``."""
    inputs, targets = load_dataset(data.name, in_features, out_features, data.num_samples, data.seed, loss)
    inputs, targets = select_part(inputs, targets, data.part)
    inputs, targets, held_out = split_holdout(inputs, targets, data.holdout, data.seed)
    return fixed_batches(inputs, targets, batch_size, seed), held_out


def manifest_data(dataset: Mapping[str, Any]) -> DataSettings:
    """The data settings a manifest's ``dataset`` entry declares, as :func:`seeded_batches` takes
    them (a data set without its own seed, like digits, took the held-out seed as its seed)."""
    holdout = dataset.get("holdout") or {}
    return DataSettings(
        name=str(dataset.get("name")),
        part=str(dataset.get("part", "all")),
        num_samples=int(dataset.get("num_samples", 0)),
        seed=int(dataset.get("seed", holdout.get("seed", 0))),
        holdout=float(holdout.get("fraction", 0.0)),
    )


def epoch_order(num_batches: int, epoch: int, seed: int) -> list[int]:
    """The batch indices visited in ``epoch`` (a pure function of seed and epoch, so a resumed
    run visits the same batches)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_batches, generator=generator).tolist()
