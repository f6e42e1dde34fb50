"""The exact fixed-point SGD step and its statement spec (no proving)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pot_zk.backends.groth16 import integers
from pot_zk.backends.groth16.sgd import exact
from pot_zk.backends.groth16.sgd.statement import Groth16SgdStatement
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError

from groth16_support import honest_step, tiny_spec


def float64_step(spec: Groth16SgdStatement, w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """torch's SGD step on the same grid values, in float64, in units of the grid."""
    grid = 2.0**spec.scale
    params = [torch.tensor(part / grid, requires_grad=True) for part in exact.split_params(spec, w)]
    h = torch.tensor(x / grid)
    for layer in range(spec.num_layers):
        h = h @ params[2 * layer].T + params[2 * layer + 1]
        if layer < spec.num_layers - 1:
            h = torch.relu(h)
    torch.nn.functional.mse_loss(h, torch.tensor(y / grid)).backward()
    return np.concatenate([(p - spec.learning_rate * p.grad).detach().numpy().reshape(-1) for p in params]) * grid


@pytest.mark.parametrize("dims,batch", [((4, 3, 2), 2), ((16, 8, 10), 8), ((5, 4, 3, 2), 3)])
def test_exact_step_is_within_two_grid_steps_of_a_float64_step(dims, batch):
    spec = Groth16SgdStatement(dims, batch, 0.1)
    worst = 0.0
    for seed in range(20):
        w, x, y, w_after = honest_step(spec, seed)
        worst = max(worst, float(np.abs(w_after - float64_step(spec, w, x, y)).max()))
        assert not np.array_equal(w_after, w)
    assert worst <= 2.0


def test_exact_step_matches_hand_computed_floors():
    spec = Groth16SgdStatement((1, 1), 1, 0.5, scale=2, param_scale=4)  # c = 2*0.5/(1*1) = 1, c_fix = 16
    # z = floor(3 * -5 / 4) + 1 = -4 + 1 = -3; delta = -3 - 2 = -5
    # GW = -5 * 3 = -15; gb = -5; W' = -5 - floor(16 * -15 / 2^6) = -1; b' = 1 - floor(16 * -5 / 2^4) = 6
    w_after = exact.exact_sgd_step(spec, np.array([-5, 1]), np.array([[3]]), np.array([[2]]))
    assert w_after.tolist() == [-1, 6]


def test_the_weight_gradient_is_rounded_once_in_the_update():
    spec = Groth16SgdStatement((1, 1), 1, 0.75, scale=2, param_scale=4)  # c = 1.5, c_fix = 24
    # z = floor(1 * -4 / 4) + 0 = -1; delta = -1 - 12 = -13; GW = -13
    # W' = -4 - floor(24 * -13 / 2^6) = -4 + 5 = 1 (rounding gW = floor(-13 / 4) = -4 first: -4 + 6 = 2)
    # b' = 0 - floor(24 * -13 / 2^4) = 20
    w_after = exact.exact_sgd_step(spec, np.array([-4, 0]), np.array([[1]]), np.array([[12]]))
    assert w_after.tolist() == [1, 20]


def test_relu_derivative_at_zero_is_zero():
    spec = Groth16SgdStatement((1, 1, 1), 1, 0.5, scale=2, param_scale=4)
    # hidden z = floor(4 * 1 / 4) - 1 = 0: relu(0) = 0 and no gradient flows into layer 1
    w = np.array([1, -1, 3, 0])
    w_after = exact.exact_sgd_step(spec, w, np.array([[4]]), np.array([[4]]))
    assert w_after[:2].tolist() == [1, -1]
    assert w_after[2:].tolist() != [3, 0]


def test_off_grid_weight_is_refused_and_batch_values_round_half_away_from_zero():
    with pytest.raises(WitnessBuilderError) as caught:
        integers.quantise_weights(np.array([0.5, 0.25 + 2.0**-14]), 12, 16, "weights before the step")
    assert caught.value.context["tensor"] == "weights before the step"
    assert caught.value.context["first_index"] == 1
    assert integers.quantise_weights(np.array([0.5, -0.25]), 12, 16).tolist() == [2048, -1024]
    half = 2.0**-13
    assert integers.quantise_batch(np.array([half, -half, 3 * half, 0.1]), 12, 16).tolist() == [1, -1, 2, 410]
    assert integers.dequantise(np.array([2048, -1]), 12).tolist() == [0.5, -(2.0**-12)]


