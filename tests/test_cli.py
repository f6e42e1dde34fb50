"""The installed `pot-zk` console script, run as a user would, from an unrelated directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "pot-zk"


@pytest.fixture
def pot_zk(tmp_path):
    if not SCRIPT.exists():
        pytest.fail(f"pot-zk console script not installed beside {sys.executable}; pip install the package first")

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), *arguments], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    return run


def test_show_config_finds_the_shipped_configs_and_applies_overrides(pot_zk, tmp_path):
    shown = pot_zk("show-config", "mode=production", "handler=fallback", "retry.max_attempts=5")
    assert shown.returncode == 0, shown.stderr
    assert "mode=production proving=on strategy=zk-groth16 handler=fallback attempts=5 (retries=4)" in shown.stdout
    assert os.listdir(tmp_path) == []


def test_show_config_rejects_a_typo(pot_zk):
    shown = pot_zk("show-config", "retry.max_attemps=5")
    assert shown.returncode != 0
    assert "max_attemps" in shown.stderr


def test_audit_verify_exit_status(pot_zk, tmp_path):
    from pot_zk.core.audit import AuditLog

    with AuditLog(tmp_path / "audit.jsonl") as audit:
        audit.event("run.end")
    assert pot_zk("audit", "verify", "audit.jsonl").returncode == 0
    (tmp_path / "audit.jsonl").write_text("{}\n")
    failed = pot_zk("audit", "verify", "audit.jsonl")
    assert failed.returncode == 1 and "edited" in failed.stdout
