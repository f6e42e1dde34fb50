"""Proving policies: which steps get a proof. Commitments are recorded for every step anyway.

Each policy is a small callable ``(step) -> bool`` and a pure function of its settings and the
step number, so a resumed run makes the same choices. Policies are frozen dataclasses registered
by name in :data:`POLICIES` (``policy.name`` in config); their fields are their settings, which
the manifest records (``{"name": ..., **fields}``) and verify rebuilds the policy from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any, Callable

from pot_zk.core.registry import Registry
from pot_zk.exceptions import ConfigurationError

POLICIES: Registry[type] = Registry(
    "proving policy",
    "policy.name",
    {
        "every_step": "pot_zk.proving.policy:EveryStep",
        "every_k": "pot_zk.proving.policy:EveryK",
        "sample": "pot_zk.proving.policy:Sample",
    },
)


@dataclass(frozen=True)
class EveryStep:
    name = "every_step"

    def __call__(self, step: int) -> bool:
        return True


@dataclass(frozen=True)
class EveryK:
    """Steps 0, k, 2k, ..."""

    k: int
    name = "every_k"

    def __post_init__(self) -> None:
        if not _whole(self.k) or self.k < 1:  # a review: a declared k of 1.0000001 selected step 0 alone
            raise ConfigurationError(f"policy.k must be a whole number >= 1, got {self.k!r}", key="policy.k")

    def __call__(self, step: int) -> bool:
        return step % self.k == 0


@dataclass(frozen=True)
class Sample:
    """Each step independently with probability ``fraction``, decided by a hash of (seed, step)."""

    fraction: float
    seed: int
    name = "sample"

    def __post_init__(self) -> None:
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) or not 0.0 <= self.fraction <= 1.0:
            raise ConfigurationError(f"policy.fraction must be a number in [0, 1], got {self.fraction!r}", key="policy.fraction")
        if not _whole(self.seed):
            raise ConfigurationError(f"policy.seed must be a whole number, got {self.seed!r}", key="policy.seed")
        object.__setattr__(self, "fraction", float(self.fraction))  # one form in the manifest (verify/canonical.py): 1 is written 1.0

    def __call__(self, step: int) -> bool:
        digest = hashlib.sha256(f"{self.seed}:{step}".encode()).digest()
        return int.from_bytes(digest[:8], "big") < self.fraction * 2**64


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def create_policy(name: str, **settings: Any) -> Callable[[int], bool]:
    """The policy ``name`` with the settings it has (others, e.g. ``k`` for ``sample``, are
    ignored); ConfigurationError for an unknown name, TypeError for a missing setting."""
    policy = POLICIES.get(name)
    return policy(**{field.name: settings[field.name] for field in fields(policy) if field.name in settings})
