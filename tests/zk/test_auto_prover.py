"""Proving single steps from Python with auto_prove_training_step / AutoProver and the real
prover; verification is against the step's own commitments, never the prover's."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from pot_zk.auto_prover import AutoProver, auto_prove_training_step, training_step
from pot_zk.exceptions import InvalidModelStateError

from lora_support import LR, lora_model
from zk_support import TINY, train_steps

pytestmark = pytest.mark.prover


def test_auto_prove_training_step_proves_a_module_update_that_verifies_only_for_its_batch(tmp_path, zk_cache):
    torch.manual_seed(3)
    model = TINY.build()
    before = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(2, 4), torch.randn(2, 2)
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()
    overrides = [f"cache_dir={zk_cache}"]
    result = auto_prove_training_step(before, model, (x, y), 0.1, work_dir=tmp_path / "proof", overrides=overrides)
    assert (result["status"], result["proof_type"], result["kind"]) == ("proved", "zk-halo2", "sgd")
    with AutoProver(tmp_path / "verifier", overrides) as verifier:
        assert verifier.verify(training_step(before, model, (x, y), 0.1), result).ok
        verdict = verifier.verify(training_step(before, model, (x.flip(0), y), 0.1), result)
    assert (verdict.ok, verdict.reason) == (False, "commitment-mismatch")


def test_auto_prover_labels_a_fallback_and_its_result_verifies(tmp_path, zk_cache, make_prover):
    crash = make_prover("crash")
    prover = AutoProver(
        tmp_path, [f"cache_dir={zk_cache}", "handler=fallback", "retry=none", f"prover.binary={crash}"]
    )
    step = train_steps(1, seed=4)[0]
    result = prover.prove(step)
    prover.close()
    assert result.status == "proved" and result.proof_type == "freivalds" and result.strategy == "freivalds"
    assert prover.verify(step, result).ok
    other_batch = dataclasses.replace(step, inputs=step.inputs.flip(0))
    assert prover.verify(other_batch, result).reason == "commitment-mismatch"


def test_inconsistent_states_are_rejected_before_proving(tmp_path):
    model = TINY.build()
    other = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    with pytest.raises(InvalidModelStateError, match="different architectures"):
        auto_prove_training_step(model, other, (torch.randn(2, 4), torch.randn(2, 2)), 0.1, work_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_auto_prove_training_step_detects_a_lora_model_and_proves_its_step(tmp_path, zk_cache):
    model = lora_model(seed=5)
    before = copy.deepcopy(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR)
    x, y = torch.randn(2, 4), torch.randn(2, 2)
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()
    overrides = [f"cache_dir={zk_cache}"]
    result = auto_prove_training_step(before, model, {"inputs": x, "targets": y}, LR, work_dir=tmp_path / "proof", overrides=overrides)
    assert (result.status, result.proof_type, result["kind"]) == ("proved", "zk-halo2", "lora")
    assert result["commitment"]["base"] == result.response.public["commitment"]["base"]
    with AutoProver(tmp_path / "verifier", overrides) as verifier:
        assert verifier.verify(training_step(before, model, (x, y), LR), result).ok
