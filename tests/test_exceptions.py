"""The error classes under the seed's names: constructor keywords, attributes, audit records."""

from __future__ import annotations

import pytest

from pot_zk.exceptions import (
    InvalidModelStateError,
    PotZkError,
    ProofGenerationError,
    ProofVerificationError,
    ProverCrashError,
    ProverNotFoundError,
    RetryExhaustedError,
    WitnessBuilderError,
    ZKProofError,
)


def test_proof_generation_error_takes_the_seeds_keywords_as_attributes_and_record_keys():
    error = ProofGenerationError("no proof", binary_name="prove_sgd_stdin", exit_code=70, stderr="x" * 3000 + "last words")
    assert (error.binary_name, error.exit_code) == ("prove_sgd_stdin", 70)
    assert error.stderr.endswith("last words") and len(error.stderr) == 2000
    record = error.to_record()
    assert (record["binary_name"], record["exit_code"], record["stderr"]) == ("prove_sgd_stdin", 70, error.stderr)


def test_prover_not_found_error_has_binary_name_and_search_paths():
    error = ProverNotFoundError("prove_sgd_stdin", ["/opt/provers"])
    assert (error.binary_name, error.search_paths) == ("prove_sgd_stdin", ["/opt/provers"])
    assert error.to_record()["search_paths"] == ["/opt/provers"]
    assert "/opt/provers" in str(error)


def test_state_errors_take_the_seeds_format_keywords():
    error = InvalidModelStateError("bad", expected_format="LoRA with adapter matrices", actual_format="Incomplete LoRA structure")
    assert (error.expected, error.actual) == ("LoRA with adapter matrices", "Incomplete LoRA structure")
    assert (error.expected_format, error.actual_format) == (error.expected, error.actual)
    assert error.to_record()["expected"] == "LoRA with adapter matrices"
    with pytest.raises(TypeError, match="not both"):
        InvalidModelStateError("bad", expected="a", expected_format="b")
    witness = WitnessBuilderError("Invalid learning rate", model_type="sgd")
    assert witness.model_type == "sgd" and witness.to_record()["model_type"] == "sgd"


def test_proof_verification_error_has_proof_type():
    error = ProofVerificationError("rejected", proof_type="zk-halo2")
    assert (error.proof_type, error.reason) == ("zk-halo2", "invalid-proof")


def test_retry_exhausted_error_takes_the_seeds_signature_or_makes_its_message():
    last = ProverCrashError("died", exit_code=-9)
    seeds = RetryExhaustedError("Failed to generate proof after 4 attempts", 4, last)
    assert (str(seeds), seeds.attempts, seeds.last_error) == ("Failed to generate proof after 4 attempts", 4, last)
    ours = RetryExhaustedError(attempts=2, last_error=last)
    assert str(ours) == "gave up after 2 attempt(s); last error: ProverCrashError: died"
    assert ours.to_record()["last_error"]["exit_code"] == -9


def test_zk_proof_error_is_the_seeds_name_for_the_base_class():
    assert ZKProofError is PotZkError
    assert issubclass(RetryExhaustedError, ZKProofError)
