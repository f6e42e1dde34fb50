"""Softmax cross-entropy on integer class labels: the loss written once (training, check graph,
references, certificates), the statement's parameters, and what stays as it was for MSE."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pot_zk.backends.ezkl.backend import EZKL
from pot_zk.backends.certificates.freivalds import FreivaldsCertificate, verify_freivalds
from pot_zk.backends.certificates.reexec import ReexecCertificate, verify_reexec
from pot_zk.backends.certificates.revealed import commitment_of
from pot_zk.exceptions import ConfigurationError, ProofVerificationError, WitnessBuilderError
from pot_zk.backends.registry import commit_step
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.backends.ezkl.lora import LoraCircuitSpec
from pot_zk.kinds.lora.step import LoraArchitecture, attach_lora
from pot_zk.kinds.losses import EXP_RANGE, gradient_scale, loss_for_targets, one_hot, output_delta
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import capture_step, kind_of, load_training_step, save_training_step
from pot_zk.backends.ezkl.statement import scaled_product
from pot_zk.backends.ezkl.sgd import SgdCircuitSpec
from pot_zk.core.protocol import ProverRequest

ARCH = MlpArchitecture((6, 5, 3), loss="cross_entropy")
SPEC = SgdCircuitSpec(ARCH, batch_size=4, learning_rate=0.1)
CERTIFICATES = {"reexec": (ReexecCertificate, verify_reexec), "freivalds": (FreivaldsCertificate, verify_freivalds)}


def ce_step(seed: int = 0, labels: list[int] | None = None):
    torch.manual_seed(seed)
    model = MlpArchitecture((6, 5, 3)).build()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    targets = torch.tensor(labels if labels is not None else [0, 2, 1, 2])
    return capture_step(model, optimizer, torch.rand(4, 6), targets)


def test_one_hot_and_the_output_delta_are_torchs_cross_entropy_gradient():
    labels = torch.tensor([2, 0, 1, 1])
    assert torch.equal(one_hot(labels.double(), 3), torch.nn.functional.one_hot(labels, 3).double())
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.cross_entropy(logits, labels).backward()
    delta = output_delta("cross_entropy", logits.detach(), labels.double())
    assert torch.allclose(delta * gradient_scale("cross_entropy", 4, 3), logits.grad)
    assert loss_for_targets(labels) == "cross_entropy" and loss_for_targets(labels.double()) == "mse"
    assert loss_for_targets(torch.zeros(4, 3, dtype=torch.int64)) == "mse"  # a label per sample, not rows


def test_integer_labels_capture_a_cross_entropy_step_that_its_statement_accepts():
    step = ce_step()
    assert step.architecture.loss == "cross_entropy" and step.targets.tolist() == [0.0, 2.0, 1.0, 2.0]
    spec = EZKL.statement_for_step(step)
    assert spec == SPEC and spec.param_scale == spec.scale == 12
    assert spec.input_sizes()["batch"] == 4 * 6 + 4  # X, then one label per sample
    residual = spec.reference_output([x.values for x in spec.encode(step)])
    assert float(residual.abs().max()) < 1e-6  # the float32 step torch took is the statement's, to float32 round-off
    wrong = ce_step(labels=[1, 2, 1, 2])  # another label on sample 0: another update
    other = spec.reference_output([step.flat_before(), wrong.flat_batch(), step.flat_after()])
    assert float(other.abs().max()) * 2**spec.scale > 10 * spec.tolerance_ulps


def test_the_step_file_keeps_the_labels_and_the_loss(tmp_path):
    step = ce_step()
    save_training_step(step, tmp_path / "step.safetensors")
    loaded = load_training_step(tmp_path / "step.safetensors")
    assert loaded.architecture == ARCH and torch.equal(loaded.targets, step.targets)


def test_labels_outside_the_classes_are_refused_before_the_step_runs():
    torch.manual_seed(0)
    model = MlpArchitecture((6, 5, 3)).build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WitnessBuilderError, match="class labels must be integers in 0..2"):
        capture_step(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.rand(4, 6), torch.tensor([0, 3, 1, 2]))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the step must not have run"
    step = ce_step()
    with pytest.raises(WitnessBuilderError, match="class labels must be integers in 0..2"):
        kind_of(step).validate(replace(step, targets=torch.tensor([0.0, 1.5, 1.0, 2.0], dtype=torch.float64)))


def test_a_cross_entropy_statement_needs_param_scale_equal_to_scale():
    with pytest.raises(ConfigurationError) as refused:
        SgdCircuitSpec(ARCH, batch_size=4, learning_rate=0.1, param_scale=20)
    assert refused.value.key == "circuit.param_scale"
    assert SgdCircuitSpec(MlpArchitecture((6, 5, 3)), 4, 0.1).param_scale == 20


def test_the_step_constant_keeps_its_precision_through_exact_powers_of_two():
    values = torch.linspace(-3, 3, 7, dtype=torch.float64)
    constant = 0.1 / 8
    assert torch.equal(scaled_product(values, constant, 12), values * (constant * 2**6) * 2.0**-6)
    assert SPEC.step_constant == pytest.approx(0.1 / 4) and SgdCircuitSpec(MlpArchitecture((6, 5, 3)), 4, 0.1).step_constant == pytest.approx(0.2 / 12)


def test_the_exp_inputs_stay_in_the_table_however_wide_the_logits_spread():
    logits = torch.tensor([[0.0, -3.0, 2.0], [40.0, -40.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([2.0, 0.0], dtype=torch.float64)
    delta = output_delta("cross_entropy", logits, labels)
    exact = torch.softmax(logits, dim=1) - one_hot(labels, 3)
    assert float((delta - exact).abs().max()) < 1e-4  # the clamp at -EXP_RANGE moves p by < (classes - 1) * exp(-12)
    shifted = logits - logits.max(dim=1, keepdim=True).values
    assert float((torch.relu(shifted + EXP_RANGE) - EXP_RANGE).min()) == -EXP_RANGE
    assert SPEC.lookup_range == (-EXP_RANGE * 4096, 0)
    assert SgdCircuitSpec(MlpArchitecture((6, 5, 3)), 4, 0.1).lookup_range is None
    assert SPEC.to_dict()["exp_range"] == EXP_RANGE and SgdCircuitSpec.from_dict(SPEC.to_dict()) == SPEC
    with pytest.raises(ConfigurationError) as other_range:
        SgdCircuitSpec.from_dict({**SPEC.to_dict(), "exp_range": 8})
    assert other_range.value.key == "circuit.exp_range"


@pytest.mark.parametrize("kind", sorted(CERTIFICATES))
def test_certificates_cover_a_cross_entropy_step_and_its_labels(kind, tmp_path):
    strategy, verify = CERTIFICATES[kind]
    step = ce_step()
    save_training_step(step, tmp_path / "step.safetensors")
    job = ProverRequest(0, "sgd", SPEC.to_dict(), str(tmp_path / "step.safetensors"), str(tmp_path / "cache"), str(tmp_path / kind))
    response = strategy()(job)
    commitment = StepCommitment.from_dict(response.public["commitment"])
    assert commitment == commit_step(step, SPEC)
    certificate = Path(response.artifacts["proof"])
    verify(SPEC, commitment, certificate)
    tensors = load_file(str(certificate.parent / "witness.safetensors"))
    tensors["batch"][-4] = 1.0  # sample 0 relabelled, everything recommitted
    save_file(tensors, str(certificate.parent / "witness.safetensors"))
    with pytest.raises(ProofVerificationError) as other_commitment:
        verify(SPEC, commitment, certificate)
    assert other_commitment.value.reason == "commitment-mismatch"
    recommitted = commitment_of({name: tensors[name] for name in SPEC.input_names}, SPEC)
    with pytest.raises(ProofVerificationError) as wrong_update:
        verify(SPEC, recommitted, certificate)
    assert wrong_update.value.reason in ("update-out-of-tolerance", "product-check-failed")


def test_lora_steps_on_class_labels_train_with_cross_entropy():
    torch.manual_seed(0)
    model = attach_lora(MlpArchitecture((6, 5, 3)).build(), (0,), 2, 4.0)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, labels = torch.rand(4, 6), torch.tensor([0, 1, 2, 0])
    expected = float(torch.nn.functional.cross_entropy(model(x), labels).detach())
    step = capture_step(model, optimizer, x, labels)
    assert step.architecture.base.loss == "cross_entropy" and step.loss == pytest.approx(expected)
    with pytest.raises(WitnessBuilderError, match="class labels must be integers in 0..2"):
        capture_step(model, optimizer, x, torch.tensor([0, 1, 3, 0]))


MSE_STATEMENTS = {
    # circuit id and ONNX graph sha256 of the mse statements as they were before cross_entropy came
    "digits": (
        SgdCircuitSpec(MlpArchitecture((16, 8, 10)), 8, 0.05),
        "3559d439b1f199d3ff5b66f9399026b6e32eeb55f940edd1dd8ddafd5e619141",
        "14971a4768fc3c08c27561acad161bc891a0c54a78005d21fe3dffb593caa1e5",
    ),
    "tiny": (
        SgdCircuitSpec(MlpArchitecture((4, 3, 2)), 2, 0.05),
        "2de7e9768b15100b2618221f1a4eca2f0b6b91bdb41b39b3f3795b2d7f0cc5b1",
        "2f0b27fe43801aa65c61749e62975fd77a6ba2f7b8b7a219b8909b891220f7e5",
    ),
    "lora": (
        LoraCircuitSpec(LoraArchitecture(MlpArchitecture((16, 8, 10)), (0, 1), 2, 4.0), 8, 0.05),
        "3e4c8ce8b04862981abed0ee7ed3c070336342f4d40c2131031073d3f547915c",
        "56422361bf4d3c7bce96e116b8fe3f6522192e88c101ff05989cad6ec73a846b",
    ),
}


@pytest.mark.parametrize("name", sorted(MSE_STATEMENTS))
def test_the_mse_statements_keep_their_circuit_ids_and_graphs(name, tmp_path):
    spec, circuit_id, graph = MSE_STATEMENTS[name]
    assert spec.circuit_id() == circuit_id
    spec.write_onnx(tmp_path / "check.onnx")
    assert hashlib.sha256((tmp_path / "check.onnx").read_bytes()).hexdigest() == graph


def test_the_verifier_takes_the_statements_own_param_scale_as_its_default():
    from pot_zk.verify.statement import default_settings

    assert default_settings(SgdCircuitSpec(MlpArchitecture((6, 5, 3)), 4, 0.1))["param_scale"] == 20
    assert default_settings(SPEC)["param_scale"] == SPEC.scale == 12
    assert default_settings(SgdCircuitSpec(MlpArchitecture((6, 5, 3)), 4, 0.1, param_scale=16))["param_scale"] == 20
