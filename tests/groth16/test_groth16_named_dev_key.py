"""A key directory the auditor names (`verify --srs DIR`; `--keys` hands its key directory to the
same place) is only as good as the setup that made it: one whose record says `dev` -- the
trainer's own cache, say -- gets the dev-key policy, refused for a production run unless the
auditor allows dev keys, labelled dev when accepted. Through the proof type's verifier entry
point, with the tiny circuit's dev key (one setup, no proof, no run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pot_zk.backends.base import VerifierOptions
from pot_zk.backends.registry import PROOF_TYPES
from pot_zk.exceptions import ProofVerificationError

from groth16_support import tiny_spec

pytestmark = pytest.mark.prover


def _keys_named(tiny_keys, mode: str, tmp_path: Path, *, allow_dev: bool):
    manifest = {"mode": mode, "circuit_id": tiny_spec().circuit_id(), "keys": {"vk_sha256": tiny_keys.record["vk_sha256"]}}
    options = VerifierOptions(tmp_path / "auditor-cache", tmp_path / "workdir", key_path=tiny_keys.path, allow_dev_keys=allow_dev)
    return PROOF_TYPES.get("zk-groth16").verifier_keys(tiny_spec(), manifest, options)


def test_a_named_dev_key_directory_is_refused_for_a_production_run(tiny_keys, tmp_path):
    assert json.loads((tiny_keys.path / "provenance.json").read_text())["provenance"] == "dev"
    with pytest.raises(ProofVerificationError) as raised:
        _keys_named(tiny_keys, "production", tmp_path, allow_dev=False)
    assert raised.value.reason == "dev-keys-refused"


@pytest.mark.parametrize(("mode", "allow_dev"), [("production", True), ("development", False)])
def test_where_it_is_accepted_it_is_labelled_dev(tiny_keys, tmp_path, mode, allow_dev):
    keys = _keys_named(tiny_keys, mode, tmp_path, allow_dev=allow_dev)
    assert keys.record["provenance"] == "dev" and keys.record["directory"] == str(tiny_keys.path)
    assert any(note.startswith("zk-groth16 proofs were checked with a dev key") for note in keys.notes)
