"""zk-halo2 proofs of SGD steps with the real prover: honest steps verify, anything else fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pot_zk.backends.ezkl.backend import EZKL
from pot_zk.backends.ezkl import adapter as ezkl_adapter
from pot_zk.backends.ezkl import halo2
from pot_zk.backends.base import VerifierOptions
from pot_zk.backends.registry import commit_step
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.exceptions import ProofGenerationError, WitnessBuilderError
from pot_zk.kinds.registry import save_training_step
from pot_zk.proving.strategies import ProgramStrategy
from pot_zk.core.protocol import ProverRequest
from pot_zk.verify.step import StepStatement, step_keys, verify_step

from run_support import UNSHARED
from zk_support import tiny_spec, train_steps

pytestmark = pytest.mark.prover


@pytest.fixture(scope="module")
def chain(zk_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """Three consecutive honest steps, each proven by the installed prover program."""
    work = tmp_path_factory.mktemp("chain")
    prover = ProgramStrategy(name="zk-halo2", binary="pot-zk-ezkl-prover", timeout_s=600)
    proofs = []
    for index, step in enumerate(train_steps(3)):
        witness = work / f"step{index}.safetensors"
        save_training_step(step, witness)
        job = ProverRequest(index, "sgd", tiny_spec().to_dict(), str(witness), str(zk_cache), str(work / f"proof{index}"))
        proofs.append((step, prover(job)))
    return proofs


def _srs(zk_cache: Path) -> ezkl_adapter.SrsRef:
    circuit = halo2.compiled_circuit(tiny_spec(), zk_cache)
    return ezkl_adapter.dev_srs(zk_cache, circuit.logrows)


def _keys(spec, zk_cache: Path):
    """The verifier's own: the circuit and verifying key it derives from ``spec`` under the dev SRS in its cache."""
    return step_keys(spec, "zk-halo2", VerifierOptions(zk_cache, zk_cache / "verifier-work"))


def _verify(zk_cache: Path, proof: Path, commitment: StepCommitment, **spec_overrides):
    statement = StepStatement(tiny_spec(**spec_overrides), commitment)
    return verify_step(statement, "zk-halo2", proof, cache_dir=zk_cache, keys=_keys(statement.spec, zk_cache))


def test_honest_step_proves_and_verifies(chain, zk_cache):
    step, response = chain[0]
    assert response.proof_type == "zk-halo2"
    assert response.public["srs"]["provenance"] == "dev-srs"
    commitment = StepCommitment.from_dict(response.public["commitment"])
    assert commitment == commit_step(step, EZKL.statement_for_step(step))
    verdict = _verify(zk_cache, Path(response.artifacts["proof"]), commitment)
    assert verdict.ok, verdict.message


def test_consecutive_steps_chain_through_commitments(chain):
    commitments = [StepCommitment.from_dict(r.public["commitment"]) for _, r in chain]
    assert commitments[0].w_after == commitments[1].w_before
    assert commitments[1].w_after == commitments[2].w_before
    assert len({c.batch for c in commitments}) == 3


def test_flipped_proof_byte_is_rejected(chain, zk_cache, tmp_path):
    _, response = chain[0]
    proof = json.loads(Path(response.artifacts["proof"]).read_text())
    proof["proof"][100] ^= 0x01
    proof["hex_proof"] = None
    altered = tmp_path / "proof.json"
    altered.write_text(json.dumps(proof))
    verdict = _verify(zk_cache, altered, StepCommitment.from_dict(response.public["commitment"]))
    assert not verdict.ok and verdict.reason == "invalid-proof"


def test_declared_commitment_other_than_the_proofs_is_rejected(chain, zk_cache):
    _, response = chain[0]
    _, other = chain[1]
    commitment = StepCommitment.from_dict(response.public["commitment"])
    wrong = StepCommitment.from_dict({**commitment.to_dict(), "batch": other.public["commitment"]["batch"]})
    verdict = _verify(zk_cache, Path(response.artifacts["proof"]), wrong)
    assert not verdict.ok and verdict.reason == "commitment-mismatch"


def test_altered_public_commitment_inside_the_proof_is_rejected(chain, zk_cache, tmp_path):
    _, response = chain[0]
    _, other = chain[1]
    proof = json.loads(Path(response.artifacts["proof"]).read_text())
    proof["instances"][0][1] = other.public["commitment"]["batch"]
    altered = tmp_path / "proof.json"
    altered.write_text(json.dumps(proof))
    claimed = StepCommitment.from_dict({**response.public["commitment"], "batch": other.public["commitment"]["batch"]})
    verdict = _verify(zk_cache, altered, claimed)
    assert not verdict.ok and verdict.reason == "invalid-proof"


