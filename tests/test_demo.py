"""The README's first command runs this demo: it must work and show each behaviour."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parent.parent / "scripts" / "demo_error_handling.py"


def test_error_handling_demo_shows_each_behaviour(tmp_path):
    shown = subprocess.run([sys.executable, str(DEMO)], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "ProverTimeoutError     True" in out
    assert "proved after 3 attempts" in out
    assert "HALTED: raised RetryExhaustedError" in out
    assert "prove-pending: ['proved']; still parked: 0" in out
    assert "proved by demo-backup (proof_type=demo-backup)" in out
    assert "line 2: edited" in out and "line 2: dropped" in out
