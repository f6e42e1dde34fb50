"""The exact cross-entropy SGD step and its zk-groth16 proofs with the real engine (4-3-3, batch 2):
the step is torch's float64 cross-entropy step to a couple of grid steps, an honest step proves
and verifies, and a W_t+1 one grid step off, another label or a label off the class grid has no
proof that verifies against the committed batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pot_zk.backends.groth16 import adapter, keys

from pot_zk.backends.groth16.sgd.exact import exact_sgd_step

from pot_zk.backends.groth16.sgd.exact import split_params
from pot_zk.backends.groth16.prove import prove_step
from pot_zk.backends.groth16.sgd.statement import Groth16SgdStatement
from pot_zk.exceptions import WitnessBuilderError

from groth16_support import honest_ce_step, sgd_integers, sgd_signals, tiny_ce_spec, tiny_spec

pytestmark = pytest.mark.prover


def float64_ce_step(spec: Groth16SgdStatement, w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """torch's SGD step with cross_entropy (mean over the batch) on the same grid values, in grid units."""
    grid = 2.0**spec.scale
    params = [torch.tensor(part / grid, requires_grad=True) for part in split_params(spec, w)]
    h = torch.tensor(x / grid)
    for layer in range(spec.num_layers):
        h = h @ params[2 * layer].T + params[2 * layer + 1]
        if layer < spec.num_layers - 1:
            h = torch.relu(h)
    torch.nn.functional.cross_entropy(h, torch.tensor(y // 2**spec.scale)).backward()
    return np.concatenate([(p - spec.learning_rate * p.grad).detach().numpy().reshape(-1) for p in params]) * grid


@pytest.mark.parametrize("dims,batch,lr", [((4, 3, 3), 2, 0.1), ((16, 8, 10), 8, 0.3), ((5, 4, 3, 4), 3, 0.5)])
def test_the_exact_cross_entropy_step_is_within_two_grid_steps_of_torch_s(dims, batch, lr):
    spec = Groth16SgdStatement(dims, batch, lr, loss="cross_entropy")
    worst = 0.0
    for seed in range(20):
        w, x, y, w_after = honest_ce_step(spec, seed)
        worst = max(worst, float(np.abs(w_after - float64_ce_step(spec, w, x, y)).max()))
        assert not np.array_equal(w_after, w)
    assert worst <= 2.0, worst


def test_labels_off_the_class_grid_are_refused_by_the_reference():
    spec = tiny_ce_spec()
    w, x, y, _ = honest_ce_step(spec)
    for bad in (np.array([4097, 0]), np.array([3 * 4096, 0]), np.array([-4096, 0])):
        with pytest.raises(WitnessBuilderError, match="class labels must be integers in 0..2") as raised:
            exact_sgd_step(spec, w, x, bad)
        assert raised.value.context["tensor"] == "Y"


@pytest.fixture(scope="module")
def ce_keys(groth16_cache):
    return keys.ensure_keys(tiny_ce_spec(), groth16_cache)


def _forced(key_dir, spec, w, x, y, w_after) -> bool:
    """A cheater's proof (no reference check) verified against the commitments of its own witness."""
    proof = adapter.prove(key_dir.load_proving_key(), sgd_signals(w, x, y, w_after))
    return adapter.verify(key_dir.load_verifying_key(), proof, spec.commitments(sgd_integers(w, x, y, w_after)).public_inputs())[0]


def test_an_honest_cross_entropy_step_proves_and_verifies(ce_keys):
    spec = tiny_ce_spec()
    w, x, y, w_after = honest_ce_step(spec, labels=(0, 2))
    proof = prove_step(spec, ce_keys, sgd_integers(w, x, y, w_after))
    assert len(proof.proof) == 256 and proof.circuit_id == spec.circuit_id() != tiny_spec(dims=(4, 3, 3)).circuit_id()
    vk = ce_keys.load_verifying_key()
    assert adapter.verify(vk, proof.proof, spec.commitments(sgd_integers(w, x, y, w_after)).public_inputs()) == (True, None)
    assert "SoftmaxRow(3, 12, 24)" in spec.circuit_source() and "OneHotLabel(3, 12)" in spec.circuit_source()


def test_w_after_one_grid_step_off_has_no_proof(ce_keys):
    spec = tiny_ce_spec()
    w, x, y, w_after = honest_ce_step(spec, labels=(1, 0))
    moved = w_after.copy()
    moved[7] += 1
    with pytest.raises(WitnessBuilderError, match="not the exact step on this batch"):
        prove_step(spec, ce_keys, sgd_integers(w, x, y, moved))
    assert _forced(ce_keys, spec, w, x, y, w_after)  # the forced path proves an honest witness
    assert not _forced(ce_keys, spec, w, x, y, moved)


def test_another_label_has_no_proof(ce_keys):
    spec = tiny_ce_spec()
    w, x, y, w_after = honest_ce_step(spec, labels=(1, 0))
    other = np.array([2 * 4096, 0])
    assert not np.array_equal(exact_sgd_step(spec, w, x, other), w_after)
    # the update of label 1, claimed for a batch committed with label 2
    assert not _forced(ce_keys, spec, w, x, other, w_after)
    # the honest proof does not verify against the batch commitment of another label
    proof = prove_step(spec, ce_keys, sgd_integers(w, x, y, w_after))
    claimed = spec.commitments(sgd_integers(w, x, other, w_after)).public_inputs()
    assert adapter.verify(ce_keys.load_verifying_key(), proof.proof, claimed)[0] is False


def test_a_label_off_the_class_grid_has_no_proof(ce_keys):
    spec = tiny_ce_spec()
    w, x, y, w_after = honest_ce_step(spec, labels=(1, 0))
    assert not _forced(ce_keys, spec, w, x, np.array([4096 + 1, 0]), w_after)
