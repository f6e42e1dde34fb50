"""The names of pot-zk's data sets and their parts, without torch: what ``data.name`` and
``data.part`` may say (:data:`DATASETS`, :data:`PARTS`), checked before anything is loaded
(:mod:`pot_zk.config.compose`). The loaders themselves are in :mod:`pot_zk.data.datasets`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from pot_zk.core.registry import Registry

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DataSettings:
    """Training data (config group ``data``); a user loop declares only a ``name``."""

    name: str
    num_samples: int = 256
    """Synthetic data only: how many samples to make."""
    seed: int = 0
    """Synthetic data: the seed it is made from. Every set: the seed of the held-out choice."""
    part: str = "all"
    """``all`` samples, or the first (``base``) or second (``adapt``) half."""
    holdout: float = 0.2
    """Share of the declared samples held out (never trained on; models are scored on them)."""


CLASSES = {"digits": 10}
"""The data sets whose targets are classes (one-hot, or class labels), by name: their models
are scored by accuracy. The others (``synthetic``) are regression sets."""

DATASETS: Registry[Callable[[int, int, int, int, str], tuple[torch.Tensor, torch.Tensor]]] = Registry(
    "data set",
    "data.name",
    {
        "digits": "pot_zk.data.datasets:digits",
        "synthetic": "pot_zk.data.datasets:synthetic",
    },
)
"""Data set name -> loader ``(in_features, out_features, num_samples, seed, loss)``: the targets
``loss`` trains on (float rows for ``mse``, class labels for ``cross_entropy``)."""

BUILT_IN = tuple(DATASETS.names())
"""The data sets that ship with pot-zk: a verifier reloads them itself."""


def _all(count: int) -> slice:
    return slice(0, count)


def _first_half(count: int) -> slice:
    return slice(0, count // 2)


def _second_half(count: int) -> slice:
    return slice(count // 2, count)


PARTS: Registry[Callable[[int], slice]] = Registry(
    "data part",
    "data.part",
    {"all": _all, "base": _first_half, "adapt": _second_half},
)
"""``all`` samples, or the first (``base``) or second (``adapt``) half in data-set order (train a
base model on one half and adapt it with LoRA on the other)."""
