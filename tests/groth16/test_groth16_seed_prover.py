"""The seed's core prover (pot_zk.prover.TrainingStepProver) with the real zk-groth16 prover: a
full SGD step on the grid gets a zero-knowledge proof that verifies against the step recomputed
from the models, and a step that is not the statement's update gets a typed error, never a
proof."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from pot_zk.auto_prover import AutoProver, training_step
from pot_zk.backends.groth16.integers import dequantise
from pot_zk.backends.groth16.sgd.exact import exact_sgd_step
from pot_zk.backends.groth16.integers import quantise_batch
from pot_zk.exceptions import ProofGenerationError, WitnessBuilderError
from pot_zk.kinds.mlp import MlpArchitecture, flatten, unflatten
from pot_zk.prover import TrainingStepProver

from groth16_support import stop_holders

pytestmark = pytest.mark.prover

LR = 0.1


def grid_step(prover: AutoProver, exact: bool):
    """(model before, model after, batch) of a 4-3-2 MLP on the 2**-scale grid; the after model
    is the statement's exact update, or that update with one weight one grid step off."""
    torch.manual_seed(3)
    architecture = MlpArchitecture((4, 3, 2))
    model = architecture.build().double()
    batch = (torch.rand(2, 4, dtype=torch.float64) * 2 - 1, torch.rand(2, 2, dtype=torch.float64) * 2 - 1)
    spec = prover.spec_for(training_step(model, copy.deepcopy(model), batch, LR))
    on_grid = {name: torch.round(value * 2**spec.scale) / 2**spec.scale for name, value in model.state_dict().items()}
    batch = tuple(torch.from_numpy(dequantise(quantise_batch(t.numpy(), spec.scale, spec.value_bits), spec.scale)).reshape(t.shape) for t in batch)
    model.load_state_dict(on_grid)
    w = np.round(flatten(on_grid, architecture.param_shapes).numpy() * 2**spec.scale).astype(np.int64)
    x, y = (np.round(t.numpy() * 2**spec.scale).astype(np.int64) for t in batch)
    w_after = exact_sgd_step(spec, w, x, y)
    if not exact:
        w_after[0] += 1
    after = copy.deepcopy(model)
    after.load_state_dict(unflatten(torch.from_numpy(dequantise(w_after, spec.scale)), architecture.param_shapes))
    return model, after, batch


@pytest.fixture
def core_prover(tmp_path):
    cache = tmp_path / "cache"
    prover = TrainingStepProver(AutoProver(tmp_path / "run", ["prover=groth16", f"cache_dir={cache}", "retry=none"]))
    circuits = []
    yield prover, circuits
    prover.close()
    for circuit in circuits:
        stop_holders(cache, circuit)


def test_a_full_sgd_step_gets_a_zero_knowledge_proof_that_verifies(core_prover):
    prover, circuits = core_prover
    before, after, batch = grid_step(prover.auto_prover, exact=True)
    result = prover.prove_step(before, after, batch, LR)
    circuits.append(result["circuit"])
    assert (result["kind"], result["proof_type"], result["success"]) == ("sgd", "zk-groth16", True) and len(result["proof"]) == 256
    assert prover.verify(before, after, batch, LR, result).ok
    other = (batch[0].flip(0), batch[1])
    assert not prover.verify(before, after, other, LR, result).ok


def test_a_step_that_is_not_the_update_gets_a_typed_error_and_no_proof(core_prover, tmp_path):
    prover, circuits = core_prover
    before, after, batch = grid_step(prover.auto_prover, exact=False)
    circuits.append(prover.auto_prover.spec_for(training_step(before, after, batch, LR)).to_dict())
    with pytest.raises(WitnessBuilderError, match="not the exact step on this batch: 1 of 23 value"):
        prover.prove_step(before, after, batch, LR)
    assert not list((tmp_path / "run").glob("proofs/*/*"))


