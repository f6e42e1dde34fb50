"""Temporary directories of a process (pot_zk/core/scratch.py): one a SIGKILLed process left is
removed by the next process that makes one of its kind; one whose process lives is not, even
when its pid names no process this one can see (another PID namespace or host: review56), nor
one of another kind, without its lock file, or a link."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pot_zk.core.scratch import LOCK, LOCKED, remove_left_behind, remove_scratch, scratch_directory

from process_support import wait_for

HOLDER = """
import sys, time
from pot_zk.core.scratch import scratch_directory
print(scratch_directory(sys.argv[1]), flush=True)
time.sleep(600)
"""


@pytest.fixture
def temporary(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setenv("TMPDIR", str(directory))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return directory


def _holder(prefix: str) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, prefix], stdout=subprocess.PIPE, text=True)
    return process, Path(process.stdout.readline().strip())


def test_a_killed_process_s_directory_goes_and_a_live_one_stays_whatever_its_pid_says(temporary):
    live, kept = _holder("pot-zk-test-")
    killed, left = _holder("pot-zk-test-")
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        disguised = temporary / "pot-zk-test-999999999-live"  # a pid no process here has: a live process of another namespace
        kept.rename(disguised)
        assert (disguised / LOCK).is_file() and left.is_dir()
        mine = scratch_directory("pot-zk-test-")
        assert not left.exists(), "the killed process's directory is removed"
        assert disguised.is_dir(), "a directory whose lock a live process holds stays"
        assert remove_left_behind("pot-zk-test-") == []  # nor is this process's own removed
        assert mine.is_dir()
        remove_scratch(mine)
        assert not mine.exists()
    finally:
        live.kill()
        live.wait(timeout=30)
    assert remove_left_behind("pot-zk-test-") == [disguised]


def test_what_is_not_a_scratch_directory_of_this_kind_is_left_alone(temporary, tmp_path):
    unlocked = temporary / "pot-zk-test-1-nolock"  # made, not yet locked: a process starting
    unlocked.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / LOCK).touch()
    (temporary / "pot-zk-test-2-link").symlink_to(elsewhere)
    other_kind = temporary / "pot-zk-other-3-x"
    other_kind.mkdir()
    (other_kind / LOCK).touch()
    assert remove_left_behind("pot-zk-test-") == []
    assert unlocked.is_dir() and elsewhere.is_dir() and (elsewhere / LOCK).is_file() and other_kind.is_dir()


def test_a_directory_whose_maker_has_not_locked_it_yet_is_left_alone(temporary):
    """filelock creates the lock file, then locks it: a directory seen in between had a free lock
    and was removed under its maker (a key holder's other prover thread making its witness
    directory, or another process). Only one marked as locked by its maker is judged by its lock."""
    starting = temporary / "pot-zk-test-4-starting"
    starting.mkdir()
    (starting / LOCK).touch()
    assert remove_left_behind("pot-zk-test-") == [] and starting.is_dir()
    (starting / LOCKED).touch()  # its maker had locked it, then was killed
    assert remove_left_behind("pot-zk-test-") == [starting]
