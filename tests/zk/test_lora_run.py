"""`pot-zk train model=lora_*`: a base run, then LoRA fine-tuning on its final model; both verify,
and the LoRA run is bound to its base."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from pot_zk.runs.bundle import RunBundle
from pot_zk.exceptions import ConfigurationError
from pot_zk.verify.run import verify_run

from run_support import run_tiny

pytestmark = pytest.mark.prover


@pytest.fixture(scope="module")
def runs(tmp_path_factory, zk_cache):
    """A tiny base run on the first half of the data (mode=disabled: its proofs are not the
    point here), then a LoRA run on the second half with steps 0 and 2 proven."""
    root = tmp_path_factory.mktemp("lora-runs")
    base, lora = root / "base", root / "lora"
    run_tiny(base, zk_cache, "mode=disabled", "data.part=base")
    summary = run_tiny(lora, zk_cache, "model=lora_tiny", f"model.base_run={base}", "data.part=adapt")
    return base, lora, summary


def test_lora_run_proves_its_adapter_steps_and_verifies(runs, zk_cache):
    base, lora, summary = runs
    assert summary.progress["proof_types"] == {"zk-halo2": 2}
    manifest = RunBundle.open(lora).manifest()
    assert manifest["circuit"]["kind"] == "lora" and manifest["dataset"]["part"] == "adapt"
    assert manifest["base"]["commitment"] == RunBundle.open(base).commitments()[-1]["w_after"]
    records = RunBundle.open(lora).commitments()
    assert {r["base"] for r in records} == {manifest["base"]["commitment"]}
    report = verify_run(lora, cache_dir=zk_cache, expect_base=base)
    assert report.ok, report.summary()
    assert "base-model" in report.passed and report.coverage == {"zk-halo2": 2, "commitment-only": 2}
    assert verify_run(base, cache_dir=zk_cache).ok


def test_a_lora_run_with_another_base_in_its_model_file_is_rejected(runs, zk_cache, tmp_path):
    base, lora, _ = runs
    copy = tmp_path / "lora"
    shutil.copytree(lora, copy)
    state = load_file(str(copy / "model_final.safetensors"))
    state["2.weight"] = state["2.weight"] + 0.01
    save_file(state, str(copy / "model_final.safetensors"))
    report = verify_run(copy, cache_dir=zk_cache, expect_base=base)
    # the altered model also scores differently on the held-out set than the run recorded
    assert [(f.check, f.reason) for f in report.findings] == [("final-model", "base-mismatch"), ("evaluation", "score-mismatch")]


def test_a_lora_run_claiming_another_base_commitment_is_rejected(runs, zk_cache, tmp_path):
    _, lora, _ = runs
    copy = tmp_path / "lora"
    shutil.copytree(lora, copy)
    lines = (copy / "commitments.jsonl").read_text().splitlines()
    record = json.loads(lines[1])
    record["base"] = record["w_before"]
    lines[1] = json.dumps(record, sort_keys=True)
    (copy / "commitments.jsonl").write_text("\n".join(lines) + "\n")
    reasons = {(f.check, f.reason, f.step) for f in verify_run(copy, cache_dir=zk_cache).findings}
    assert ("base-model", "base-mismatch", 1) in reasons


def test_lora_needs_a_completed_base_run(tmp_path, zk_cache):
    with pytest.raises(ConfigurationError, match="model.base_run"):
        run_tiny(tmp_path / "lora", zk_cache, "model=lora_tiny")
    with pytest.raises(ConfigurationError, match="not a pot-zk run|cannot read"):
        run_tiny(tmp_path / "lora2", zk_cache, "model=lora_tiny", f"model.base_run={tmp_path}")