def test_a_proof_that_does_not_verify_is_a_failure_not_a_proof(tmp_path, make_prover):
    """review55: the seed's single-step API returned "proved" (and a zk success rate of 1.0) for
    256 random bytes its prover program answered with. Its answers are checked on receipt against
    the step's commitments, as a run's are."""
    cache = tmp_path / "cache"
    lying = make_prover("wrapped", "junk-proof")
    with TrainingStepProver(AutoProver(tmp_path / "run", ["prover=groth16", f"cache_dir={cache}", "retry=none", f"prover.binary={lying}", "prover.args=[]"])) as prover:
        before, after, batch = grid_step(prover.auto_prover, exact=True)
        with pytest.raises(ProofGenerationError, match="proof does not verify against the step's recorded commitments"):
            prover.prove_step(before, after, batch, LR)
        assert prover.auto_prover.stats.get_stats()["zk_success_rate"] == 0.0


def test_the_integration_api_counts_no_proof_that_does_not_verify(tmp_path, make_prover):
    """review55: create_zk_integration's generate_training_proof likewise (failure action
    continue: the step's result is failed, not proved)."""
    from pot_zk.auditor_integration import create_zk_integration

    lying = make_prover("wrapped", "junk-proof")
    integration = create_zk_integration(
        failure_action="continue", max_retries=0, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache",
        overrides=["prover=groth16", f"prover.binary={lying}", "prover.args=[]"],
    )
    try:
        shapes = AutoProver(tmp_path / "shapes", ["prover=groth16", f"cache_dir={tmp_path / 'cache'}"])  # the statement's grid
        try:
            before, after, batch = grid_step(shapes, exact=True)
        finally:
            shapes.close()
        proof = integration.generate_training_proof(before, after, batch, LR, architecture=MlpArchitecture((4, 3, 2)))
        assert proof.result.status == "failed" and "proof does not verify against the step's recorded commitments" in proof.result.error["message"]
        assert integration.get_stats()["zk_success_rate"] == 0.0
    finally:
        integration.close()


def test_a_key_the_program_swapped_into_the_cache_does_not_prove_a_step(tmp_path, make_prover):
    """review56: the seed's APIs declare no key, and a program that swapped a setup of its own
    into the cache (whose trapdoor it would know) had its proof counted. The key in the cache
    before the program runs is pinned, and a proof under another is refused."""
    cache = tmp_path / "cache"
    with TrainingStepProver(AutoProver(tmp_path / "honest", ["prover=groth16", f"cache_dir={cache}", "retry=none"])) as prover:
        before, after, batch = grid_step(prover.auto_prover, exact=True)
        circuit = prover.prove_step(before, after, batch, LR)["circuit"]
    stop_holders(cache, circuit)
    lying = make_prover("wrapped", "swap-key")
    with TrainingStepProver(AutoProver(tmp_path / "run", ["prover=groth16", f"cache_dir={cache}", "retry=none", f"prover.binary={lying}", "prover.args=[]"])) as prover:
        with pytest.raises(ProofGenerationError, match=r"\(keys-unavailable: the key in .* is not the run's"):
            prover.prove_step(before, after, batch, LR)
    assert list(cache.glob("groth16/*.original")), "the program did swap the key"


def test_prove_job_is_not_checked_against_a_step_generate_training_proof_numbered_alike(tmp_path):
    """review56: ZkIntegration.prove_job (a witness file alone) was checked against the
    commitments generate_training_proof had recorded for the same step number, and an honest
    proof of another witness was refused."""
    from pot_zk.auditor_integration import create_zk_integration
    from pot_zk.auto_prover import training_step

    cache = tmp_path / "cache"
    integration = create_zk_integration(failure_action="continue", max_retries=0, run_dir=tmp_path / "run", cache_dir=cache, overrides=["prover=groth16"])
    try:
        shapes = AutoProver(tmp_path / "shapes", ["prover=groth16", f"cache_dir={cache}"])
        try:
            before, after, batch = grid_step(shapes, exact=True)
        finally:
            shapes.close()
        assert integration.generate_training_proof(before, after, batch, LR, architecture=MlpArchitecture((4, 3, 2))).result.status == "proved"
        other = integration.setup.write_job(training_step(before, after, (batch[0].flip(0), batch[1].flip(0)), LR), 0, tmp_path / "elsewhere")
        again = integration.prove_job(0, other.witness_path, circuit=other.circuit, kind=other.kind, options=other.options)
        assert again.status == "proved", again.error
    finally:
        integration.close()
        stop_holders(cache, integration.setup.spec_for(training_step(before, after, batch, LR)).to_dict())
