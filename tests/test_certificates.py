"""reexec and freivalds certificates: honest steps verify, tampered updates are rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pot_zk.backends.ezkl.sgd import SgdCircuitSpec
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.exceptions import ProofVerificationError, WitnessBuilderError
from pot_zk.backends.certificates.freivalds import FreivaldsCertificate, verify_freivalds
from pot_zk.backends.certificates.reexec import ReexecCertificate, verify_reexec
from pot_zk.backends.certificates.revealed import commitment_of
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import save_training_step
from pot_zk.kinds.sgd.step import capture_sgd_step
from pot_zk.core.protocol import ProverRequest

ARCH = MlpArchitecture((6, 5, 4, 3))
SPEC = SgdCircuitSpec(ARCH, batch_size=4, learning_rate=0.1)
KINDS = {"reexec": (ReexecCertificate, verify_reexec), "freivalds": (FreivaldsCertificate, verify_freivalds)}


def _step(seed: int = 0):
    torch.manual_seed(seed)
    model = ARCH.build()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return capture_sgd_step(model, optimizer, torch.randn(4, 6), torch.randn(4, 3))


def _certify(kind: str, tmp_path: Path, step=None):
    step = step or _step()
    witness = tmp_path / "step.safetensors"
    save_training_step(step, witness)
    job = ProverRequest(0, "sgd", SPEC.to_dict(), str(witness), str(tmp_path / "cache"), str(tmp_path / kind))
    response = KINDS[kind][0]()(job)
    return response, StepCommitment.from_dict(response.public["commitment"]), Path(response.artifacts["proof"])


def _tamper(certificate: Path, key: str, index: tuple, delta: float) -> None:
    path = certificate.parent / "witness.safetensors"
    tensors = load_file(str(path))
    tensors[key][index] += delta
    save_file(tensors, str(path))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_honest_step_verifies_and_is_labelled(kind, tmp_path):
    response, commitment, certificate = _certify(kind, tmp_path)
    assert response.proof_type == kind
    KINDS[kind][1](SPEC, commitment, certificate)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_tampered_update_with_matching_commitment_is_rejected(kind, tmp_path):
    """A prover that reveals a W_t+1 which is not the update, committed honestly to it."""
    step = _step()
    step.weights_after["4.weight"][0, 0] += 0.01
    witness = tmp_path / "step.safetensors"
    save_training_step(step, witness)
    with pytest.raises(WitnessBuilderError, match=r"W_t\+1 is not the SGD update of W_t on this batch: off by") as refused:
        KINDS[kind][0]()(ProverRequest(0, "sgd", SPEC.to_dict(), str(witness), "", str(tmp_path / "refused")))
    assert refused.value.actual > SPEC.tolerance_ulps
    _, commitment, certificate = _certify(kind, tmp_path)
    _tamper(certificate, "w_after", (3,), 0.01)
    tensors = load_file(str(certificate.parent / "witness.safetensors"))
    recommitted = commitment_of({name: tensors[name] for name in SPEC.input_names}, SPEC)
    with pytest.raises(ProofVerificationError) as raised:
        KINDS[kind][1](SPEC, recommitted, certificate)
    assert raised.value.reason == "update-out-of-tolerance"


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("delta", [0.5, 1e6], ids=["on-grid", "outside-the-committed-range"])
def test_revealed_witness_must_match_declared_commitments(kind, delta, tmp_path):
    """A revealed value outside the committed range is a mismatch too, not a crash of the
    verifier (no commitment of an honest run can bind it)."""
    _, commitment, certificate = _certify(kind, tmp_path)
    _tamper(certificate, "batch", (0,), delta)
    with pytest.raises(ProofVerificationError) as raised:
        KINDS[kind][1](SPEC, commitment, certificate)
    assert raised.value.reason == "commitment-mismatch"


@pytest.mark.parametrize("key", ["g0", "g2", "b1", "z1"])
def test_freivalds_rejects_a_wrong_intermediate_product(key, tmp_path):
    _, commitment, certificate = _certify("freivalds", tmp_path)
    _tamper(certificate, key, (0, 0), 1e-3)
    with pytest.raises(ProofVerificationError) as raised:
        verify_freivalds(SPEC, commitment, certificate)
    assert raised.value.reason == "product-check-failed"


def test_certificate_of_another_statement_is_rejected(tmp_path):
    _, commitment, certificate = _certify("reexec", tmp_path)
    other = SgdCircuitSpec(ARCH, batch_size=4, learning_rate=0.2)
    with pytest.raises(ProofVerificationError) as raised:
        verify_reexec(other, commitment, certificate)
    assert raised.value.reason == "wrong-circuit"
