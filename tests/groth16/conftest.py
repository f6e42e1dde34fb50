"""Fixtures for the zk-groth16 tests: one key setup per tiny circuit per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from pot_zk.backends.groth16.keys import KeyDirectory, ensure_keys

from groth16_support import honest_step, sgd_integers, tiny_spec


@pytest.fixture(scope="session")
def groth16_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("groth16-cache")


@pytest.fixture(scope="session")
def tiny_keys(groth16_cache: Path) -> KeyDirectory:
    return ensure_keys(tiny_spec(), groth16_cache)


@pytest.fixture(scope="module")
def proven(tiny_keys, tmp_path_factory):
    """A real proof of an honest tiny step (under ``tiny_keys``), its recorded commitments and
    the proof file."""
    from pot_zk.backends.groth16.prove import prove_step

    spec = tiny_spec()
    w, x, y, w_after = honest_step(spec, seed=5)
    proof = prove_step(spec, tiny_keys, sgd_integers(w, x, y, w_after))
    path = tmp_path_factory.mktemp("proof") / "proof.bin"
    path.write_bytes(proof.proof)
    return spec, spec.commitments(sgd_integers(w, x, y, w_after)).to_dict(), path
