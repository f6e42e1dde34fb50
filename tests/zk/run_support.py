"""Composing and running tiny proven training runs for the tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.runs.train import RunSummary, train


def tiny_overrides(run_dir: Path, cache_dir: Path, *extra: str) -> list[str]:
    """A 4-3-2 MLP on synthetic data, batch 2, 4 steps, steps 0 and 2 proven with zk-halo2."""
    return [
        "prover=ezkl",
        "model=tiny_mlp",
        "data=synthetic",
        "train.batch_size=2",
        "train.max_steps=4",
        "policy=every_k",
        "policy.k=2",
        f"run_dir={run_dir}",
        f"cache_dir={cache_dir}",
        "train.progress=false",
        *extra,
    ]


def run_tiny(run_dir: Path, cache_dir: Path, *extra: str) -> RunSummary:
    cfg = compose_config(tiny_overrides(run_dir, cache_dir, *extra))
    return train(cfg, sleep=lambda seconds: None)


def shared_directory(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``name`` in the session's temporary root, one directory for all pytest-xdist workers of
    the session (each worker's own base directory is one level below)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / name
    path.mkdir(exist_ok=True)
    return path


UNSHARED = shutil.ignore_patterns(".lock", ".staging-*", ".rejected-*")
"""What a copy out of the shared :func:`zk_cache` leaves out: another worker's lock file and
the staging directories of what it is building right now."""
