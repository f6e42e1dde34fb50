"""zk-halo2 proofs of LoRA steps with the real prover: honest steps verify and chain on the
adapters; a wrong update, base model, rank or alpha is rejected with a named reason."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from pot_zk.backends.ezkl.backend import EZKL
from pot_zk.backends.ezkl import adapter as ezkl_adapter
from pot_zk.backends.ezkl import halo2
from pot_zk.backends.base import VerifierOptions
from pot_zk.backends.registry import commit_step
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.exceptions import WitnessBuilderError
from pot_zk.kinds.registry import save_training_step
from pot_zk.proving.strategies import ProgramStrategy
from pot_zk.core.protocol import ProverRequest
from pot_zk.verify.step import StepStatement, step_keys, verify_step

from lora_support import BASE, lora_model, lora_spec, lora_steps
from zk_support import tiny_spec

pytestmark = pytest.mark.prover


def _prove_with_program(step, work: Path, name: str, zk_cache: Path):
    witness = work / f"{name}.safetensors"
    save_training_step(step, witness)
    prover = ProgramStrategy(name="zk-halo2", binary="pot-zk-ezkl-prover", timeout_s=600)
    job = ProverRequest(0, "lora", EZKL.statement_for_step(step).to_dict(), str(witness), str(zk_cache), str(work / name))
    return prover(job)


@pytest.fixture(scope="module")
def chain(zk_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two consecutive honest LoRA steps, each proven by the installed prover program."""
    work = tmp_path_factory.mktemp("lora-chain")
    return [(step, _prove_with_program(step, work, f"step{i}", zk_cache)) for i, step in enumerate(lora_steps(2))]


def _keys(spec, zk_cache: Path):
    """The verifier's own: the circuit and verifying key it derives from ``spec`` under the dev SRS in its cache."""
    return step_keys(spec, "zk-halo2", VerifierOptions(zk_cache, zk_cache / "verifier-work"))


def _verify(zk_cache: Path, proof: Path, commitment: StepCommitment, spec=None):
    spec = spec or lora_spec()
    ezkl_adapter.dev_srs(zk_cache, halo2.compiled_circuit(lora_spec(), zk_cache).logrows)  # the session's dev SRS exists
    return verify_step(StepStatement(spec, commitment), "zk-halo2", proof, cache_dir=zk_cache, keys=_keys(spec, zk_cache))


def test_honest_lora_step_proves_and_verifies(chain, zk_cache):
    step, response = chain[0]
    assert response.proof_type == "zk-halo2"
    commitment = StepCommitment.from_dict(response.public["commitment"])
    assert commitment == commit_step(step, EZKL.statement_for_step(step))
    assert commitment.base is not None
    verdict = _verify(zk_cache, Path(response.artifacts["proof"]), commitment)
    assert verdict.ok, verdict.message


def test_lora_steps_chain_on_the_adapters_with_a_constant_base(chain):
    first, second = (StepCommitment.from_dict(r.public["commitment"]) for _, r in chain)
    assert first.w_after == second.w_before
    assert first.base == second.base
    assert first.w_before != first.w_after


@pytest.mark.parametrize("adapter", ["0.lora_A", "0.lora_B"])
def test_tampered_adapter_update_is_refused_and_rejected(adapter, zk_cache, tmp_path):
    step = lora_steps(1, seed=3)[0]
    step.adapters_after[adapter][1, 0] += 0.01
    with pytest.raises(WitnessBuilderError, match="not the SGD update"):
        halo2.prove_step(step, lora_spec(), zk_cache, None, tmp_path / "refused")
    proof = halo2.prove_step(step, lora_spec(), zk_cache, None, tmp_path / "cheat", enforce_tolerance=False)
    verdict = _verify(zk_cache, proof.proof_path, proof.commitment)
    assert not verdict.ok and verdict.reason == "update-out-of-tolerance"


def _base_commitment_of_another_seed() -> str:
    step = lora_steps(1, model=lora_model(seed=7))[0]
    return commit_step(step, EZKL.statement_for_step(step)).base


def test_proof_for_another_base_model_is_rejected(chain, zk_cache):
    """The verifier declares the base it fine-tuned from; a proof made over another base
    (here: another seed's W0) does not carry that base's commitment."""
    _, response = chain[0]
    other_base = _base_commitment_of_another_seed()
    commitment = StepCommitment.from_dict(response.public["commitment"])
    for declared in (dataclasses.replace(commitment, base=other_base), dataclasses.replace(commitment, base=None)):
        verdict = _verify(zk_cache, Path(response.artifacts["proof"]), declared)
        assert not verdict.ok and verdict.reason == "commitment-mismatch"


def test_swapping_the_base_hash_inside_the_proof_breaks_it(chain, zk_cache, tmp_path):
    _, response = chain[0]
    other_base = _base_commitment_of_another_seed()
    proof = json.loads(Path(response.artifacts["proof"]).read_text())
    proof["instances"][0][3] = other_base
    altered = tmp_path / "proof.json"
    altered.write_text(json.dumps(proof))
    claimed = dataclasses.replace(StepCommitment.from_dict(response.public["commitment"]), base=other_base)
    verdict = _verify(zk_cache, altered, claimed)
    assert not verdict.ok and verdict.reason == "invalid-proof"


def test_proof_checked_against_another_rank_or_alpha_is_rejected(chain, zk_cache):
    _, response = chain[0]
    commitment = StepCommitment.from_dict(response.public["commitment"])
    proof = Path(response.artifacts["proof"])
    other_rank = _verify(zk_cache, proof, commitment, lora_spec(rank=3, alpha=6.0))
    assert not other_rank.ok and other_rank.reason == "wrong-circuit"
    other_alpha = _verify(zk_cache, proof, commitment, lora_spec(alpha=8.0))
    assert not other_alpha.ok and other_alpha.reason == "invalid-proof"


def test_lora_proof_is_not_accepted_as_an_sgd_statement(chain, zk_cache):
    _, response = chain[0]
    commitment = StepCommitment.from_dict(response.public["commitment"])
    verdict = _verify(zk_cache, Path(response.artifacts["proof"]), commitment, tiny_spec())
    assert not verdict.ok and verdict.reason == "wrong-circuit"


def test_peft_model_step_is_detected_and_proven_without_glue(zk_cache, tmp_path):
    peft = pytest.importorskip("peft")
    torch.manual_seed(5)
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["0"], lora_dropout=0.0, init_lora_weights=False)
    model = peft.get_peft_model(BASE.build(), config)
    step = lora_steps(1, seed=5, model=model)[0]
    assert EZKL.statement_for_step(step) == lora_spec()
    response = _prove_with_program(step, tmp_path, "peft", zk_cache)
    commitment = StepCommitment.from_dict(response.public["commitment"])
    verdict = _verify(zk_cache, Path(response.artifacts["proof"]), commitment)
    assert verdict.ok, verdict.message

