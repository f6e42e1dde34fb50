"""The seed's scripts: the demonstration (scripts/demo_error_handling_improvements.py, the
README's) must work and show each behaviour; the integration script runs its tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).parent.parent / "scripts"
DEMO = SCRIPTS / "demo_error_handling_improvements.py"


def test_error_handling_demo_shows_each_behaviour(tmp_path):
    shown = subprocess.run([sys.executable, str(DEMO)], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "ProverTimeoutError     True" in out
    assert "proved after 3 attempts" in out
    assert "HALTED: raised RetryExhaustedError" in out
    assert "deterministic    4         RetryExhaustedError    ProofGenerationError" in out
    assert "invalid-witness  1         WitnessBuilderError    -" in out
    assert "prove-pending: ['proved']; still parked: 0" in out
    assert "proved by demo-backup (proof_type=demo-backup)" in out
    assert "line 2: edited" in out and "line 2: dropped" in out


def test_the_seeds_integration_script_runs_its_integration_tests(tmp_path):
    shown = subprocess.run([sys.executable, str(SCRIPTS / "test_improved_error_handling.py"), "-k", "deterministic_prover_failure or returns_the_provers_proof"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stdout[-3000:]
    assert "2 passed" in shown.stdout
