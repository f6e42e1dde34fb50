"""Shared fixtures: real prover programs made from tests/fake_provers/fake_prover.py; the skip
policy (tests/skip_policy.py): a skip not listed in EXPECTED_SKIPS fails the session."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

from pot_zk.proving.strategies import ProgramStrategy
from pot_zk.core.protocol import ProverRequest
from skip_policy import ExpectedSkip, SkipPolicy, has_mount_privilege

# distributed binds its log handler to the sys.stderr of the moment it is first imported, in a
# test that may be capturing it: the in-process scheduler's later INFO lines ("Remove client")
# then printed "--- Logging error ---" tracebacks mid-suite. Its warnings and errors still show.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

FAKE_PROVER = Path(__file__).parent / "fake_provers" / "fake_prover.py"

MakeProver = Callable[..., Path]

EXPECTED_SKIPS = (
    ExpectedSkip(
        "tests/zk/test_bad_input_run.py::test_a_full_tmpfs_run_directory_gives_a_storage_error_and_resumes*",
        "no mount privilege (CAP_SYS_ADMIN): a tmpfs cannot be mounted",
        lambda: not has_mount_privilege(),
    ),
    ExpectedSkip(
        "tests/test_cli_errors.py::test_*_full_disk_*",
        "no mount privilege (CAP_SYS_ADMIN): a tmpfs cannot be mounted",
        lambda: not has_mount_privilege(),
    ),
)
"""Skips that may happen, each with the machine condition under which it is expected. Any
other skip (a missing dev dependency such as peft or dask, say) fails the session."""


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipPolicy(EXPECTED_SKIPS), "pot-zk-skip-policy")


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_of_the_sessions_own(tmp_path_factory: pytest.TempPathFactory):
    """TMPDIR for this session's processes (each xdist worker its own), removed at its end: the
    key holders' sockets, locks and logs live in TMPDIR/pot-zk-groth16-UID, one set per key
    location, and the suite starts some 1,800 locations, whose files stayed in /tmp for good
    (review40 counted 6,534). pytest's own directories stay where they are (its base first)."""
    tmp_path_factory.getbasetemp()
    directory = tempfile.mkdtemp(prefix="pzk-")  # short: a socket's path must fit in ~100 bytes
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = directory
    tempfile.tempdir = None
    try:
        yield Path(directory)
    finally:
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved
        tempfile.tempdir = None
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def _root_logger_as_it_was() -> Iterator[None]:
    """A Hydra app run in the test's process configures the root logger
    (conf/hydra/job_logging/pot_zk.yaml): a StreamHandler on the sys.stderr of that moment,
    pytest's capture of that test, and the run's log file. Left there, a later test's log line
    met the closed capture ("--- Logging error ---" on its stderr), depending on which files a
    worker ran before it. Those handlers are removed after each test (pytest's own stay)."""
    from pot_zk.cli.log_file import RunLogFileHandler

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in before and (type(handler) is logging.StreamHandler or isinstance(handler, RunLogFileHandler)):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


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
def job(tmp_path: Path) -> ProverRequest:
    witness = tmp_path / "witness.safetensors"
    witness.write_bytes(b"not read by the fake prover")
    return ProverRequest(
        step=7, kind="sgd", circuit={"layers": [4, 2]}, witness_path=str(witness),
        cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "proofs" / "step-7"),
    )
