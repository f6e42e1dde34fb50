"""The seed's provers with prover programs that succeed, crash or are missing: AutoProver's
prove_sgd_step / prove_lora_step and its lora_config, and the core prover (pot_zk.prover) with
its SGD fallback, which returns a proof that verifies or raises, never a made-up proof."""

from __future__ import annotations

import copy
import json

import peft
import pytest
import torch

from pot_zk.auto_prover import AutoProver
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError, ProofGenerationError, RetryExhaustedError
from pot_zk.kinds.lora.step import attach_lora
from pot_zk.prover import TrainingStepProver

from seed_examples import LEARNING_RATE, seed_namespace


def events(run_dir, name: str) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "audit.jsonl").read_text().splitlines()) if r["event"] == name]


def sgd_step():
    namespace = seed_namespace()
    return namespace["model_before"], namespace["model_after"], namespace["batch_data"]


def trained(model: torch.nn.Module, seed: int = 0):
    """(model before, model after one SGD step of its trainable parameters, batch)."""
    torch.manual_seed(seed)
    before = copy.deepcopy(model)
    batch = (torch.rand(2, 4) * 2 - 1, torch.rand(2, 2) - 0.5)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(batch[0]), batch[1]).backward()
    optimizer.step()
    return before, model, batch


def mlp() -> torch.nn.Sequential:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


def lora_step(layers=(0,), rank: int = 2, alpha: float = 4.0):
    model = attach_lora(mlp(), layers, rank=rank, alpha=alpha)
    with torch.no_grad():
        for index in layers:
            model[index].lora_B.normal_(0.0, 0.5)
    return trained(model)


def peft_step(**config):
    options = {"r": 2, "lora_alpha": 4, "target_modules": ["0"], "lora_dropout": 0.0, "init_lora_weights": False, **config}
    return trained(peft.get_peft_model(mlp(), peft.LoraConfig(**options))), peft.LoraConfig(**options)


def test_prove_sgd_step_and_prove_lora_step_prove_their_kind(tmp_path, make_prover):
    with AutoProver(tmp_path / "run", [f"prover.binary={make_prover('ok')}"], lora_config={"rank": 2, "alpha": 4.0}) as prover:
        full = prover.prove_sgd_step(*sgd_step(), LEARNING_RATE, 7, 1)
        lora = prover.prove_lora_step(*lora_step(), LEARNING_RATE, epoch=1)
    assert (full["kind"], full["step"], full["epoch"], full["proof_type"]) == ("sgd", 7, 1, "zk-halo2")
    assert (lora["kind"], lora["step"], lora["proof_type"]) == ("lora", 0, "zk-halo2") and "base" in lora["commitment"]


@pytest.mark.parametrize("method, models, other", [
    ("prove_sgd_step", lora_step, "prove_lora_step"),
    ("prove_lora_step", sgd_step, "prove_sgd_step"),
])
def test_each_method_refuses_the_other_kind_before_any_prover_runs(tmp_path, make_prover, method, models, other):
    with AutoProver(tmp_path / "run", [f"prover.binary={make_prover('ok')}"]) as prover:
        with pytest.raises(InvalidModelStateError, match=f"; {other} proves it"):
            getattr(prover, method)(*models(), LEARNING_RATE)
    assert events(tmp_path / "run", "attempt") == [] and not (tmp_path / "run" / "witness").exists()


