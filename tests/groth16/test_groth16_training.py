"""Exact-mode training and the run's commitment scheme for zk-groth16: the model trains with the
statement's integers, and what the run commits is what the circuit outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pot_zk.backends.groth16.integers import dequantise

from pot_zk.backends.groth16.sgd.exact import exact_sgd_step

from pot_zk.backends.groth16.integers import quantise_batch

from pot_zk.backends.groth16.integers import quantise_weights
from pot_zk.backends.groth16.lora.exact import exact_lora_step

from pot_zk.backends.groth16.scheme import PackedPoseidon
from pot_zk.backends.groth16.sgd.statement import Groth16SgdStatement
from pot_zk.backends.groth16.training import ExactTraining
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError
from pot_zk.kinds.lora.step import attach_lora
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import capture_step, kind_of
from pot_zk.data.datasets import fixed_batches, load_dataset

from groth16_support import honest_step, lora_integers, sgd_integers, tiny_lora_spec, tiny_spec


def _ints(spec, values: torch.Tensor) -> np.ndarray:
    return quantise_weights(values.numpy(), spec.scale, spec.value_bits)


def _digits_batches(dims, batch_size, count):
    x, y = load_dataset("digits", dims[0], dims[-1], 256, 0)
    return fixed_batches(x, y, batch_size, 0)[:count]


def test_the_scheme_commits_a_step_as_the_circuit_does():
    spec = tiny_spec()
    w, x, y, w_after = honest_step(spec, seed=3)
    scheme = PackedPoseidon(spec.scale, spec.value_bits)
    as_float = {name: torch.from_numpy(dequantise(v, spec.scale)) for name, v in (("w", w), ("x", x), ("y", y), ("after", w_after))}
    batch = torch.cat([as_float["x"].reshape(-1), as_float["y"].reshape(-1)])
    held = spec.commitments(sgd_integers(w, x, y, w_after))
    assert scheme.commit(as_float["w"], "w") == held.values["w_before"]
    assert scheme.commit(batch, "batch") == held.values["batch"]
    assert scheme.commit(as_float["after"], "w'") == held.values["w_after"]
    assert scheme.commit(as_float["after"] + 2.0**-spec.scale, "w'") != held.values["w_after"]


def test_the_scheme_rounds_onto_the_grid_and_refuses_values_out_of_range():
    scheme = PackedPoseidon(12, 16)
    values = torch.tensor([0.1, -0.1, 2.0**-13, -(2.0**-13)], dtype=torch.float64)
    snapped = scheme.snap(values, "v")
    assert torch.equal(snapped * 4096, torch.round(snapped * 4096))
    assert snapped.tolist() == [410 / 4096, -410 / 4096, 1 / 4096, -1 / 4096]  # halves away from zero
    with pytest.raises(WitnessBuilderError, match="v out of range"):
        scheme.commit(torch.tensor([8.0], dtype=torch.float64), "v")


def test_exact_training_snaps_the_model_and_replaces_every_update_by_the_exact_step():
    spec = Groth16SgdStatement((16, 8, 10), 8, 0.05)
    torch.manual_seed(0)
    model = MlpArchitecture(spec.dims).build()
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.learning_rate)
    arithmetic = ExactTraining(spec)
    arithmetic.start(model)
    for parameter in model.parameters():
        assert torch.equal(parameter * 4096, torch.round(parameter * 4096))
    for batch in _digits_batches(spec.dims, 8, 5):
        float_step = capture_step(model, optimizer, batch.inputs, batch.targets)
        x = quantise_batch(batch.inputs.numpy(), 12, 16).reshape(8, 16)
        y = quantise_batch(batch.targets.numpy(), 12, 16).reshape(8, 10)
        before = _ints(spec, float_step.flat_before())
        with pytest.raises(WitnessBuilderError, match="not the exact step"):
            spec.check_witness(sgd_integers(before, x, y, np.round(float_step.flat_after().numpy() * 4096).astype(np.int64)))
        step = arithmetic.step(model, optimizer, float_step)
        assert np.array_equal(_ints(spec, step.flat_after()), exact_sgd_step(spec, before, x, y))
        spec.check_witness(sgd_integers(before, x, y, _ints(spec, step.flat_after())))
        in_model = kind_of(step).model_tensors(model.state_dict(), step.architecture)["weights"]
        assert torch.equal(in_model, step.flat_after())
        assert step.loss == float_step.loss and torch.equal(step.flat_before(), float_step.flat_before())


def test_a_step_the_statement_cannot_describe_stops_training_naming_the_tensor():
    spec = Groth16SgdStatement((4, 3, 2), 2, 0.1, quotient_bits=16)
    model = MlpArchitecture(spec.dims).build()
    with torch.no_grad():
        model[0].weight.fill_(7.75)
    ExactTraining(spec).start(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = capture_step(model, optimizer, torch.full((2, 4), 7.9), torch.zeros(2, 2))
    with pytest.raises(WitnessBuilderError, match="layer 1 pre-activation z"):
        ExactTraining(spec).step(model, optimizer, step)


def _lora_model(spec, base_on_grid: bool):
    torch.manual_seed(1)
    base = MlpArchitecture(spec.dims).build()
    if base_on_grid:
        ExactTraining(tiny_spec()).start(base)
    return attach_lora(base, tuple(2 * layer for layer in spec.adapted), spec.rank, spec.alpha)


def test_exact_lora_training_updates_the_adapters_exactly_and_leaves_the_base():
    spec = tiny_lora_spec()
    model = _lora_model(spec, base_on_grid=True)
    base_before = {k: v.clone() for k, v in model.state_dict().items() if "lora" not in k}
    arithmetic = ExactTraining(spec)
    arithmetic.start(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=spec.learning_rate)
    torch.manual_seed(2)
    inputs, targets = torch.rand(2, 4) * 2 - 1, torch.randn(2, 2)
    step = arithmetic.step(model, optimizer, capture_step(model, optimizer, inputs, targets))
    x = quantise_batch(inputs.double().numpy(), 12, 16).reshape(2, 4)
    y = quantise_batch(targets.double().numpy(), 12, 16).reshape(2, 2)
    base, before = _ints(spec, step.flat_base()), _ints(spec, step.flat_before())
    assert np.array_equal(_ints(spec, step.flat_after()), exact_lora_step(spec, base, before, x, y))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in base_before.items())
    spec.commitments(lora_integers(base, before, x, y, _ints(spec, step.flat_after())))


def test_exact_lora_training_refuses_a_base_off_the_grid():
    spec = tiny_lora_spec()
    with pytest.raises(ConfigurationError, match="not on the 2\\*\\*-12 grid.*prover=groth16") as raised:
        ExactTraining(spec).start(_lora_model(spec, base_on_grid=False))
    assert raised.value.context["key"] == "model.base_run"
