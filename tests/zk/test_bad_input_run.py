"""Bad input to a whole run: each is a typed error before training or proving starts, and
whatever a failure leaves behind is something `pot-zk resume` / `verify` handle (atomic
writes; a full disk cuts no record in half)."""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch

from pot_zk.core import atomic
from pot_zk.core.atomic import StorageError
from pot_zk.cli.commands import resume_command
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.sgd.step import step_from_states
from pot_zk.verify.run import verify_run

from run_support import run_tiny
from skip_policy import has_mount_privilege


def _resume(run: Path) -> int:
    parser = argparse.ArgumentParser()
    handler = resume_command(parser)
    return handler(parser.parse_args([str(run)]))


def test_a_file_that_is_not_an_srs_is_refused_before_anything_is_written(tmp_path, zk_cache):
    srs = tmp_path / "kzg.srs"
    srs.write_bytes(b"not an srs at all")
    with pytest.raises(ConfigurationError, match="not a KZG SRS") as raised:
        run_tiny(tmp_path / "run", zk_cache, f"srs.path={srs}")
    assert raised.value.key == "srs.path"
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_an_unusable_key_cache_is_refused_naming_cache_dir(tmp_path):
    not_a_directory = tmp_path / "cache"
    not_a_directory.write_text("a file where the key cache should be")
    with pytest.raises(ConfigurationError) as raised:
        run_tiny(tmp_path / "run", not_a_directory)
    assert raised.value.key == "cache_dir"
    assert not (tmp_path / "run").exists()


FLOATING = ["float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize(("dtype", "message", "expected", "actual"), [
    (torch.int64, r"weights_before\[0\.weight\] has dtype int64: weights must be floating point", FLOATING, "int64"),
    (torch.bool, r"weights_before\[0\.weight\] has dtype bool: weights must be floating point", FLOATING, "bool"),
    (torch.float16, r"the weights mix dtypes", "one floating dtype for all weights",
     {"weights_before": ["float16"], "weights_after": ["float32"]}),
], ids=["int64", "bool", "float16-then-float32"])
def test_wrong_dtypes_are_a_typed_error(dtype, message, expected, actual):
    """int64 or bool weights, or a float16 state before a float32 one after, are refused
    before any float64 witness is made of them."""
    torch.manual_seed(0)
    arch = MlpArchitecture((4, 3, 2))
    state = arch.build().state_dict()
    x, y = torch.randn(2, 4), torch.randn(2, 2)
    bad = {k: v.to(dtype) for k, v in state.items()}
    with pytest.raises(InvalidModelStateError, match=message) as raised:
        step_from_states(bad, state, x, y, 0.1, arch)
    assert (raised.value.expected, raised.value.actual) == (expected, actual)


def _fail_writes_after(monkeypatch, budget: int) -> None:
    """A file layer whose disk fills up after ``budget`` more line appends."""
    real = os.write
    calls = {"n": 0}

    def write(fd, data):
        calls["n"] += 1
        if calls["n"] > budget:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return real(fd, data)

    monkeypatch.setattr(atomic.os, "write", write)


@pytest.mark.parametrize("budget", [0, 1, 3])
def test_a_write_error_is_a_storage_error_and_the_run_resumes_once_space_is_back(tmp_path, zk_cache, monkeypatch, budget):
    run = tmp_path / "run"
    _fail_writes_after(monkeypatch, budget)
    with pytest.raises(StorageError, match="No space left"):
        run_tiny(run, zk_cache, "mode=disabled")
    monkeypatch.undo()
    assert not any(p.read_bytes() and not p.read_bytes().endswith(b"\n") for p in run.glob("*.jsonl")), "a record was cut in half"
    assert _resume(run) == 0
    report = verify_run(run, cache_dir=zk_cache)
    assert report.ok, report.summary()


@pytest.mark.parametrize("size_kb", [8, 16, 28])
def test_a_full_tmpfs_run_directory_gives_a_storage_error_and_resumes(tmp_path, zk_cache, size_kb):
    if not has_mount_privilege():  # an expected skip only then (tests/conftest.py EXPECTED_SKIPS)
        pytest.skip("no mount privilege (CAP_SYS_ADMIN) to mount a tmpfs; the injected write error test covers the file layer")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)], capture_output=True, text=True)
    assert mounted.returncode == 0, f"mounting a tmpfs failed with mount privilege: {mounted.stderr}"
    try:
        run = mount / "run"
        with pytest.raises(StorageError):
            run_tiny(run, zk_cache, "mode=disabled")
        assert not list(run.glob(".*.tmp")), "a temporary file of an atomic write was left behind"
        subprocess.run(["mount", "-o", "remount,size=4m", str(mount)], check=True)
        if (run / "manifest.json").exists():
            assert _resume(run) == 0
        else:  # failed while preparing: no run exists yet, train again into the same directory
            run_tiny(run, zk_cache, "mode=disabled")
        report = verify_run(run, cache_dir=zk_cache)
        assert report.ok, report.summary()
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
