"""The seed's API observed with real (fake) prover programs: results, layering (AutoProver proves
or raises; the failure action is the integration's), modes, SGD/LoRA detection, cache_dir, and
verification against the step's own commitments."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from pot_zk.auditor_integration import ProofFailureAction, create_zk_integration
from pot_zk.auto_prover import AutoProver, auto_prove_training_step, training_step
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError, RetryExhaustedError, WitnessBuilderError
from pot_zk.kinds.lora.step import attach_lora

from seed_examples import LEARNING_RATE, seed_namespace

NO_SLEEP = {"sleep": lambda seconds: None}


def events(run_dir, name: str) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "audit.jsonl").read_text().splitlines()) if r["event"] == name]


def sgd_step(seed: int = 0):
    namespace = seed_namespace(seed)
    return namespace["model_before"], namespace["model_after"], namespace["batch_data"]


def lora_step(seed: int = 0):
    """An honest SGD step on the adapters of a tiny LoRA model: (before, after, batch)."""
    torch.manual_seed(seed)
    model = attach_lora(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)), (0,), rank=2, alpha=4.0)
    with torch.no_grad():
        model[0].lora_B.normal_(0.0, 0.5)
    before = copy.deepcopy(model)
    batch = (torch.rand(2, 4) * 2 - 1, torch.rand(2, 2) - 0.5)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(batch[0]), batch[1]).backward()
    optimizer.step()
    return before, model, batch


def test_a_result_reads_as_the_seeds_dictionary_and_as_attributes(tmp_path, make_prover):
    before, after, batch = sgd_step()
    result = auto_prove_training_step(before, after, batch, LEARNING_RATE, work_dir=tmp_path / "w",
                                      overrides=[f"prover.binary={make_prover('ok')}"])
    assert (result["proof_type"], result.proof_type, result["success"], result["kind"]) == ("zk-halo2", "zk-halo2", True, "sgd")
    assert json.loads(result["proof"])["step"] == 0 and result["proof"] == result.proof_path.read_bytes()
    assert result.get("proof_hash", "absent") == "absent"
    with pytest.raises(KeyError, match="proof_type"):
        result["proof_hash"]
    assert set(result) == set(result.KEYS) and result["commitment"] == result.statement.commitment.to_dict()


def test_auto_prover_raises_the_final_error_and_the_modes_retries_apply(tmp_path, make_prover):
    crash = make_prover("crash")
    before, after, batch = sgd_step()
    for mode, attempts in (("development", 4), ("research", 2), ("production", 1)):
        with pytest.raises(RetryExhaustedError) as caught:
            auto_prove_training_step(before, after, batch, LEARNING_RATE, work_dir=tmp_path / mode, **NO_SLEEP,
                                     overrides=[f"mode={mode}", f"prover.binary={crash}", "srs.allow_dev_srs=true"])
        assert caught.value.attempts == attempts, mode
        assert caught.value.last_error.exit_code == 1
        assert events(tmp_path / mode, "run.end")[0]["status"] == "halted"
        assert json.loads((tmp_path / mode / "stats.json").read_text())["results"] == {"failed": 1}


@pytest.mark.parametrize("action", ["continue", "retry"])
def test_auto_prover_refuses_the_trainers_failure_actions(tmp_path, action):
    with pytest.raises(ConfigurationError, match=f"handler={action}") as caught:
        AutoProver(tmp_path, [f"handler={action}"])
    assert caught.value.options == ["fail_fast", "fallback"]


def test_disabled_mode_runs_no_prover_and_returns_a_result_that_says_so(tmp_path, make_prover):
    crash = make_prover("crash")
    before, after, batch = sgd_step()
    overrides = ["mode=disabled", f"prover.binary={crash}"]
    auto = auto_prove_training_step(before, after, batch, LEARNING_RATE, work_dir=tmp_path / "auto", overrides=overrides)
    assert events(tmp_path / "auto", "attempt") == [] and len(events(tmp_path / "auto", "commitment")) == 1
    zk = create_zk_integration(enabled=False, run_dir=tmp_path / "zk", overrides=[f"prover.binary={crash}"])
    result = zk.generate_training_proof(before, after, batch, LEARNING_RATE, step=3, epoch=0)
    zk.close()
    for disabled in (auto, result):
        assert (disabled["proof"], disabled["proof_type"], disabled["status"], disabled["success"]) == (None, "disabled", "disabled", False)
        assert (disabled.proof, disabled.proof_type, disabled.attempts, disabled["kind"]) == (None, "disabled", 0, "sgd")
    assert (result["step"], result["epoch"]) == (3, 0) and result["commitment"] == result.statement.commitment.to_dict()
    assert events(tmp_path / "zk", "attempt") == [] and events(tmp_path / "zk", "commitment")[0]["step"] == 3
    assert events(tmp_path / "zk", "run.end")[0]["status"] == "completed" and (tmp_path / "zk" / "stats.json").is_file()
    stats = zk.get_stats()
    assert (stats["requested"], stats["results"], stats["success_rate"], stats["enabled"]) == (0, {}, 0.0, False)


@pytest.mark.parametrize("entry", ["auto_prover", "integration"])
def test_lora_is_detected_from_the_models_and_its_fallback_proof_verifies(tmp_path, make_prover, entry):
    before, after, batch = lora_step()
    overrides = [f"prover.binary={make_prover('crash')}", "handler=fallback", "retry=none"]
    if entry == "auto_prover":
        result = auto_prove_training_step(before, after, batch, LEARNING_RATE, work_dir=tmp_path / "run", overrides=overrides)
    else:
        zk = create_zk_integration(run_dir=tmp_path / "run", overrides=overrides)
        result = zk.generate_training_proof(before, after, batch, LEARNING_RATE, step=0, epoch=0)
    assert (result["kind"], result["proof_type"]) == ("lora", "freivalds") and "base" in result["commitment"]
    with AutoProver(tmp_path / "verifier", []) as verifier:
        assert verifier.verify(training_step(before, after, batch, LEARNING_RATE), result).ok


def test_lora_models_whose_base_changed_are_rejected(tmp_path):
    before, after, batch = lora_step()
    with torch.no_grad():
        after[2].weight.add_(0.01)
    with pytest.raises(InvalidModelStateError, match="frozen base changed") as caught:
        auto_prove_training_step(before, after, batch, LEARNING_RATE, work_dir=tmp_path / "w")
    assert caught.value.actual == ["2.weight"]
    assert not (tmp_path / "w").exists()


def test_a_batch_in_neither_seed_form_is_a_witness_error_before_any_file(tmp_path):
    before, after, _ = sgd_step()
    with pytest.raises(WitnessBuilderError, match=r"\(inputs, targets\)") as caught:
        auto_prove_training_step(before, after, {"x": 1, "y": 2}, LEARNING_RATE, work_dir=tmp_path / "w")
    assert caught.value.actual_format == ["x", "y"]
    assert not (tmp_path / "w").exists()


def test_a_proof_verifies_only_against_the_step_it_was_made_for(tmp_path, make_prover):
    """The verifier recomputes the commitments from the step it is given: the proof of one batch
    does not verify for another batch with the same weights."""
    before, after, batch = sgd_step()
    step = training_step(before, after, batch, LEARNING_RATE)
    with AutoProver(tmp_path, [f"prover.binary={make_prover('crash')}", "handler=fallback", "retry=none"]) as prover:
        result = prover.prove(step)
        other = training_step(before, after, {"inputs": batch["inputs"].flip(0), "targets": batch["targets"]}, LEARNING_RATE)
        assert result.proof_type == "freivalds" and prover.verify(step, result).ok
        verdict = prover.verify(other, result)
    assert (verdict.ok, verdict.reason) == (False, "commitment-mismatch")


@pytest.mark.parametrize("action, status, proof_type", [
    ("continue", "failed", None),
    ("retry", "parked", None),
    ("fallback", "proved", "freivalds"),
])
def test_the_integration_applies_its_failure_action_to_a_training_step(tmp_path, make_prover, action, status, proof_type):
    before, after, batch = sgd_step()
    zk = create_zk_integration(failure_action=action, max_retries=0, run_dir=tmp_path / "run",
                               overrides=[f"prover.binary={make_prover('crash')}"])
    result = zk.generate_training_proof(before, after, batch, LEARNING_RATE, step=2, epoch=1)
    assert (result.status, result.proof_type, result.step) == (status, proof_type, 2)
    assert zk.get_stats()["success_rate"] == (1.0 if status == "proved" else 0.0)
    assert zk.get_stats()["failure_action"] == action


def test_fail_fast_raises_out_of_the_integration(tmp_path, make_prover):
    before, after, batch = sgd_step()
    zk = create_zk_integration(failure_action=ProofFailureAction.FAIL_FAST, max_retries=1, run_dir=tmp_path / "run",
                               overrides=[f"prover.binary={make_prover('crash')}"], **NO_SLEEP)
    with pytest.raises(RetryExhaustedError) as caught, zk:
        zk.generate_training_proof(before, after, batch, LEARNING_RATE, step=1, epoch=1)
    assert caught.value.attempts == 2 and zk.get_stats()["results"] == {"failed": 1}
    assert [e["status"] for e in events(tmp_path / "run", "run.end")] == ["halted"]


@pytest.mark.parametrize("arguments, valid", [
    ({"failure_action": "explode"}, "continue, fail_fast, fallback, retry"),
    ({"mode": "explode"}, "development, disabled, production, research"),
])
def test_a_bad_failure_action_or_mode_is_a_configuration_error_naming_the_valid_ones(tmp_path, arguments, valid):
    with pytest.raises(ConfigurationError, match=f"'explode'; valid: {valid}"):
        create_zk_integration(run_dir=tmp_path / "run", **arguments)
    assert not (tmp_path / "run").exists()


def test_the_mode_sets_the_failure_action_unless_one_is_given(tmp_path):
    assert create_zk_integration(mode="research", run_dir=tmp_path / "a").get_stats()["failure_action"] == "continue"
    production = create_zk_integration(mode="production", run_dir=tmp_path / "b", overrides=["srs.allow_dev_srs=true"])
    assert production.get_stats()["failure_action"] == "fail_fast" and production.runtime.schedule.max_attempts == 1
    with pytest.raises(ConfigurationError, match="srs.path"):
        create_zk_integration(mode="production", run_dir=tmp_path / "c")
    with pytest.raises(ConfigurationError, match="enabled=False"):
        create_zk_integration(enabled=False, mode="production", run_dir=tmp_path / "d")


def test_the_integration_uses_the_configured_cache_dir(tmp_path, make_prover, monkeypatch):
    monkeypatch.setenv("POT_ZK_CACHE", str(tmp_path / "env-cache"))
    before, after, batch = sgd_step()
    overrides = [f"prover.binary={make_prover('ok')}"]
    chosen = create_zk_integration(run_dir=tmp_path / "a", cache_dir=tmp_path / "it's keys", overrides=overrides)
    default = create_zk_integration(run_dir=tmp_path / "b", overrides=overrides)
    for zk, expected in ((chosen, tmp_path / "it's keys"), (default, tmp_path / "env-cache")):
        result = zk.generate_training_proof(before, after, batch, LEARNING_RATE, step=0, epoch=0)
        assert json.loads(result["proof"])["cache_dir"] == str(expected)
        job = zk.prove_job(1, zk.runtime.run_dir / "witness" / "step-00000000.safetensors")
        assert json.loads(Path(job.response.artifacts["proof"]).read_text())["cache_dir"] == str(expected)
