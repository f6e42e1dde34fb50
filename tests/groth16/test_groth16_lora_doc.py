"""docs/lora.md's peft fine-tune in a loop of its own, as written: the training block and the
auditor's block run in one fresh process; the `pot-zk verify` command the summary prints, with
the auditor's `--expect-base`, verifies the run, and another base is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.summary import declared_pins

from groth16_support import stop_holders
from test_groth16_readme_loop import printed

pytestmark = pytest.mark.prover

ROOT = Path(__file__).resolve().parents[2]
POT_ZK = Path(sys.executable).parent / "pot-zk"


def lora_doc_blocks() -> tuple[str, str]:
    """The two python blocks of docs/lora.md's peft section: training, then the auditor's."""
    section = (ROOT / "docs" / "lora.md").read_text().split("## Fine-tuning a peft model in your own loop\n", 1)[1].split("\n## ", 1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```python\n")[1:]]
    assert len(blocks) == 2
    return blocks[0], blocks[1]


def test_the_peft_example_runs_as_written_and_verifies_with_the_auditors_base(tmp_path):
    training, auditor = lora_doc_blocks()
    assert "peft.get_peft_model(" in training and "pot_zk.track(" in training and "base_commitment(base_state, statement)" in auditor
    environment = {**os.environ, "POT_ZK_CACHE": str(tmp_path / "cache")}
    ran = subprocess.run([sys.executable, "-c", training + auditor], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=1800)
    try:
        assert ran.returncode == 0, ran.stderr
    finally:
        manifest = tmp_path / "runs" / "peft" / "manifest.json"
        if manifest.exists():
            stop_holders(tmp_path / "cache", json.loads(manifest.read_text())["circuit"])
    lines = ran.stdout.splitlines()
    expected_base = lines[-1]
    assert "run completed: 16 steps trained" in ran.stdout and "4 proved (4 zk-groth16)" in ran.stdout
    export, command = (printed(ran.stdout, prefix) for prefix in ("hand over the export, not the directory", "the auditor checks it with: "))
    exported = subprocess.run([str(POT_ZK), *export[1:]], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert command[command.index("--expect-base") + 1] == "BASE", "the auditor's command leaves the base to the auditor"
    assert f"BASE = the frozen base it declares, {expected_base}" in ran.stdout
    declared = declared_pins(RunBundle.open(tmp_path / "runs" / "peft"))
    command = [{"ROOT": declared["root"], "W0": declared["initial"]}.get(word, word) for word in command]  # the values agreed with the trainer
    verified = subprocess.run([str(POT_ZK), *command[1:], "--expect-base", expected_base], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert verified.returncode == 0 and "result: VERIFIED" in verified.stdout, verified.stdout + verified.stderr
    assert "passed: base-reference" in verified.stdout
    other = "0x" + "1" * 64
    refused = subprocess.run([str(POT_ZK), *command[1:], "--expect-base", other], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1 and "unexpected-base" in refused.stdout, refused.stdout
