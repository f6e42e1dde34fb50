"""Session-wide directories that pytest-xdist's workers share.

The suite runs on two workers (pyproject's addopts: ``-n 2 --dist loadfile``). Each worker has
its own base temp directory, ``<session base temp>/<worker id>``, so a session-scoped fixture
made there would run once per worker. :func:`session_dir` gives the directory both workers see,
and :func:`made_once` makes its content once, under a file lock, whichever worker asks first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
from filelock import FileLock


def session_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``name`` in the session's base temp directory, the same for every worker."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / name
    path.mkdir(exist_ok=True)
    return path


def made_once(directory: Path, make: Callable[[Path], None]) -> Path:
    """Run ``make(directory)`` unless a worker already did (``directory/.made`` marks it done)."""
    with FileLock(directory.parent / f".{directory.name}.lock"):
        if not (directory / ".made").exists():
            make(directory)
            (directory / ".made").touch()
    return directory
