"""Tests from a mutation review (review59) of the receipt check, the zk-groth16 verifier and
verify's notes: each decides a line that a mutation had changed with every other test passing
(the mutation in each docstring), and passes as the code is. The receipt check's tests use a
backend stand-in: the decision under test is the check's own, not the backend's."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from pot_zk.backends.base import Receipt
from pot_zk.backends.groth16.backend import GROTH16
from pot_zk.backends.groth16.keys import open_keys
from pot_zk.backends.groth16.verifier import verifier_key, verify_proof_file
from pot_zk.core.protocol import ProverRequest, ProverResponse
from pot_zk.exceptions import ConfigurationError, ProofVerificationError, ProverProtocolError
from pot_zk.proving.receipt import ReceiptCheck
from pot_zk.verify.report import RunReport
from pot_zk.verify.run_checks import COARSE_RATE_GRID_STEPS, check_outcomes_recorded, note_coarse_rate, note_free_state

from groth16_support import tiny_spec

pytestmark = pytest.mark.prover


class KeyedBackend:
    """A backend whose every proof checks out, under key K1; ``current`` is the key its cache
    holds now (None: no key yet). It records the key each answer was checked against."""

    proof_type = "zk-groth16"

    def __init__(self) -> None:
        self.current: str | None = None
        self.checked_against: list[str | None] = []

    def declared_key(self, manifest):
        return manifest.get("keys", {}).get("vk_sha256")

    def current_key(self, job):
        return self.current

    def check_on_receipt(self, job, response, record, key):
        self.checked_against.append(key)
        return Receipt("ab" * 32, "K1")


def _job(step: int = 0) -> ProverRequest:
    return ProverRequest(step=step, kind="sgd", circuit={"dims": [4, 3, 2]}, witness_path="w", cache_dir="c", output_dir="o")


OK = ProverResponse(proof_type="zk-groth16", artifacts={"proof": "p"})


def test_an_answer_for_a_step_the_trainer_has_no_record_of_is_refused():
    """R2 (receipt.py: ``required`` not honoured): prove-pending and respond read the step's record
    from commitments.jsonl; without one, the answer counted as proved, unchecked."""
    check = ReceiptCheck(KeyedBackend(), lambda step: None, {"keys": {"vk_sha256": "K1"}})
    with pytest.raises(ProverProtocolError) as raised:
        check(_job(), OK, "zk-groth16")
    assert raised.value.context.get("reason") == "malformed-commitment"


def test_the_key_of_the_first_answer_checked_stays_pinned_when_the_cache_changes():
    """R5 (receipt.py: the first verified key not pinned): a seed-API session on an empty cache; its
    first program's setup is checked, then a key of another setup is put into the cache: the next
    answer is checked against the first key, not the new one (review56, from a cold cache)."""
    backend = KeyedBackend()
    check = ReceiptCheck(backend, lambda step: {"w_after": "1"}, None)
    check.pin(_job(0))
    check(_job(0), OK, "zk-groth16")
    backend.current = "K2"
    check.pin(_job(1))
    check(_job(1), OK, "zk-groth16")
    assert backend.checked_against == [None, "K1"]


def test_the_key_pinned_before_a_program_runs_is_the_key_directory_it_is_given(tiny_keys, tmp_path):
    """B6 (backend.current_key ignoring ``keys_dir``): with srs.path, the key pinned is that
    directory's, not a dev key in the cache (or none, when the cache has no key)."""
    copy = tmp_path / "keys"
    shutil.copytree(tiny_keys.path, copy)
    request = ProverRequest(step=0, kind="sgd", circuit=tiny_spec().to_dict(), witness_path="w",
                            cache_dir=str(tmp_path / "empty"), output_dir="o", options={"keys_dir": str(copy)})
    assert GROTH16.current_key(request) == tiny_keys.record["vk_sha256"]


def test_an_answer_naming_no_proof_path_is_a_malformed_proof(tiny_keys, groth16_cache, proven):
    """B3 (check_on_receipt's path check removed: refused, but without its reason)."""
    spec, commitments, _ = proven
    request = ProverRequest(step=0, kind="sgd", circuit=spec.to_dict(), witness_path="w", cache_dir=str(groth16_cache), output_dir="o")
    response = ProverResponse(proof_type="zk-groth16", artifacts={"proof": 5}, public={"keys": {"vk_sha256": tiny_keys.record["vk_sha256"]}})
    with pytest.raises(ProofVerificationError) as raised:
        GROTH16.check_on_receipt(request, response, commitments, None)
    assert raised.value.reason == "malformed-proof"


def test_a_run_that_declares_no_verifying_key_is_not_checked_with_a_key_in_the_cache(tiny_keys, groth16_cache):
    """V5b (verifier.py: a manifest without ``keys.vk_sha256`` took whatever dev key the verifier's
    cache holds for its circuit): the declaration only selects a cached key, never waives it."""
    with pytest.raises(ProofVerificationError) as raised:
        verifier_key(tiny_spec(), {"mode": "development", "keys": {}}, groth16_cache, None, allow_dev=True)
    assert raised.value.reason == "keys-unavailable"