def test_proof_checked_against_another_learning_rate_is_rejected(chain, zk_cache):
    _, response = chain[0]
    commitment = StepCommitment.from_dict(response.public["commitment"])
    verdict = _verify(zk_cache, Path(response.artifacts["proof"]), commitment, learning_rate=0.05)
    assert not verdict.ok and verdict.reason == "invalid-proof"


def test_proof_checked_against_another_shape_is_rejected(chain, zk_cache):
    _, response = chain[0]
    commitment = StepCommitment.from_dict(response.public["commitment"])
    verdict = _verify(zk_cache, Path(response.artifacts["proof"]), commitment, batch_size=3)
    assert not verdict.ok and verdict.reason in {"wrong-circuit", "invalid-proof"}


def test_untrue_update_is_refused_by_the_prover(zk_cache, tmp_path):
    step = train_steps(1, seed=1)[0]
    step.weights_after["0.weight"][0, 0] += 0.01
    with pytest.raises(WitnessBuilderError, match="not the SGD update"):
        halo2.prove_step(step, tiny_spec(), zk_cache, None, tmp_path)


def test_untrue_update_proven_by_a_cheating_prover_is_rejected(zk_cache, tmp_path):
    step = train_steps(1, seed=1)[0]
    step.weights_after["2.bias"][1] -= 0.01
    proof = halo2.prove_step(step, tiny_spec(), zk_cache, None, tmp_path, enforce_tolerance=False)
    verdict = _verify(zk_cache, proof.proof_path, proof.commitment)
    assert not verdict.ok and verdict.reason == "update-out-of-tolerance"
    # hiding the residual in the public values breaks the proof itself
    data = json.loads(proof.proof_path.read_text())
    data["instances"][0][3:] = [ezkl_adapter.int_to_felt(0)] * (len(data["instances"][0]) - 3)
    proof.proof_path.write_text(json.dumps(data))
    verdict = _verify(zk_cache, proof.proof_path, proof.commitment)
    assert not verdict.ok and verdict.reason == "invalid-proof"


def test_forced_scale_rebase_overflow_never_yields_a_proof(zk_cache, tmp_path, monkeypatch):
    """With scale_rebase_multiplier=10 ezkl itself refuses, at gen_witness, before pot-zk's
    decode check is reached (that check is tested on a poisoned cached circuit below)."""
    real = ezkl_adapter._run_args

    def with_rebase_multiplier_10(values):
        args = real(values)
        args.scale_rebase_multiplier = 10
        return args

    monkeypatch.setattr(ezkl_adapter, "_run_args", with_rebase_multiplier_10)
    step = train_steps(1)[0]
    with pytest.raises(ProofGenerationError, match="ezkl gen_witness failed") as raised:
        halo2.prove_step(step, tiny_spec(), tmp_path / "cache", None, tmp_path / "out")
    assert raised.value.retryable is False and raised.value.context["stage"] == "gen_witness"
    assert not (tmp_path / "out" / "proof.json").exists()


def test_decode_check_catches_a_circuit_that_computes_something_else(zk_cache, tmp_path):
    """A cache entry holding another circuit (here: the one for lr=0.05) decodes to outputs that
    disagree with the float reference: proving stops with a decode-check error."""
    cache = tmp_path / "cache"
    _srs(zk_cache)  # the dev SRS exists in the session cache even when this test runs alone
    shutil.copytree(zk_cache / "srs", cache / "srs", ignore=UNSHARED)
    honest = halo2.compiled_circuit(tiny_spec(), zk_cache)
    other = halo2.compiled_circuit(tiny_spec(learning_rate=0.05), zk_cache)
    poisoned = cache / "circuits" / honest.circuit_id
    shutil.copytree(other.directory, poisoned)
    step = train_steps(1, seed=2)[0]
    with pytest.raises(ProofGenerationError, match="decoded circuit output disagrees") as raised:
        halo2.prove_step(step, tiny_spec(), cache, None, tmp_path / "out")
    assert raised.value.context["stage"] == "decode-check"


def test_values_beyond_the_fixed_point_range_are_rejected_before_proving(tmp_path):
    step = train_steps(1)[0]
    step.inputs[0, 0] = 1e6
    with pytest.raises(WitnessBuilderError, match="exceed the fixed-point range"):
        halo2.prove_step(step, tiny_spec(), tmp_path / "cache", None, tmp_path / "out")
    assert not (tmp_path / "cache").exists()


def test_independent_compilations_derive_the_same_verifying_key(zk_cache, tmp_path):
    """ezkl writes some settings in hash-map order; the adapter canonicalises them so a
    verifier compiling the statement itself gets the prover's verifying key."""
    srs = _srs(zk_cache)
    keys = set()
    for attempt in range(3):
        circuit = halo2.compiled_circuit(tiny_spec(), tmp_path / f"cache{attempt}")
        keys.add(ezkl_adapter.verifying_key(circuit, srs).read_bytes())
    assert len(keys) == 1
