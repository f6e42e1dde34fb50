"""`pot-zk prove-step` / `pot-zk verify-step` on a saved step."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pot_zk.backends.registry import commit_step
from pot_zk.kinds.registry import save_training_step

from zk_support import tiny_spec, train_steps

pytestmark = pytest.mark.prover

POT_ZK = str(Path(sys.executable).parent / "pot-zk")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([POT_ZK, *args], capture_output=True, text=True, timeout=600)


def test_a_saved_step_is_proven_and_verified_from_the_command_line(tmp_path, zk_cache):
    step = train_steps(1, seed=6)[0]
    save_training_step(step, tmp_path / "step.safetensors")
    proved = _run("prove-step", str(tmp_path / "step.safetensors"), f"cache_dir={zk_cache}", "--out", str(tmp_path / "out"))
    assert proved.returncode == 0, proved.stdout + proved.stderr
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["status"] == "proved" and result["proof_type"] == "zk-halo2"
    verified = _run("verify-step", str(tmp_path / "out" / "result.json"), "--cache-dir", str(zk_cache))
    assert verified.returncode == 0 and "VERIFIED" in verified.stdout, verified.stdout + verified.stderr
    other = tmp_path / "other-lr.json"
    other.write_text(json.dumps(tiny_spec(learning_rate=0.05).to_dict()))
    rejected = _run("verify-step", str(tmp_path / "out" / "result.json"), "--cache-dir", str(zk_cache), "--circuit", str(other))
    assert rejected.returncode == 1 and "REJECTED (zk-halo2): invalid-proof: ezkl rejected the proof" in rejected.stdout, rejected.stdout + rejected.stderr
    assert result["commitment"] == commit_step(step, tiny_spec()).to_dict()
    same = _run("verify-step", str(tmp_path / "out" / "result.json"), "--cache-dir", str(zk_cache), "--step", str(tmp_path / "step.safetensors"))
    assert same.returncode == 0 and "VERIFIED" in same.stdout, same.stdout + same.stderr
    save_training_step(train_steps(1, seed=7)[0], tmp_path / "another.safetensors")
    another = _run("verify-step", str(tmp_path / "out" / "result.json"), "--cache-dir", str(zk_cache), "--step", str(tmp_path / "another.safetensors"))
    assert another.returncode == 1 and "REJECTED (zk-halo2): commitment-mismatch" in another.stdout, another.stdout + another.stderr
    # review52: the statement came from result.json alone: a step file saying another rate (the same tensors) verified
    save_training_step(dataclasses.replace(step, learning_rate=step.learning_rate / 10), tmp_path / "claimed.safetensors")
    claimed = _run("verify-step", str(tmp_path / "out" / "result.json"), "--cache-dir", str(zk_cache), "--step", str(tmp_path / "claimed.safetensors"))
    assert claimed.returncode == 1, claimed.stdout + claimed.stderr
    assert (f"REJECTED (zk-halo2): step-mismatch: the statement in result.json is not the step's: the step does not match the declared "
            f"statement: learning_rate {step.learning_rate / 10!r} (declared {step.learning_rate!r})") in claimed.stdout, claimed.stdout


def test_prove_step_rejects_a_file_that_is_not_a_step(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"not a step")
    result = _run("prove-step", str(tmp_path / "junk.safetensors"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "WitnessBuilderError: cannot read step file" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "result.json").exists()
