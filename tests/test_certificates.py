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


def test_a_certificate_whose_revealed_products_overflow_the_round_off_bound_is_rejected(tmp_path):
    """A review's forgery: one batch row of the revealed pre-activations Z_0 near the largest
    float64 made the absolute products of the round-off bound overflow to inf, so every check
    that row touches passed, G_1 and that row's output delta were free and W_t+1 any last layer
    the trainer liked (+1.0 on each weight: 4,096 grid steps). The bound is now the verifier's
    own products, never the revealed side, and must be finite."""
    from pot_zk.kinds.reference import unpack

    spec = SgdCircuitSpec(MlpArchitecture((4, 3, 2)), batch_size=2, learning_rate=0.1)
    torch.manual_seed(0)
    model = spec.architecture.build()
    step = capture_sgd_step(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.randn(2, 4), torch.randn(2, 2))
    save_training_step(step, tmp_path / "step.safetensors")
    job = ProverRequest(0, "sgd", spec.to_dict(), str(tmp_path / "step.safetensors"), str(tmp_path / "cache"), str(tmp_path / "out"))
    certificate = Path(FreivaldsCertificate()(job).artifacts["proof"])
    honest = load_file(str(certificate.parent / "witness.safetensors"))
    (w0, b0, w1, b1), x, y = unpack(spec.architecture, 2, honest["w_before"].reshape(1, -1), honest["batch"].reshape(1, -1))
    k = spec.learning_rate * 2.0 / (2 * 2)  # mse: lr * 2 / (N d_out)
    target_w1, target_b1 = w1 + 1.0, b1 + 0.5

    def forged(row: float) -> dict[str, torch.Tensor]:
        z0 = x @ w0.t() + b0
        z0[0, :] = row
        z1 = torch.relu(z0) @ w1.t() + b1
        z1[0] = y[0] + (b1 - target_b1) / k - (z1[1:] - y[1:]).sum(0)  # row 0's delta makes b1' the target
        delta = z1 - y
        g1 = (w1 - target_w1) / k
        b_1 = delta @ w1
        g0 = (b_1 * (z0 > 0)).t() @ x
        grads = torch.cat([g0.reshape(-1), (b_1 * (z0 > 0)).sum(0), g1.reshape(-1), delta.sum(0)])
        w_after = torch.round((honest["w_before"] - grads * k) * 2**spec.scale) / 2**spec.scale
        return {"w_before": honest["w_before"], "batch": honest["batch"], "w_after": w_after, "z0": z0, "z1": z1, "g0": g0, "g1": g1, "b1": b_1}

    accepted = 0
    for attempt in range(64):  # the trainer grinds the Fiat-Shamir seed (a hash of the witness file)
        tensors = forged(1.7e308 * (1 - attempt * 1e-13))
        save_file({name: value.contiguous() for name, value in tensors.items()}, str(certificate.parent / "witness.safetensors"))
        commitment = commitment_of({name: tensors[name] for name in spec.input_names}, spec)
        try:
            verify_freivalds(spec, commitment, certificate)
            accepted += 1
        except ProofVerificationError as refused:
            assert refused.reason in ("product-check-failed", "malformed-proof"), refused.reason
    assert accepted == 0, f"CRITICAL: {accepted} of 64 forged certificates moving the last layer by 4,096 grid steps verified"


def test_a_product_error_that_one_random_projection_misses_half_the_time_is_caught_by_the_rounds(tmp_path, monkeypatch):
    """Fiat-Shamir lets a trainer regrind the challenge (review52: the seed hashes the whole
    witness file, whose metadata and float low bits are free), so a certificate's soundness is
    what one try passes with. The rounds are independent Gaussian projections: an error in G_0
    that one projection misses about half the time (at the round-off bound) passes every round
    for about half**ROUNDS of the challenge seeds. With ROUNDS = 8 a few of 256 seeds; with 2, a
    quarter of them. (Such an error cannot move W_t+1 past the tolerance; one that could passes
    one projection some 1e-7 of the time: 1e-14 a try at 2 rounds, 1e-56 at 8.)"""
    from pot_zk.backends.certificates import freivalds
    from pot_zk.backends.certificates.revealed import load_certificate

    _, commitment, certificate = _certify("freivalds", tmp_path)
    honest = load_certificate(certificate, "freivalds", SPEC, commitment)
    seeds = iter(range(10**9))
    monkeypatch.setattr(freivalds, "_challenge_seed", lambda *_: next(seeds))

    def passes(error: float, tries: int, rounds: int | None = None) -> int:
        forged = {**honest, "g0": honest["g0"].clone()}
        forged["g0"][0, 0] += error
        with monkeypatch.context() as patch:
            patch.setattr(freivalds, "load_certificate", lambda *_: forged)
            if rounds is not None:
                patch.setattr(freivalds, "ROUNDS", rounds)
            accepted = 0
            for _ in range(tries):
                try:
                    verify_freivalds(SPEC, commitment, certificate)
                except ProofVerificationError as exc:
                    assert exc.reason == "product-check-failed", exc
                else:
                    accepted += 1
        return accepted

    low, high = 1e-16, 1.0  # relative to G_0's largest entry; the share of seeds passing one round falls as the error grows
    scale = float(honest["g0"].abs().max())
    for _ in range(12):  # bisect (in log scale) to an error one round misses about half the time
        middle = (low * high) ** 0.5
        low, high = (middle, high) if passes(scale * middle, 48, rounds=1) > 24 else (low, middle)
    error = scale * (low * high) ** 0.5
    half = passes(error, 256, rounds=1) / 256
    assert 0.3 <= half <= 0.7, (error, half)
    assert freivalds.ROUNDS >= 8  # what docs/proofs.md argues; and the rounds are all applied, each independent:
    assert passes(error, 256) <= 3 * 256 * half**freivalds.ROUNDS + 3, (error, half)
