"""Fixtures for tests that run the real ezkl prover on tiny circuits.

Keys and circuits are cached once per test session (``zk_cache``); the tests prove the same
tiny architecture (zk_support.TINY) so each circuit's setup runs once.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def zk_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zk-cache")