def test_a_proof_whose_point_is_off_the_field_is_malformed_not_invalid(groth16_cache, proven, tmp_path):
    """V12 (verifier.py: every rejection reported as invalid-proof): A.x above the field modulus is
    no point at all (groth16py's encoding error), which the report names ``malformed-proof``."""
    spec, commitments, path = proven
    key = verifier_key(spec, None, groth16_cache, None, allow_dev=True)
    data = bytearray(path.read_bytes())
    data[0:32] = b"\xff" * 32
    bad = tmp_path / "proof.bin"
    bad.write_bytes(bytes(data))
    with pytest.raises(ProofVerificationError) as raised:
        verify_proof_file(spec, commitments, bad, key)
    assert raised.value.reason == "malformed-proof"


@pytest.mark.parametrize("said", ["auditor ", "trusted", None])
def test_a_key_directory_whose_provenance_is_none_of_the_three_is_refused(tiny_keys, tmp_path, said):
    """K1 (open_keys accepting any provenance): a directory saying "dev " passed the trainer's
    production refusal (an exact "dev"), and its label reached the manifest and verify's report."""
    copy = tmp_path / "keys"
    shutil.copytree(tiny_keys.path, copy)
    record = json.loads((copy / "provenance.json").read_text())
    (copy / "provenance.json").write_text(json.dumps({**record, "provenance": said}))
    with pytest.raises(ConfigurationError, match="no valid provenance"):
        open_keys(tiny_spec(), copy)


def test_a_proven_step_1_after_an_unproven_step_0_starts_from_unbound_state():
    """F1 (note_free_state from step 2 on): only V_0 is checked (zero); step 1 proven without
    step 0 starts from the state the trainer chose."""
    report = RunReport(None)
    report.verified_steps = {1}
    note_free_state(report, SimpleNamespace(kind="momentum"))
    assert report.state_unbound_steps == [1] and len(report.notes) == 1


def test_an_sgd_run_with_gaps_has_no_state_unbound_steps():
    """F3 (the early return for kinds without optimizer state removed: honest SGD steps were
    reported as starting from unbound state)."""
    report = RunReport(None)
    report.verified_steps = {2}
    note_free_state(report, SimpleNamespace(kind="sgd"))
    assert report.state_unbound_steps == [] and report.notes == []


def _rate_notes(learning_rate: float, update_floored: bool = True, rates: dict | None = None) -> list[str]:
    report = RunReport(None)
    spec = SimpleNamespace(backend="groth16", update_floored=update_floored, learning_rate=learning_rate, scale=12)
    note_coarse_rate(report, spec, rates)
    return [note for note in report.notes if note.startswith("learning rate:")]


def test_the_coarse_rate_note_starts_below_16_grid_steps_per_unit_of_gradient():
    """C1 (the threshold lowered: a tested run had 0.8 or 205 grid steps per unit, nothing between)."""
    assert COARSE_RATE_GRID_STEPS == 16
    assert len(_rate_notes(15.9 / 2**12)) == 1 and _rate_notes(16 / 2**12) == []


def test_a_schedule_is_judged_at_its_lowest_rate():
    """review60: a schedule falling to a few % of a usual base had neither this note nor the
    schedule's own (under 1 % of its base)."""
    [note] = _rate_notes(0.05, rates={0: 0.05, 1: 0.02, 2: 0.001})
    assert note.startswith("learning rate: at the scheduled rate at step 2, 0.001, a weight's update is under one grid step (2^-12)")
    assert _rate_notes(0.05, rates={0: 0.05, 1: 0.02}) == []


def test_a_statement_that_rounds_its_update_to_nearest_gets_no_rate_note():
    """C2 (the guard for AdamW, whose update is rounded to the nearest grid step, removed), on the
    statement classes themselves (review60: a stand-in alone let momentum's constant through)."""
    from pot_zk.backends.groth16.adamw.spec import Groth16AdamwSpec
    from pot_zk.backends.groth16.lora.spec import Groth16LoraSpec
    from pot_zk.backends.groth16.momentum.spec import Groth16MomentumSpec
    from pot_zk.backends.groth16.sgd.spec import Groth16SgdSpec

    assert _rate_notes(1e-5, update_floored=False) == []
    assert [spec.update_floored for spec in (Groth16SgdSpec, Groth16MomentumSpec, Groth16LoraSpec, Groth16AdamwSpec)] == [True, True, True, False]


def test_an_outcome_whose_strategy_the_audit_trail_did_not_record_is_a_record_mismatch():
    """O5 (the strategy dropped from the outcome compared): proofs.jsonl credited another strategy
    (a fallback hop hidden) than the audit trail recorded, with the same proof type."""
    report = RunReport(None)
    proofs = [{"step": 0, "status": "proved", "proof_type": "reexec", "strategy": "reexec"}]
    events = [{"event": "proof.result", "step": 0, "status": "proved", "proof_type": "reexec", "strategy": "freivalds"}]
    check_outcomes_recorded(report, proofs, events)
    assert [(f.check, f.reason, f.step) for f in report.findings] == [("proofs", "record-mismatch", 0)]
