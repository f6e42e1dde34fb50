"""zk-groth16 keys from a snarkjs ceremony's zkey. tests/groth16/data/tiny_sgd.zkey was made by
scripts/make_zkey_fixture.sh for tiny_spec() (circom2 --O2 with groth16py's circomlib, snarkjs 0.7
groth16 setup + one contribution). Imported, its keys prove steps that verify under them only,
labelled ``zkey``; a zkey that does not fit the circuit is refused before anything is written,
naming what differs; `pot-zk keys import-zkey` keys train a production run that `pot-zk verify
--keys` accepts, and that fails under the keys of another setup."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path

import groth16py
import pytest

from pot_zk.backends.groth16 import adapter, zkey

from pot_zk.backends.groth16.keys import import_zkey_keys, load_verifying_key
from pot_zk.backends.groth16.prove import prove_step

from pot_zk.backends.groth16.verify import verify_groth16
from pot_zk.config import build, compose_config
from pot_zk.exceptions import ConfigurationError, ProofGenerationError
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train

from groth16_support import honest_step, sgd_integers, sgd_signals, stop_holders, tiny_spec

pytestmark = pytest.mark.prover

ZKEY = Path(__file__).parent / "data" / "tiny_sgd.zkey"
TINY = ["prover=groth16", "model=tiny_mlp", "data=synthetic", "model.loss=mse", "train.batch_size=2", "train.learning_rate=0.1"]
POT_ZK = str(Path(sys.executable).parent / "pot-zk")
# Byte offsets in the fixture: section 1 (protocol) at 12, its data at 24; section 2 at 28, its
# data at 40: n8q, q (32 bytes), n8r, r (32 bytes), nVars, nPublic, domainSize.
OFFSETS = {"protocol": 24, "base_modulus": 44, "n_vars": 112, "n_public": 116, "domain_size": 120}


def _pot_zk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([POT_ZK, *args], capture_output=True, text=True, timeout=600)


def _edited(tmp_path: Path, field: str, value: int) -> Path:
    data = bytearray(ZKEY.read_bytes())
    struct.pack_into("<I", data, OFFSETS[field], value)
    path = tmp_path / f"edited-{field}.zkey"
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def zkey_keys(tmp_path_factory):
    return import_zkey_keys(tiny_spec(), ZKEY, tmp_path_factory.mktemp("zkey") / "keys")


def test_the_fixture_is_the_tiny_statement_s_zkey():
    header = zkey.read_header(ZKEY)
    assert header == zkey.ZkeyHeader(1, 1, zkey.BN254_BASE_MODULUS, zkey.BN254_SCALAR_MODULUS, 2994, 3, 4096)
    assert build(compose_config(TINY, run_dir=".")).plan.spec == tiny_spec()


def test_imported_zkey_keys_prove_steps_that_verify_under_them_only(zkey_keys, tiny_keys):
    spec = tiny_spec()
    assert zkey_keys.provenance == "zkey" and zkey_keys.created
    assert zkey_keys.record["zkey_sha256"] == hashlib.sha256(ZKEY.read_bytes()).hexdigest()
    assert zkey_keys.record["constraints"]["wires"] == 2994 and zkey_keys.record["constraints"]["constraints"] == 3032
    vk = load_verifying_key(spec, zkey_keys.path)
    assert vk.provenance == "zkey"
    w, x, y, w_after = honest_step(spec, seed=5)
    proof = prove_step(spec, zkey_keys, sgd_integers(w, x, y, w_after))
    assert proof.key_provenance == "zkey"
    assert verify_groth16(spec, proof.proof, proof.commitments, vk).ok
    dev_proof = prove_step(spec, tiny_keys, sgd_integers(w, x, y, w_after))  # same step, a single-party setup's key
    assert verify_groth16(spec, dev_proof.proof, dev_proof.commitments, vk).reason == "invalid-proof"


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("n_vars", 4248, ["number of wires (nVars) is 4248", "the circuit's is 2994", "--O2"]),  # what circom's default --O1 compiles
        ("n_public", 4, ["number of public values", "is 4", "the circuit's is 3"]),
        ("protocol", 2, ["protocol id", "is 2", "the circuit's is 1"]),
        ("base_modulus", 7, ["base-field modulus (BN254)"]),
    ],
)
def test_a_zkey_whose_header_does_not_fit_the_circuit_is_refused_before_anything_is_written(tmp_path, field, value, words):
    """Without the wires check, the zkey with nVars edited imports and proves (groth16py reads
    its sections, not the count); a real --O1 zkey imports too and then panics in prove."""
    path = _edited(tmp_path, field, value)
    with pytest.raises(ConfigurationError) as refused:
        import_zkey_keys(tiny_spec(), path, tmp_path / "keys")
    assert refused.value.key == "zkey"
    for word in words:
        assert word in refused.value.message, refused.value.message
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_zkey_of_another_shape_is_refused_by_its_wires(tmp_path):
    with pytest.raises(ConfigurationError, match=r"nVars\) is 2994, the circuit's is 2764"):
        import_zkey_keys(tiny_spec(dims=(3, 3, 2)), ZKEY, tmp_path / "keys")
    assert not (tmp_path / "keys").exists()


def test_a_zkey_of_another_learning_rate_is_refused_by_the_trial_proof(tmp_path):
    """Same shape, same header: only a proof can tell. Without the trial proof the import
    succeeds, and every proof made with the keys then fails its own verification."""
    with pytest.raises(ConfigurationError) as refused:
        import_zkey_keys(tiny_spec(learning_rate=0.13), ZKEY, tmp_path / "keys")  # c_fix odd, as at 0.1: same wires
    assert refused.value.context["reason"] == "trial-proof" and "does not verify under its verifying key" in refused.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_proving_key_that_does_not_fit_the_circuit_is_a_non_retryable_proof_error_not_a_panic(tmp_path):
    """groth16py imports a zkey for a larger constraint system without complaint and panics in
    prove (pyo3's PanicException, a BaseException); the adapter makes it a ProofGenerationError."""
    spec = tiny_spec(dims=(3, 3, 2))
    source = tmp_path / "circuit.circom"
    source.write_text(spec.circuit_source())
    pk, _, _ = adapter.import_zkey(ZKEY, source)
    with pytest.raises(ProofGenerationError) as failed:
        adapter.prove(pk, sgd_signals(*honest_step(spec)))
    assert failed.value.retryable is False and failed.value.context["reason"] == "engine-panic"
    assert "index out of bounds" in failed.value.message


def test_keys_circuit_and_import_zkey_are_for_groth16_statements_only(tmp_path):
    for args in (["keys", "circuit", "prover=ezkl", "model=tiny_mlp"], ["keys", "import-zkey", str(ZKEY), "prover=ezkl", "model=tiny_mlp"]):
        done = _pot_zk(*args, "--out", str(tmp_path / "out"))
        assert done.returncode == 2 and "the ezkl backend takes no ceremony keys (keys circuit and keys import-zkey are for prover=groth16)" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_import_zkey_keys_train_a_production_run_that_verifies_only_under_them(tmp_path):
    done = _pot_zk("keys", "circuit", *TINY, "--out", str(tmp_path / "ceremony"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ceremony" / "circuit.circom").read_text() == tiny_spec().circuit_source()
    instructions = (tmp_path / "ceremony" / "CEREMONY.txt").read_text()
    assert "circom2 circuit.circom --r1cs --O2 -l circomlib" in instructions and adapter.circomlib_dir() in instructions
    assert "snarkjs zkey verify circuit.r1cs" in instructions and "pot-zk keys import-zkey circuit_0001.zkey " + " ".join(TINY) in instructions

    keys_dir = tmp_path / "zkey-keys"
    done = _pot_zk("keys", "import-zkey", str(ZKEY), *TINY, "--out", str(keys_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    handed = next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("the trainer proves with"))
    assert handed.startswith("srs.path=")
    assert json.loads((keys_dir / "keys.json").read_text())["details"]["provenance"] == "zkey"

    run = tmp_path / "run"
    extra = [handed, "mode=production", "policy=every_step", "train.max_steps=3", f"run_dir={run}", f"cache_dir={tmp_path / 'cache'}", "train.progress=false"]
    summary = train(compose_config([*TINY, *extra]), sleep=lambda seconds: None)
    stop_holders(Path(handed.split("=", 1)[1]), RunBundle.open(run).manifest()["circuit"])
    assert summary.status == "completed" and summary.progress["proof_types"] == {"zk-groth16": 3}
    assert RunBundle.open(run).manifest()["keys"]["provenance"] == "zkey"

    done = _pot_zk("verify", str(run), "--keys", str(keys_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result: VERIFIED" in done.stdout and "coverage: zk-groth16=3" in done.stdout
    assert "key provenance (zk-groth16): zkey" in done.stdout and "imported by you from a ceremony's zkey (its import checked the header and one trial proof, not that" in done.stdout

    other = tmp_path / "auditor-keys"
    assert _pot_zk("keys", "new", *TINY, "--out", str(other), "--cache-dir", str(tmp_path / "auditor-cache")).returncode == 0
    done = _pot_zk("verify", str(run), "--keys", str(other), "--cache-dir", str(tmp_path / "auditor-cache"))  # its trust store knows them
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED keys (foreign-keys)" in done.stdout and "FAILED proofs (invalid-proof) step 0" in done.stdout
    assert "keys-untrusted" not in done.stdout

    crosscheck = tmp_path / "snarkjs"
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parents[2] / "scripts" / "snarkjs_crosscheck.py"), str(run), "1", "--keys", str(keys_dir), "--out", str(crosscheck)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0 and "snarkjs groth16 verify" in done.stdout, done.stdout + done.stderr
    snarkjs_vk = groth16py.VerifyingKey.from_snarkjs_file(str(crosscheck / "vk.json"))  # what snarkjs reads, read without snarkjs
    proof_json, public = (crosscheck / "proof.json").read_text(), json.loads((crosscheck / "public.json").read_text())
    assert groth16py.Verifier(snarkjs_vk).verify_snarkjs(proof_json, json.dumps(public))
    public[1] = str(int(public[1]) + 1)
    assert not groth16py.Verifier(snarkjs_vk).verify_snarkjs(proof_json, json.dumps(public))