def test_a_peft_lora_config_declares_the_adapters_a_lora_step_must_have(tmp_path, make_prover):
    (step, config) = peft_step()
    overrides = [f"prover.binary={make_prover('ok')}"]
    with AutoProver(tmp_path / "a", overrides, lora_config=config) as prover:
        assert prover.prove_lora_step(*step, LEARNING_RATE)["proof_type"] == "zk-halo2"
    for declared, difference in ((peft.LoraConfig(r=4, lora_alpha=4, target_modules=["0"]), "rank"),
                                 (peft.LoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"]), "target_modules")):
        with AutoProver(tmp_path / difference, overrides, lora_config=declared) as prover:
            with pytest.raises(InvalidModelStateError, match=f"differ from lora_config in {difference}") as caught:
                prover.prove_lora_step(*step, LEARNING_RATE)
        assert events(tmp_path / difference, "attempt") == []
    assert caught.value.expected == {"target_modules": ["0", "2"]} and caught.value.actual == {"target_modules": ["0"]}


@pytest.mark.parametrize("config, matches", [
    ({"rank": 2, "alpha": 4.0, "target_modules": ["0", "2"]}, True),
    ({"r": 2, "lora_alpha": 4, "target_modules": "[02]"}, True),
    ({"target_modules": ["2"]}, False),
    ({"target_modules": "2|4"}, False),
    ({"alpha": 8.0}, False),
    ({"rank": 1}, False),
])
def test_a_dict_lora_config_is_checked_as_peft_would_select_modules(tmp_path, make_prover, config, matches):
    before, after, batch = lora_step(layers=(0, 2))
    with AutoProver(tmp_path / "run", [f"prover.binary={make_prover('ok')}"], lora_config=config) as prover:
        if matches:
            assert prover.prove_lora_step(before, after, batch, LEARNING_RATE)["kind"] == "lora"
        else:
            with pytest.raises(InvalidModelStateError, match="differ from lora_config"):
                prover.prove_lora_step(before, after, batch, LEARNING_RATE)


@pytest.mark.parametrize("config", [{"rank": 2, "dropout": 0.1}, {"rank": 0}, {"alpha": -1.0}, {"target_modules": []},
                                    {"target_modules": "(0"}, "r=2"])
def test_a_bad_lora_config_is_a_configuration_error_before_anything_is_written(tmp_path, config):
    with pytest.raises(ConfigurationError, match="lora_config"):
        AutoProver(tmp_path / "run", lora_config=config)
    assert not (tmp_path / "run").exists()


def test_the_core_prover_proves_a_lora_step_as_lora(tmp_path, make_prover):
    before, after, batch = lora_step()
    with TrainingStepProver(AutoProver(tmp_path / "run", [f"prover.binary={make_prover('ok')}"], lora_config={"rank": 2})) as prover:
        result = prover.prove_step(before, after, batch, LEARNING_RATE)
    assert (result["kind"], result["proof_type"], result["step"]) == ("lora", "zk-halo2", 0)
    assert events(tmp_path / "run", "sgd.fallback") == []


def test_the_core_prover_proves_models_without_adapters_with_a_full_sgd_proof_that_verifies(tmp_path, make_prover):
    """Its SGD path, with a prover that crashes and the freivalds fallback: a real certificate
    the verifier checks against the step recomputed from the models."""
    before, after, batch = sgd_step()
    overrides = [f"prover.binary={make_prover('crash')}", "handler=fallback", "retry=none"]
    with TrainingStepProver(AutoProver(tmp_path / "run", overrides)) as prover:
        result = prover.prove_step(before, after, batch, LEARNING_RATE, 5)
        assert (result["kind"], result["proof_type"], result["step"]) == ("sgd", "freivalds", 5)
        assert prover.verify(before, after, batch, LEARNING_RATE, result).ok
        flipped = {"inputs": batch["inputs"].flip(0), "targets": batch["targets"]}
        assert prover.verify(before, after, flipped, LEARNING_RATE, result).reason == "commitment-mismatch"


def test_a_failed_lora_proof_falls_back_to_sgd_and_that_failure_is_raised_never_a_made_up_proof(tmp_path, make_prover):
    before, after, batch = lora_step()
    overrides = [f"prover.binary={make_prover('crash')}", "retry=none"]
    with TrainingStepProver(AutoProver(tmp_path / "run", overrides)) as prover:
        with pytest.raises(ProofGenerationError, match="^SGD fallback failed: prove_sgd_step proves a full SGD step") as caught:
            prover.prove_step(before, after, batch, LEARNING_RATE, 3)
    error = caught.value
    assert isinstance(error.__cause__, InvalidModelStateError) and not isinstance(error, RetryExhaustedError)
    assert isinstance(error.context["lora_error"], RetryExhaustedError) and "LoRA proof had failed: RetryExhaustedError" in str(error)
    assert error.to_record()["lora_error"]["last_error"]["exit_code"] == 1
    (fallback,) = events(tmp_path / "run", "sgd.fallback")
    assert (fallback["step"], fallback["error"]["error_class"]) == (3, "RetryExhaustedError")
    assert not (tmp_path / "run" / "proofs").exists()


def test_an_sgd_step_whose_proof_fails_raises_that_error_as_itself(tmp_path, make_prover):
    overrides = [f"prover.binary={make_prover('crash')}", "retry=none"]
    with TrainingStepProver(AutoProver(tmp_path / "run", overrides)) as prover:
        with pytest.raises(RetryExhaustedError):
            prover.prove_step(*sgd_step(), LEARNING_RATE)


def test_the_core_prover_refuses_invalid_models_before_any_prover_runs(tmp_path, make_prover):
    before, after, batch = lora_step()
    with torch.no_grad():
        after[2].weight.add_(0.01)
    with TrainingStepProver(AutoProver(tmp_path / "run", [f"prover.binary={make_prover('ok')}"])) as prover:
        with pytest.raises(InvalidModelStateError, match="frozen base changed"):
            prover.prove_step(before, after, batch, LEARNING_RATE)
    assert events(tmp_path / "run", "attempt") == []
