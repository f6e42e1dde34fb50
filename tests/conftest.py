"""Shared fixtures: real prover programs made from tests/fake_provers/fake_prover.py."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Callable

import pytest

from pot_zk.proving.strategies import ProgramStrategy, ProofJob

FAKE_PROVER = Path(__file__).parent / "fake_provers" / "fake_prover.py"

MakeProver = Callable[..., Path]


def write_prover(directory: Path, behaviour: str, *arguments: str, name: str = "fake-prover") -> Path:
    """An executable program (``#!`` the running interpreter) that runs the fake prover with
    the given behaviour. Rewriting it changes what the "installed" prover does."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(
        f"#!{sys.executable}\n"
        "import runpy, sys\n"
        f"sys.argv[1:1] = {[behaviour, *arguments]!r}\n"
        f"runpy.run_path({str(FAKE_PROVER)!r}, run_name='__main__')\n"
    )
    path.chmod(0o755)
    return path


@pytest.fixture
def make_prover(tmp_path: Path) -> MakeProver:
    def make(behaviour: str, *arguments: str, name: str = "fake-prover") -> Path:
        return write_prover(tmp_path / "bin", behaviour, *arguments, name=name)

    return make


@pytest.fixture
def make_strategy(make_prover: MakeProver) -> Callable[..., ProgramStrategy]:
    made = itertools.count()

    def make(behaviour: str, *arguments: str, timeout_s: float = 10.0) -> ProgramStrategy:
        program = make_prover(behaviour, *arguments, name=f"{behaviour}-prover-{next(made)}")
        return ProgramStrategy(name="zk-halo2", binary=str(program), timeout_s=timeout_s)

    return make


@pytest.fixture
def job(tmp_path: Path) -> ProofJob:
    witness = tmp_path / "witness.safetensors"
    witness.write_bytes(b"not read by the fake prover")
    return ProofJob(
        step=7, kind="sgd", circuit={"layers": [4, 2]}, witness_path=str(witness),
        cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "proofs" / "step-7"),
    )
