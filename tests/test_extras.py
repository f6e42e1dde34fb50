"""Backends and optional features are extras (pyproject.toml; pot_zk/core/extras.py). On a machine
without one (simulated: tests/missing_modules hides the modules from every Python process of the
run), what needs it fails in one line naming the `pip install` that fixes it, before anything is
written, and the rest works: a zk-groth16 run trains and verifies with no other extra."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from process_support import holder_pid, kill, run, stderr_lines, tiny_run

HIDING = Path(__file__).parent / "missing_modules"


def without(*modules: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(HIDING), "POT_ZK_TEST_MISSING": ",".join(modules)}


def test_the_hiding_works(tmp_path):
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", "import ezkl"], env=without("ezkl"), capture_output=True, text=True)
    assert probe.returncode == 1 and "ModuleNotFoundError: No module named 'ezkl'" in probe.stderr


@pytest.mark.parametrize(("missing", "overrides", "line"), [
    (("ezkl", "onnx"), ["prover=ezkl"],
     "pot-zk train: the ezkl backend (zk-halo2 proofs) needs the Python package 'ezkl', which is not installed: pip install 'pot-zk[ezkl]'"),
    (("groth16py",), ["prover=groth16"],
     "pot-zk train: the groth16 backend (zk-groth16 proofs) needs the Python package 'groth16py', which is not installed: "
     "pip install 'pot-zk[groth16]'"),
    (("light_poseidon_python",), ["prover=groth16"],
     "pot-zk train: the groth16 backend (zk-groth16 proofs) needs the Python package 'light_poseidon_python', which is not "
     "installed: pip install 'pot-zk[groth16]'"),
])
def test_a_missing_backend_is_one_line_naming_the_pip_install(tmp_path, missing, overrides, line):
    failed = run("train", *overrides, "run_dir=run", cwd=tmp_path, env=without(*missing))
    assert failed.returncode == 2
    assert stderr_lines(failed.stderr) == [line]
    assert list(tmp_path.iterdir()) == []


def test_report_without_matplotlib_names_its_extra(tmp_path):
    done = run("train", "mode=disabled", "model=tiny_mlp", "data=synthetic", "train.max_steps=2", "run_dir=run", "train.progress=false",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    failed = run("report", "run", cwd=tmp_path, env=without("matplotlib"))
    assert failed.returncode == 2
    assert stderr_lines(failed.stderr)[-1].endswith("needs the Python package 'matplotlib', which is not installed: pip install 'pot-zk[report]'")


ONLY_GROTH16 = ("ezkl", "onnx", "matplotlib", "peft", "dask", "distributed", "tensorboard")
"""What an environment with pot-zk[groth16] alone lacks."""


def test_a_groth16_run_trains_and_verifies_with_the_groth16_extra_alone(tmp_path):
    cache = tmp_path / "cache"
    done = run("train", *tiny_run(tmp_path / "run", cache, steps=4), cwd=tmp_path, env=without(*ONLY_GROTH16))
    kill(holder_pid(cache, tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    head = re.search(r"^commitment head: ([0-9a-f]{64})", done.stdout, re.MULTILINE).group(1)
    verified = run("verify", "run", "--cache-dir", str(cache), "--expect-head", head, cwd=tmp_path, env=without(*ONLY_GROTH16))
    assert verified.returncode == 0 and "result: VERIFIED" in verified.stdout, verified.stdout
