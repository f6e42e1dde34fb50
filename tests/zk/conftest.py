"""Fixtures for tests that run the real ezkl prover on tiny circuits.

Keys and circuits are cached once per test session (``zk_cache``, shared by the pytest-xdist
workers); the tests prove the same tiny architecture (zk_support.TINY) so each circuit's setup
runs once. ``honest_runs`` trains the honest bundles the tampering suites copy, once per session
(by the first worker that asks; the others wait for it). Tests read them, never write into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from run_support import shared_directory


@pytest.fixture(scope="session")
def zk_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pot-zk cache for the session's workers: ezkl's dev SRS, circuits and keys are built
    once (under the cache's own locks, as for two trainers sharing a cache). A test that copies
    a directory out of it leaves out the cache's lock and staging entries (run_support.UNSHARED)."""
    return shared_directory(tmp_path_factory, "zk-cache")


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

    root = shared_directory(tmp_path_factory, "honest")
    with FileLock(root / "trained.lock"):  # the first worker trains them, the others read them
        if not (root / "head").is_file():
            summary = run_tiny(root / "honest", zk_cache)
            run_tiny(root / "other-run", zk_cache, "train.seed=7", "train.max_steps=2")
            (root / "head").write_text(summary.head)
    return HonestRuns(root / "honest", (root / "head").read_text(), root / "other-run")
