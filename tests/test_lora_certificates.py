"""reexec and freivalds certificates of LoRA steps; LoRA step files and spec dispatch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pot_zk.backends.ezkl.backend import EZKL
from pot_zk.backends.registry import commit_step, spec_from_dict
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.exceptions import ConfigurationError, ProofVerificationError, WitnessBuilderError
from pot_zk.backends.certificates.freivalds import FreivaldsCertificate, verify_freivalds
from pot_zk.backends.ezkl.sgd import SgdCircuitSpec
from pot_zk.kinds.lora.step import LoraArchitecture, LoraTrainingStep, attach_lora
from pot_zk.kinds.lora.capture import capture_lora_step
from pot_zk.backends.ezkl.lora import LoraCircuitSpec
from pot_zk.backends.certificates.reexec import ReexecCertificate, verify_reexec
from pot_zk.backends.certificates.revealed import commitment_of
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import STEP_KINDS, load_training_step, save_training_step
from pot_zk.kinds.sgd.step import capture_sgd_step
from pot_zk.core.protocol import ProverRequest

BASE = MlpArchitecture((6, 5, 3))
KINDS = {"reexec": (ReexecCertificate, verify_reexec), "freivalds": (FreivaldsCertificate, verify_freivalds)}


def lora_spec(rank: int = 2, alpha: float = 4.0) -> LoraCircuitSpec:
    return LoraCircuitSpec(LoraArchitecture(BASE, adapted=(0, 1), rank=rank, alpha=alpha), batch_size=4, learning_rate=0.1)


SPEC = lora_spec()


def lora_step() -> LoraTrainingStep:
    """One honest step of a two-layer MLP with LoRA (rank 2, alpha 4) on both layers."""
    torch.manual_seed(0)
    model = attach_lora(BASE.build(), (0, 2), rank=2, alpha=4)
    with torch.no_grad():
        model[0].lora_B.normal_(0.0, 0.5)
        model[2].lora_B.normal_(0.0, 0.5)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    return capture_lora_step(model, optimizer, torch.randn(4, 6), torch.randn(4, 3))


def _certify(kind: str, tmp_path: Path, step=None):
    step = step or lora_step()
    witness = tmp_path / "step.safetensors"
    save_training_step(step, witness)
    job = ProverRequest(0, "lora", SPEC.to_dict(), str(witness), str(tmp_path / "cache"), str(tmp_path / kind))
    response = KINDS[kind][0]()(job)
    return response, StepCommitment.from_dict(response.public["commitment"]), Path(response.artifacts["proof"])


def _tamper(certificate: Path, key: str, index: int, delta: float) -> dict:
    path = certificate.parent / "witness.safetensors"
    tensors = load_file(str(path))
    tensors[key].view(-1)[index] += delta
    save_file(tensors, str(path))
    return tensors


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_honest_lora_step_verifies(kind, tmp_path):
    response, commitment, certificate = _certify(kind, tmp_path)
    assert response.proof_type == kind and commitment.base is not None
    KINDS[kind][1](SPEC, commitment, certificate)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_tampered_adapter_update_is_refused_and_rejected(kind, tmp_path):
    step = lora_step()
    step.adapters_after["0.lora_B"][2, 1] += 0.01
    witness = tmp_path / "bad.safetensors"
    save_training_step(step, witness)
    with pytest.raises(WitnessBuilderError, match=r"W_t\+1 is not the SGD update of W_t on this batch: off by") as refused:
        KINDS[kind][0]()(ProverRequest(0, "lora", SPEC.to_dict(), str(witness), "", str(tmp_path / "refused")))
    assert refused.value.actual > SPEC.tolerance_ulps
    _, _, certificate = _certify(kind, tmp_path)
    tensors = _tamper(certificate, "w_after", 0, 0.01)
    recommitted = commitment_of({name: tensors[name] for name in SPEC.input_names}, SPEC)
    with pytest.raises(ProofVerificationError) as raised:
        KINDS[kind][1](SPEC, recommitted, certificate)
    assert raised.value.reason == "update-out-of-tolerance"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_revealed_base_must_match_the_declared_base(kind, tmp_path):
    _, commitment, certificate = _certify(kind, tmp_path)
    _tamper(certificate, "base", 0, 0.25)
    with pytest.raises(ProofVerificationError) as raised:
        KINDS[kind][1](SPEC, commitment, certificate)
    assert raised.value.reason == "commitment-mismatch"


@pytest.mark.parametrize("product", ["u0", "u1", "z0", "z1", "v0", "v1", "ga0", "ga1", "gb0", "gb1", "p1"])
def test_freivalds_catches_a_wrong_revealed_product(product, tmp_path):
    _, commitment, certificate = _certify("freivalds", tmp_path)
    _tamper(certificate, product, 1, 0.01)
    with pytest.raises(ProofVerificationError) as raised:
        verify_freivalds(SPEC, commitment, certificate)
    assert raised.value.reason == "product-check-failed"


def test_certificate_for_another_alpha_is_rejected(tmp_path):
    _, commitment, certificate = _certify("reexec", tmp_path)
    with pytest.raises(ProofVerificationError) as raised:
        verify_reexec(lora_spec(alpha=8.0), commitment, certificate)
    assert raised.value.reason == "wrong-circuit"


def test_lora_step_file_round_trips(tmp_path):
    step = lora_step()
    save_training_step(step, tmp_path / "step.safetensors")
    loaded = load_training_step(tmp_path / "step.safetensors")
    assert isinstance(loaded, LoraTrainingStep)
    assert loaded.architecture == step.architecture and loaded.learning_rate == step.learning_rate
    assert loaded.flat_base().equal(step.flat_base()) and loaded.flat_after().equal(step.flat_after())


def test_sgd_step_file_is_not_read_as_a_lora_step(tmp_path):
    torch.manual_seed(0)
    model = BASE.build()
    step = capture_sgd_step(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.randn(4, 6), torch.randn(4, 3))
    save_training_step(step, tmp_path / "sgd.safetensors")
    with pytest.raises(WitnessBuilderError, match="not a complete lora step file"):
        STEP_KINDS.get("lora").load(tmp_path / "sgd.safetensors")
    with pytest.raises(WitnessBuilderError, match="holds a sgd step, expected a lora step"):
        load_training_step(tmp_path / "sgd.safetensors", "lora")


def test_circuit_specs_dispatch_on_kind():
    assert spec_from_dict(SPEC.to_dict()) == SPEC
    sgd = SgdCircuitSpec(BASE, batch_size=4, learning_rate=0.1)
    assert spec_from_dict(sgd.to_dict()) == sgd
    ids = [SPEC.circuit_id(), lora_spec(rank=3).circuit_id(), lora_spec(alpha=2.0).circuit_id(), lora_spec(rank=3, alpha=2.0).circuit_id()]
    assert len(set(ids)) == len(ids), "rank and alpha each change the circuit id"
    with pytest.raises(ConfigurationError, match="the ezkl backend proves lora, momentum, sgd steps, not adam steps"):
        spec_from_dict({**SPEC.to_dict(), "kind": "adam"})


def test_sgd_commitments_keep_their_old_dict_form():
    old = {"w_before": "aa", "batch": "bb", "w_after": "cc", "scale": 12}
    assert StepCommitment.from_dict(old).to_dict() == old
    with_base = StepCommitment.from_dict({**old, "base": "dd"})
    assert with_base.base == "dd" and with_base.to_dict() == {**old, "base": "dd"}


def test_lora_base_commitment_is_the_base_runs_final_commitment():
    """Fine-tuning chains onto the base run: the base committed by a LoRA step is the W_t+1
    committed by the last SGD step that trained it."""
    torch.manual_seed(0)
    model = BASE.build()
    sgd = capture_sgd_step(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.randn(4, 6), torch.randn(4, 3))
    attach_lora(model, (0,), rank=2, alpha=4)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    lora = capture_lora_step(model, optimizer, torch.randn(4, 6), torch.randn(4, 3))
    assert commit_step(lora, EZKL.statement_for_step(lora)).base == commit_step(sgd, EZKL.statement_for_step(sgd)).w_after
