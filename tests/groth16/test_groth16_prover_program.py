"""The pot-zk-groth16-prover program: the prover protocol around real zk-groth16 proofs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pot_zk.core import protocol
from pot_zk.backends.groth16 import keys

from pot_zk.backends.groth16.integers import dequantise

from pot_zk.backends.groth16.sgd.exact import split_params
from pot_zk.backends.groth16.verify import verify_groth16
from pot_zk.kinds.registry import save_training_step
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.sgd.step import step_from_states

from groth16_support import honest_step, sgd_integers, tiny_spec

pytestmark = pytest.mark.prover

REPO = Path(__file__).resolve().parents[2]


def write_step(path: Path, spec, w, x, y, w_after, learning_rate=None) -> Path:
    architecture = MlpArchitecture(spec.dims)

    def state(flat):
        parts = split_params(spec, np.asarray(flat))
        return {name: torch.tensor(dequantise(part, spec.scale)) for (name, _), part in zip(architecture.param_shapes, parts)}

    step = step_from_states(
        state(w), state(w_after), torch.tensor(dequantise(x, spec.scale)), torch.tensor(dequantise(y, spec.scale)),
        spec.learning_rate if learning_rate is None else learning_rate, architecture,
    )
    save_training_step(step, path)
    return path


def run_prover(request: dict) -> tuple[int, dict]:
    document = {"protocol": protocol.PROTOCOL, "step": 3, "options": {}, **request}
    done = subprocess.run(
        [sys.executable, "-m", "provers.groth16_prover"], input=json.dumps(document), capture_output=True, text=True, cwd=REPO, timeout=300
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    return done.returncode, json.loads(lines[0])


def request_for(tmp_path: Path, cache: Path, witness: Path, circuit: dict | None = None, kind: str = "sgd") -> dict:
    return {
        "kind": kind,
        "circuit": tiny_spec().to_dict() if circuit is None else circuit,
        "witness_path": str(witness),
        "cache_dir": str(cache),
        "output_dir": str(tmp_path / "out"),
    }


def test_honest_step_is_proven_and_verifies_with_the_verifiers_own_commitments(tiny_keys, groth16_cache, tmp_path):
    spec = tiny_spec()
    tensors = honest_step(spec, seed=3)
    witness = write_step(tmp_path / "step.safetensors", spec, *tensors)
    code, response = run_prover(request_for(tmp_path, groth16_cache, witness))
    assert code == protocol.EXIT_OK, response
    parsed = protocol.ProverResponse.from_json_dict(response)
    assert parsed.proof_type == "zk-groth16" and parsed.sizes["proof_bytes"] == 256
    assert parsed.public["keys"]["provenance"] == "dev"
    assert parsed.public["keys"]["created"] is False  # the session's keys: no setup in the program
    held = spec.commitments(sgd_integers(*tensors))
    assert {k: parsed.public["commitment"][k] for k in ("w_before", "batch", "w_after")} == held.to_dict()
    proof = Path(parsed.artifacts["proof"]).read_bytes()
    verdict = verify_groth16(spec, proof, held, keys.load_verifying_key(spec, keys.key_directory(groth16_cache, spec)))
    assert verdict.ok, verdict.message


def test_weights_after_off_by_one_grid_step_are_an_invalid_witness(tiny_keys, groth16_cache, tmp_path):
    spec = tiny_spec()
    w, x, y, w_after = honest_step(spec, seed=3)
    moved = w_after.copy()
    moved[0] -= 1
    witness = write_step(tmp_path / "step.safetensors", spec, w, x, y, moved)
    code, response = run_prover(request_for(tmp_path, groth16_cache, witness))
    assert code == protocol.EXIT_INVALID_WITNESS
    assert response["error"]["error_class"] == "WitnessBuilderError"
    assert not (tmp_path / "out" / "proof.bin").exists()


def test_off_grid_weights_are_an_invalid_witness(tiny_keys, groth16_cache, tmp_path):
    spec = tiny_spec()
    w, x, y, w_after = honest_step(spec, seed=3)
    witness = write_step(tmp_path / "step.safetensors", spec, w, x, y, w_after)
    from pot_zk.kinds.registry import load_training_step

    step = load_training_step(witness, spec.kind)
    step.weights_before["0.weight"][0, 0] += 2.0**-14
    save_training_step(step, witness)
    code, response = run_prover(request_for(tmp_path, groth16_cache, witness))
    assert code == protocol.EXIT_INVALID_WITNESS
    assert response["error"]["tensor"] == "weights before the step"


def test_step_of_another_learning_rate_is_an_invalid_witness(tiny_keys, groth16_cache, tmp_path):
    spec = tiny_spec()
    witness = write_step(tmp_path / "step.safetensors", spec, *honest_step(spec, seed=3), learning_rate=0.2)
    code, _ = run_prover(request_for(tmp_path, groth16_cache, witness))
    assert code == protocol.EXIT_INVALID_WITNESS


@pytest.mark.parametrize(
    "circuit,kind",
    [
        ({**tiny_spec().to_dict(), "backend": "ezkl"}, "sgd"),
        (tiny_spec().to_dict(), "lora"),
        ({**tiny_spec().to_dict(), "quotient_bits": 99}, "sgd"),
    ],
)
def test_bad_requests_exit_with_bad_request(circuit, kind, groth16_cache, tmp_path):
    code, response = run_prover(request_for(tmp_path, groth16_cache, tmp_path / "missing.safetensors", circuit, kind))
    assert code == protocol.EXIT_BAD_REQUEST
    assert response["status"] == "error"


def test_prover_uses_the_auditors_keys_and_only_their_verifying_key_accepts(tiny_keys, groth16_cache, tmp_path):
    """Designated verifier: the auditor runs the setup and keeps the verifying key; the prover
    gets the directory. The prover's own dev key (another setup of the same source) rejects
    the proof, which is why key provenance is the whole trust question."""
    import shutil

    spec = tiny_spec()
    auditor = keys.create_keys(spec, tmp_path / "auditor-keys", provenance="auditor")
    verifier_copy = tmp_path / "verifier-keys"
    verifier_copy.mkdir()
    for name in ("circuit.circom", "vk.bin", "vk.json", "provenance.json"):
        shutil.copy(auditor.path / name, verifier_copy / name)
    tensors = honest_step(spec, seed=5)
    witness = write_step(tmp_path / "step.safetensors", spec, *tensors)
    request = request_for(tmp_path, groth16_cache, witness)
    code, response = run_prover({**request, "options": {"keys_dir": str(auditor.path)}})
    assert code == protocol.EXIT_OK, response
    assert response["public"]["keys"]["provenance"] == "auditor"
    proof = Path(response["artifacts"]["proof"]).read_bytes()
    held = spec.commitments(sgd_integers(*tensors))
    assert verify_groth16(spec, proof, held, keys.load_verifying_key(spec, verifier_copy)).ok
    assert verify_groth16(spec, proof, held, keys.load_verifying_key(spec, tiny_keys.path)).reason == "invalid-proof"
