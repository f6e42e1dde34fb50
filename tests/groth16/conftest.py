"""Fixtures for the zk-groth16 tests: one key setup per tiny circuit per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from pot_zk.backends.groth16.keys import KeyDirectory, ensure_keys

from groth16_support import tiny_spec


@pytest.fixture(scope="session")
def groth16_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("groth16-cache")


@pytest.fixture(scope="session")
def tiny_keys(groth16_cache: Path) -> KeyDirectory:
    return ensure_keys(tiny_spec(), groth16_cache)
