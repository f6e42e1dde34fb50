"""Fixtures for tests that run the real ezkl prover on tiny circuits.

Keys and circuits are cached once per test session (``zk_cache``); the tests prove the same
tiny architecture (zk_support.TINY) so each circuit's setup runs once. ``honest_runs`` trains
the honest bundles the tampering suites copy, once per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def zk_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zk-cache")


@dataclass(frozen=True)
class HonestRuns:
    """An honest tiny bundle (real zk-halo2 proofs of steps 0 and 2), the commitment head its
    training printed, and another honest run of the same statement (seed 7, step 0 proven)."""

    run: Path
    head: str
    other: Path


@pytest.fixture(scope="session")
def honest_runs(tmp_path_factory: pytest.TempPathFactory, zk_cache: Path) -> HonestRuns:
    from run_support import run_tiny

    root = tmp_path_factory.mktemp("honest")
    summary = run_tiny(root / "honest", zk_cache)
    run_tiny(root / "other-run", zk_cache, "train.seed=7", "train.max_steps=2")
    return HonestRuns(root / "honest", summary.head, root / "other-run")
