"""Which verifying key ``pot-zk verify`` uses for zk-groth16 proofs, and the proof-file check:
the bundle never chooses the key; dev keys are labelled and refused in production; the
auditor's own keys are the only ones its check accepts."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from pot_zk.backends.groth16.auditor_keys import check_run_keys

from pot_zk.backends.groth16.verifier import DEV_KEY_NOTE, verifier_key, verify_proof_file
from pot_zk.backends.keys import new_keys
from pot_zk.exceptions import ConfigurationError, ProofVerificationError

from groth16_support import tiny_spec

pytestmark = pytest.mark.prover


def _manifest(tiny_keys, mode="development", vk=None):
    return {"mode": mode, "circuit_id": tiny_spec().circuit_id(), "keys": {"vk_sha256": vk or tiny_keys.record["vk_sha256"]}}


def _reason(call) -> str:
    with pytest.raises(ProofVerificationError) as raised:
        call()
    return raised.value.reason


def test_the_run_s_dev_key_in_the_verifier_cache_is_used_and_labelled(tiny_keys, groth16_cache, proven):
    spec, commitments, path = proven
    key = verifier_key(spec, _manifest(tiny_keys), groth16_cache, None, allow_dev=False)
    assert key.record["provenance"] == "dev" and key.notes == (DEV_KEY_NOTE,)
    verify_proof_file(spec, commitments, path, key)


def test_a_production_run_with_a_dev_key_is_refused_unless_allowed(tiny_keys, groth16_cache):
    spec = tiny_spec()
    production = _manifest(tiny_keys, mode="production")
    assert _reason(lambda: verifier_key(spec, production, groth16_cache, None, allow_dev=False)) == "dev-keys-refused"
    assert verifier_key(spec, production, groth16_cache, None, allow_dev=True).record["provenance"] == "dev"


def test_no_key_with_the_declared_vk_is_keys_unavailable(tiny_keys, groth16_cache, tmp_path):
    spec = tiny_spec()
    assert _reason(lambda: verifier_key(spec, _manifest(tiny_keys, vk="ab" * 32), groth16_cache, None, allow_dev=True)) == "keys-unavailable"
    assert _reason(lambda: verifier_key(spec, _manifest(tiny_keys), tmp_path, None, allow_dev=True)) == "keys-unavailable"


@pytest.mark.parametrize("tamper", ["flip", "commitment", "truncate"])
def test_a_tampered_proof_or_commitment_is_rejected_with_its_reason(tiny_keys, groth16_cache, proven, tmp_path, tamper):
    spec, commitments, path = proven
    key = verifier_key(spec, None, groth16_cache, None, allow_dev=True)
    data = bytearray(path.read_bytes())
    if tamper == "flip":
        data[100] ^= 0x01
    elif tamper == "truncate":
        data = data[:255]
    else:
        commitments = {**commitments, "w_after": commitments["w_before"]}
    bad = tmp_path / "proof.bin"
    bad.write_bytes(bytes(data))
    expected = {"flip": {"invalid-proof", "malformed-proof"}, "commitment": {"invalid-proof"}, "truncate": {"malformed-proof"}}[tamper]
    assert _reason(lambda: verify_proof_file(spec, commitments, bad, key)) in expected


def test_auditor_keys_verify_only_runs_proven_with_them(tiny_keys, groth16_cache, proven, tmp_path):
    spec, commitments, path = proven
    made = new_keys([spec], tmp_path / "audit", groth16_cache)
    assert set(made.handover) >= {"pk", "vk", "circuit"} and made.trainer_overrides[0].startswith("srs.path=")
    key = verifier_key(spec, _manifest(tiny_keys), groth16_cache, made.path("vk").parent, allow_dev=False)
    assert key.record["provenance"] == "auditor" and not key.notes
    assert _reason(lambda: verify_proof_file(spec, commitments, path, key)) == "invalid-proof"  # proven with the dev key
    report = SimpleNamespace(findings=[], fail=lambda check, reason, message, step=None: report.findings.append((check, reason, step)))
    proofs = [{"status": "proved", "proof_type": "zk-groth16", "step": 0, "public": {"keys": {"vk_sha256": tiny_keys.record["vk_sha256"]}}}]
    material = check_run_keys(report, _manifest(tiny_keys), proofs, made)
    assert report.findings == [("keys", "foreign-keys", None), ("keys", "foreign-keys", 0)]
    assert material == {"key_path": made.path("vk").parent}
    record = json.loads((made.path("vk").parent / "provenance.json").read_text())
    assert record["provenance"] == "auditor" and record["circuit_id"] == spec.circuit_id()


def test_a_key_directory_of_another_statement_is_keys_unavailable(tiny_keys, groth16_cache):
    other = tiny_spec(learning_rate=0.05)
    assert _reason(lambda: verifier_key(other, None, groth16_cache, tiny_keys.path, allow_dev=True)) == "keys-unavailable"


def test_the_key_loaded_is_the_key_whose_hash_was_checked(tiny_keys, tmp_path, monkeypatch):
    """review56: ``vk.bin`` was hashed (against the key directory's record, which is what is
    compared with the run's declared key) and then read a second time to load it: a file swapped
    in between had another key used under the recorded one's name. The bytes hashed are the bytes
    loaded: a swap is refused."""
    import shutil

    from pot_zk.backends.groth16 import keys

    spec = tiny_spec()
    other = keys.create_keys(spec, tmp_path / "other")  # another setup of the same circuit
    directory = tmp_path / "keys"
    shutil.copytree(tiny_keys.path, directory)
    assert keys.load_verifying_key(spec, directory).vk_sha256 == tiny_keys.record["vk_sha256"]
    real = keys.file_sha256

    def hash_then_swap(path):
        digest = real(path)
        if path == directory / "vk.bin":
            shutil.copyfile(other.path / "vk.bin", directory / "vk.bin.new")
            (directory / "vk.bin.new").replace(directory / "vk.bin")
        return digest

    monkeypatch.setattr(keys, "file_sha256", hash_then_swap)
    with pytest.raises(ConfigurationError, match="vk.bin changed as it was read"):
        keys.load_verifying_key(spec, directory)