@pytest.mark.parametrize("value", [8.0, -8.0 - 2.0**-12, float("nan")])
def test_batch_value_outside_the_value_range_is_a_typed_error(value):
    with pytest.raises(WitnessBuilderError) as caught:
        integers.quantise_batch(np.array([0.0, value]), 12, 16, "batch inputs X")
    assert caught.value.context["tensor"] == "batch inputs X"


def test_value_range_is_the_signed_value_bits_range():
    assert integers.quantise_batch(np.array([-8.0, 8.0 - 2.0**-12]), 12, 16).tolist() == [-32768, 32767]


@pytest.mark.parametrize("tensor,index", [("weights", 0), ("X", 1), ("Y", 2)])
def test_out_of_range_input_to_the_step_names_the_tensor(tensor, index):
    spec = tiny_spec()
    inputs = list(honest_step(spec)[:3])
    inputs[index] = inputs[index].copy()
    inputs[index].reshape(-1)[0] = 2**15
    with pytest.raises(WitnessBuilderError) as caught:
        exact.exact_sgd_step(spec, *inputs)
    assert caught.value.context["tensor"] == tensor


def test_quotient_out_of_bound_names_the_layer():
    spec = tiny_spec(quotient_bits=16)
    w, x, y, _ = honest_step(spec)
    w = np.full_like(w, 2**15 - 1)
    x = np.full_like(x, 2**15 - 1)
    with pytest.raises(WitnessBuilderError) as caught:
        exact.exact_sgd_step(spec, w, x, y)
    assert caught.value.context["tensor"] == "layer 1 pre-activation z"


def test_weights_after_the_update_must_fit_the_value_range():
    spec = Groth16SgdStatement((1, 1), 1, 1.0, scale=2, param_scale=4)  # c = 2: b' = b - 2 (b - y) = 2y - b
    with pytest.raises(WitnessBuilderError) as caught:
        exact.exact_sgd_step(spec, np.array([-5, 2**15 - 1]), np.array([[0]]), np.array([[-2**15]]))
    assert caught.value.context["tensor"] == "layer 1 bias after the update"


def test_step_rejects_wrong_shapes_and_float_tensors():
    spec = tiny_spec()
    w, x, y, _ = honest_step(spec)
    with pytest.raises(WitnessBuilderError):
        exact.exact_sgd_step(spec, w[:-1], x, y)
    with pytest.raises(WitnessBuilderError):
        exact.exact_sgd_step(spec, w.astype(np.float64), x, y)


def test_spec_round_trips_and_its_id_changes_with_every_field():
    spec = tiny_spec()
    data = spec.to_dict()
    assert data["kind"] == "sgd" and data["backend"] == "groth16"
    assert Groth16SgdStatement.from_dict(data) == spec
    ids = {spec.circuit_id()}
    for change in ({"learning_rate": 0.05}, {"dims": (4, 3, 3)}, {"batch_size": 3}, {"scale": 11}, {"param_scale": 21}, {"value_bits": 15}, {"quotient_bits": 23}):
        ids.add(tiny_spec(**change).circuit_id())
    assert len(ids) == 8


def test_update_constant_rounds_half_away_from_zero():
    assert tiny_spec().c_fix == 52429  # 0.05 * 2**20 = 52428.8
    assert Groth16SgdStatement((1, 1), 1, 0.5, param_scale=4).c_fix == 16
    assert Groth16SgdStatement((1, 1), 1, 2.0**-6, param_scale=4).c_fix == 1  # 0.5 -> 1


@pytest.mark.parametrize(
    "change,key",
    [
        ({"learning_rate": 1e-9}, "param_scale"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"dims": (4,)}, "dims"),
        ({"batch_size": 0}, "batch_size"),
        ({"quotient_bits": 40, "value_bits": 24}, "quotient_bits"),
        ({"value_bits": 25, "quotient_bits": 24}, "quotient_bits"),
        ({"scale": 0}, "scale"),
        ({"circuit_version": "groth16-sgd/0"}, "circuit_version"),
    ],
)
def test_bad_spec_values_are_configuration_errors(change, key):
    with pytest.raises(ConfigurationError) as caught:
        tiny_spec(**change)
    assert caught.value.key == key


def test_malformed_spec_dicts_are_configuration_errors():
    data = tiny_spec().to_dict()
    for broken in ({**data, "backend": "ezkl"}, {**data, "batch_size": "2"}, {k: v for k, v in data.items() if k != "scale"}):
        with pytest.raises(ConfigurationError):
            Groth16SgdStatement.from_dict(broken)
