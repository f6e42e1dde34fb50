"""The zk-groth16 LoRA statement with softmax cross-entropy (groth16-lora-ce/2): its exact step
is torch's float step within a few grid units, an honest step proves, a step moved by one grid
unit or trained on another label does not, and its keys are not the MSE statement's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pot_zk.backends.groth16 import adapter, keys
from pot_zk.backends.groth16.lora.exact import exact_lora_step
from pot_zk.backends.groth16.prove import prove_step
from pot_zk.backends.groth16.verify import verify_groth16
from pot_zk.backends.registry import BACKENDS
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError
from pot_zk.kinds.lora.step import LoraArchitecture, attach_lora
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import capture_step

from groth16_support import lora_integers, lora_signals, tiny_lora_spec

CLASSES = 3


def ce_spec(**overrides):
    return tiny_lora_spec(dims=(4, 3, CLASSES), loss="cross_entropy", **overrides)


def honest_ce_lora_step(spec, seed: int = 0, labels=None):
    """(base, adapters before, X, labels k * 2**scale, adapters after) as integers."""
    rng = np.random.default_rng(seed)
    grid = 2.0**spec.scale
    base = np.round(rng.normal(0, 0.5, spec.num_base_params) * grid).astype(np.int64)
    adapters = np.round(rng.normal(0, 0.5, spec.num_adapter_params) * grid).astype(np.int64)
    x = np.round(rng.uniform(-1, 1, (spec.batch_size, spec.dims[0])) * grid).astype(np.int64)
    classes = np.array(labels) if labels is not None else rng.integers(0, spec.dims[-1], spec.batch_size)
    y = classes.astype(np.int64) * 2**spec.scale
    return base, adapters, x, y, exact_lora_step(spec, base, adapters, x, y)


def test_the_cross_entropy_lora_statement_has_its_own_version_labels_and_constant():
    spec, mse = ce_spec(), tiny_lora_spec(dims=(4, 3, CLASSES))
    assert (spec.circuit_version, mse.circuit_version) == ("groth16-lora-ce/2", "groth16-lora/2")
    assert spec.circuit_id() != mse.circuit_id()
    assert spec.num_batch_values == 2 * (4 + 1)  # X, then one label per sample
    assert spec.step_constant == mse.step_constant * CLASSES / 2  # lr s / N, not 2 lr s / (N d_out)
    assert type(spec).from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigurationError, match="label 9 needs value_bits >= 17"):
        tiny_lora_spec(dims=(4, 3, 10), loss="cross_entropy", value_bits=16)
    assert tiny_lora_spec(dims=(4, 3, 10), loss="cross_entropy").value_bits == 17


def test_the_exact_cross_entropy_lora_step_is_torchs_step_within_a_few_grid_units():
    """pot-zk's own adapters trained by torch on the same grid values, cross-entropy on labels."""
    spec = ce_spec()
    worst = 0.0
    for seed in range(10):
        base, adapters, x, y, after = honest_ce_lora_step(spec, seed)
        grid = 2.0**spec.scale
        model = MlpArchitecture(spec.dims).build().double()
        with torch.no_grad():
            flat = torch.from_numpy(base / grid)
            for parameter, offset, shape in zip(model.parameters(), spec.base_offsets, spec.base_shapes):
                parameter.copy_(flat[offset : offset + int(np.prod(shape))].reshape(shape))
        model = attach_lora(model, tuple(2 * layer for layer in spec.adapted), spec.rank, spec.alpha).double()
        with torch.no_grad():
            adapter_values = torch.from_numpy(adapters / grid)
            trained = [p for p in model.parameters() if p.requires_grad]
            for parameter, offset, shape in zip(trained, spec.adapter_offsets, spec.adapter_shapes):
                parameter.copy_(adapter_values[offset : offset + int(np.prod(shape))].reshape(shape))
        optimizer = torch.optim.SGD(trained, lr=spec.learning_rate)
        step = capture_step(model, optimizer, torch.from_numpy(x / grid), torch.from_numpy(y // 2**spec.scale))
        assert step.architecture == LoraArchitecture(MlpArchitecture(spec.dims, loss="cross_entropy"), spec.adapted, spec.rank, spec.alpha)
        worst = max(worst, float(np.abs(after - step.flat_after().numpy() * grid).max()))
    assert worst <= 3.0


@pytest.fixture(scope="module")
def ce_keys(groth16_cache):
    return keys.ensure_keys(ce_spec(), groth16_cache)


@pytest.mark.prover
def test_an_honest_cross_entropy_lora_step_proves_and_a_moved_or_relabelled_one_does_not(ce_keys):
    spec = ce_spec()
    base, before, x, y, after = honest_ce_lora_step(spec, seed=2, labels=(0, 2))
    for row, other in ((0, 1), (0, 2), (1, 0), (1, 1)):  # every label of this batch moves the update
        relabelled = y.copy()
        relabelled[row] = other * 2**spec.scale
        assert not np.array_equal(exact_lora_step(spec, base, before, x, relabelled), after)
    proof = prove_step(spec, ce_keys, lora_integers(base, before, x, y, after))
    held = spec.commitments(lora_integers(base, before, x, y, after))
    verifying = keys.load_verifying_key(spec, ce_keys.path)
    assert proof.commitments == held and verify_groth16(spec, proof.proof, held, verifying).ok
    moved = after.copy()
    moved[1] += 1
    with pytest.raises(WitnessBuilderError, match="not the exact step"):
        prove_step(spec, ce_keys, lora_integers(base, before, x, y, moved))
    forced = adapter.prove(ce_keys.load_proving_key(), lora_signals(base, before, x, y, moved))
    assert verify_groth16(spec, forced, spec.commitments(lora_integers(base, before, x, y, moved)), verifying).reason == "invalid-proof"
    relabelled = np.array([0, 1]) * 2**spec.scale  # the update of labels (0, 2) claimed for labels (0, 1)
    forged = adapter.prove(ce_keys.load_proving_key(), lora_signals(base, before, x, relabelled, after))
    claimed = spec.commitments(lora_integers(base, before, x, relabelled, after))
    assert verify_groth16(spec, forged, claimed, verifying).reason == "invalid-proof"


def test_the_zk_halo2_lora_statement_refuses_cross_entropy_in_one_line():
    architecture = LoraArchitecture(MlpArchitecture((4, 3, 3), loss="cross_entropy"), (0,), 2, 4.0)
    with pytest.raises(ConfigurationError, match="^the zk-halo2 LoRA statement states the mean squared error, not cross_entropy: prove LoRA"):
        BACKENDS.get("ezkl").statements.get("lora").create(architecture, 2, 0.1, {})
