"""LoRA fine-tuning with prover=groth16: on a base run trained exactly (so its final model is on the
grid), the adapters train exactly, the proven steps verify with the base commitment; a base
trained with ezkl (in float, committed with ezkl's scheme) is refused before anything runs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.exceptions import ConfigurationError
from pot_zk.runs.base_run import base_commitment
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train
from pot_zk.verify.run import verify_run
from provers.groth16_held import socket_path

pytestmark = pytest.mark.prover

COMMON = ["model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=4", "train.progress=false"]


def _train(run: Path, cache: Path, *extra: str):
    return train(compose_config([*COMMON, f"run_dir={run}", f"cache_dir={cache}", *extra]), sleep=lambda s: None)


def test_a_lora_run_on_an_exact_base_proves_and_verifies(tmp_path):
    cache = tmp_path / "cache"
    _train(tmp_path / "base", cache, "prover=groth16", "mode=disabled", "data.part=base")
    lora = tmp_path / "lora"
    try:
        summary = _train(lora, cache, "prover=groth16", "model=lora_tiny", f"model.base_run={tmp_path / 'base'}", "data.part=adapt", "policy=every_k", "policy.k=2")
    finally:
        pid_file = Path(f"{socket_path(str(cache), RunBundle.open(lora).manifest()['circuit'])}.pid")
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert summary.progress["proof_types"] == {"zk-groth16": 2}
    assert RunBundle.open(lora).manifest()["circuit"]["circuit_version"] == "groth16-lora/2"
    report = verify_run(lora, cache_dir=cache)
    assert report.ok, report.summary()
    assert "base-model" in report.passed and report.coverage == {"zk-groth16": 2, "commitment-only": 2}
    assert report.references["base_commitment"] == base_commitment(tmp_path / "base")
    pinned = verify_run(lora, cache_dir=cache, expect_base=base_commitment(tmp_path / "base"))
    assert pinned.ok and "base-reference" in pinned.passed, pinned.summary()
    other = verify_run(lora, cache_dir=cache, expect_base="ab" * 32)
    assert {(f.check, f.reason) for f in other.findings} == {("base-model", "unexpected-base")}


def test_a_base_trained_with_ezkl_is_refused(tmp_path):
    cache = tmp_path / "cache"
    _train(tmp_path / "base", cache, "prover=ezkl", "mode=disabled", "data.part=base")
    with pytest.raises(ConfigurationError, match="trained with prover=ezkl.*train the base with prover=groth16"):
        _train(tmp_path / "lora", cache, "prover=groth16", "model=lora_tiny", f"model.base_run={tmp_path / 'base'}", "data.part=adapt")
    assert not (tmp_path / "lora" / "manifest.json").exists()
