"""A run with one selected step parked and one proven (the real ezkl prover behind a program that
crashes on step 0): verify counts only the proven step. The verdict says so -- VERIFIED for an
auditor who accepts one proven step, with the parked one in the coverage, FAILED
(`too-few-proven`) for one who asks for both. The all-parked case is in
tests/test_unproven_outcomes.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pot_zk.verify.run import verify_run

from run_support import run_tiny

pytestmark = pytest.mark.prover

CRASH_ON_STEP_0 = """#!{python}
import json, subprocess, sys
request = sys.stdin.read()
if json.loads(request)["step"] == 0:
    sys.exit("this prover crashes on step 0")
sys.exit(subprocess.run([{prover!r}], input=request, text=True).returncode)
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, zk_cache) -> Path:
    root = tmp_path_factory.mktemp("parked")
    program = root / "prover"
    program.write_text(CRASH_ON_STEP_0.format(python=sys.executable, prover=str(Path(sys.executable).parent / "pot-zk-ezkl-prover")))
    program.chmod(0o755)
    summary = run_tiny(root / "run", zk_cache, "handler=retry", "retry=none", f"prover.binary={program}")
    assert summary.progress["outcomes"] == {"parked": 1, "proved": 1} and summary.progress["proof_types"] == {"zk-halo2": 1}
    return root / "run"


def test_one_proven_step_is_verified_with_the_parked_one_named(run, zk_cache):
    report = verify_run(run, cache_dir=zk_cache, min_proven=1)
    assert report.verdict == "VERIFIED", report.summary()
    assert report.proven == 1 and report.verified_steps == {2}
    assert report.coverage == {"zk-halo2": 1, "parked": 1, "commitment-only": 2}
    coverage = next(line for line in report.summary().splitlines() if line.startswith("coverage: "))
    assert "parked=1" in coverage.removeprefix("coverage: ").split(", "), coverage


def test_an_auditor_who_asks_for_both_selected_steps_gets_failed(run, zk_cache):
    report = verify_run(run, cache_dir=zk_cache, min_proven=2)
    assert report.verdict == "FAILED"
    assert [(f.check, f.reason) for f in report.findings] == [("proofs", "too-few-proven")]
    assert report.findings[0].message.startswith("1 steps carry a verified proof")
