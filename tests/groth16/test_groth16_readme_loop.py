"""The README's own-loop example, as written (a shuffling DataLoader, nn.CrossEntropyLoss, the
loop's own backward and step, a cosine schedule): extracted from README.md, run in a fresh
directory, proven with groth16; the `pot-zk verify` command its summary prints verifies it and
names the schedule."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.summary import declared_pins

from groth16_support import stop_holders

pytestmark = pytest.mark.prover

ROOT = Path(__file__).resolve().parents[2]
POT_ZK = Path(sys.executable).parent / "pot-zk"


def readme_example() -> str:
    """The first python block of README's "From Python" section."""
    section = (ROOT / "README.md").read_text().split("## From Python\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_runs_as_written_and_verifies(tmp_path):
    code = readme_example()
    assert "pot_zk.track(" in code and "loss_fn = torch.nn.CrossEntropyLoss()" in code and "shuffle=True" in code and "CosineAnnealingLR" in code
    environment = {**os.environ, "POT_ZK_CACHE": str(tmp_path / "cache")}
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=1800)
    try:
        assert ran.returncode == 0, ran.stderr
    finally:
        manifest = tmp_path / "runs" / "mine" / "manifest.json"
        if manifest.exists():
            stop_holders(tmp_path / "cache", json.loads(manifest.read_text())["circuit"])
    assert ran.stderr == "", "a library call prints nothing"
    assert "run completed: 24 steps trained" in ran.stdout and "6 proved (6 zk-groth16)" in ran.stdout
    export, check = (printed(ran.stdout, prefix) for prefix in ("hand over the export, not the directory", "the auditor checks it with: "))
    assert export[:2] == ["pot-zk", "export"] and check[:3] == ["pot-zk", "verify", "mine.tar.gz"]
    assert {"--expect-head", "--expect-root", "--expect-initial", "--accept-setting"} <= set(check)
    # the pins are the auditor's: placeholders in its command, the run's own values listed beside it
    assert check[check.index("--expect-root") + 1] == "ROOT" and check[check.index("--expect-initial") + 1] == "W0"
    declared = declared_pins(RunBundle.open(tmp_path / "runs" / "mine"))
    assert f"ROOT = the dataset root it declares, {declared['root']}" in ran.stdout and f"W0 = the initial model's commitment it declares, {declared['initial']}" in ran.stdout
    check = [{"ROOT": declared["root"], "W0": declared["initial"]}.get(word, word) for word in check]  # the values agreed with the trainer
    exported = subprocess.run([str(POT_ZK), *export[1:]], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    verified = subprocess.run([str(POT_ZK), *check[1:]], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "result: VERIFIED" in verified.stdout
    assert "schedule: CosineAnnealingLR(T_max=24, eta_min=0.0) from lr 0.1, each step's rate recomputed: from " in verified.stdout


def printed(stdout: str, prefix: str) -> list[str]:
    """The command a summary line starting with ``prefix`` gives (after its last ``: ``)."""
    line = next(line for line in stdout.splitlines() if line.startswith(prefix))
    return shlex.split(line.rsplit(": ", 1)[1])
