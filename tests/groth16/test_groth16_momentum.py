"""The zk-groth16 statement of SGD with momentum: its exact step is torch's within a few grid
steps, the witness check and the circuit (real engine, 4-3-2 and 4-3-3) refuse a velocity or a
W_t+1 one grid step off, each forgery proves once the one constraint guarding it is removed,
and exact training keeps the weights and the optimizer's momentum buffers on the grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pot_zk.backends.groth16.momentum.circuit import VELOCITY_TEMPLATE
from pot_zk.backends.groth16.momentum.statement import Groth16MomentumStatement
from pot_zk.backends.groth16.sgd.statement import Groth16SgdStatement
from pot_zk.backends.groth16.training import ExactTraining
from pot_zk.backends.registry import spec_from_dict
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError
from pot_zk.kinds.losses import loss_value
from pot_zk.kinds.mlp import MlpArchitecture, flatten, unflatten
from pot_zk.kinds.registry import capture_step

from groth16_support import honest_momentum_step, proves, tamper, tiny_momentum_spec

LOSSES = ("mse", "cross_entropy")


def _torch_step(spec: Groth16MomentumStatement, integers: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """torch.optim.SGD(momentum, weight_decay) in float64 from the same grid values: (W_t+1, V_t+1) in grid steps."""
    grid = 2.0**spec.scale
    shapes = MlpArchitecture(spec.dims).param_shapes
    model = MlpArchitecture(spec.dims, loss=spec.loss).build().double()
    model.load_state_dict(unflatten(torch.from_numpy(integers["w_before"] / grid), shapes))
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.learning_rate, momentum=spec.momentum, weight_decay=spec.weight_decay)
    velocity = unflatten(torch.from_numpy(integers["v_before"] / grid), shapes)
    for name, parameter in model.named_parameters():
        optimizer.state[parameter]["momentum_buffer"] = velocity[name].clone()
    targets = torch.from_numpy(integers["y"] // int(grid)) if spec.loss == "cross_entropy" else torch.from_numpy(integers["y"] / grid)
    loss_value(spec.loss, model(torch.from_numpy(integers["x"] / grid)), targets).backward()
    optimizer.step()
    after = {name: optimizer.state[p]["momentum_buffer"] for name, p in model.named_parameters()}
    return flatten(dict(model.state_dict()), shapes).numpy() * grid, flatten(after, shapes).numpy() * grid


@pytest.mark.parametrize("loss", LOSSES)
def test_the_exact_momentum_step_is_torch_s_within_a_few_grid_steps(loss):
    """Measured over 200 seeds: W_t+1 within 1.22 and V_t+1 within 4.02 grid steps of torch's
    float64 step on the same grid values: V is the gradient itself, with the floors of the
    backward pass in it (lr scales them down in W); a deeper net whose floor flips a ReLU
    differs more (docs/groth16.md)."""
    worst_w = worst_v = 0.0
    for seed in range(20):
        spec = tiny_momentum_spec(loss=loss)
        integers = honest_momentum_step(spec, seed)
        w_after, v_after = _torch_step(spec, integers)
        worst_w = max(worst_w, float(np.abs(w_after - integers["w_after"]).max()))
        worst_v = max(worst_v, float(np.abs(v_after - integers["v_after"]).max()))
    assert worst_w <= 1.5 and worst_v <= 5, (worst_w, worst_v)


@pytest.mark.parametrize("loss", LOSSES)
def test_the_statement_is_its_own_circuit_and_round_trips(loss):
    spec = tiny_momentum_spec(loss=loss)
    assert spec_from_dict(spec.to_dict()) == spec
    assert spec.circuit_version == ("groth16-momentum-ce/1" if loss == "cross_entropy" else "groth16-momentum/1")
    sgd = Groth16SgdStatement(spec.dims, spec.batch_size, spec.learning_rate, loss=loss)
    assert spec.circuit_id() != sgd.circuit_id() != tiny_momentum_spec(loss=loss, momentum=0.8).circuit_id()
    assert spec.input_names == ("w_before", "batch", "w_after", "v_before", "v_after")


@pytest.mark.parametrize(("setting", "key"), [({"momentum": 1e-9}, "circuit.param_scale"), ({"momentum": 1.0}, "optimizer.momentum"), ({"weight_decay": 1e-9}, "circuit.param_scale")])
def test_a_setting_the_constants_cannot_state_is_refused(setting, key):
    with pytest.raises(ConfigurationError) as raised:
        tiny_momentum_spec(**setting)
    assert raised.value.context["key"] == key


@pytest.mark.parametrize("name", ["v_after", "w_after"])
def test_a_velocity_or_w_after_one_grid_step_off_is_refused_by_the_witness_check(name):
    spec = tiny_momentum_spec()
    integers = honest_momentum_step(spec, seed=2)
    spec.check_witness(integers)
    for offset in (1, -1):
        forged = {**integers, name: integers[name] + offset * (np.arange(spec.num_params) == 4)}
        with pytest.raises(WitnessBuilderError, match=f"{name.replace('_', ' ')} are not the exact step"):
            spec.check_witness(forged)


VELOCITY_HINT = "r <-- (mu * v + c * g + d * w + offset) % (2 ** p);"
VELOCITY_GUARD = ("remainder.in <== r;\n    mu * v", "remainder.in <== 0;\n    mu * v")
UPDATE_HINT = "r <-- (c * g + offset) % (2 ** p);"
UPDATE_GUARD = ("remainder.in <== r;\n    c * g ===", "remainder.in <== 0;\n    c * g ===")


def _forged_velocity(spec, integers):
    """V_t+1 one grid step above the exact one on parameter 4, W_t+1 its honest update."""
    v_after = integers["v_after"] + (np.arange(spec.num_params) == 4)
    w_after = integers["w_before"] - (spec.lr_fix * v_after) // 2**spec.param_scale
    return {**integers, "v_after": v_after, "w_after": w_after}


def _forged_weights(spec, integers):
    return {**integers, "w_after": integers["w_after"] - (np.arange(spec.num_params) == 4)}


FORGERIES = [
    ("a velocity one grid step off", _forged_velocity, (VELOCITY_HINT, "r <-- mu * v + c * g + d * w - v_new * (2 ** p);"), VELOCITY_GUARD),
    ("W_t+1 one grid step off", _forged_weights, (UPDATE_HINT, "r <-- c * g - (w - w_new) * (2 ** p);"), UPDATE_GUARD),
]


@pytest.mark.prover
@pytest.mark.parametrize("loss", LOSSES)
def test_an_honest_momentum_step_proves_and_verifies_with_the_five_commitments(loss, tmp_path):
    spec = tiny_momentum_spec(loss=loss)
    integers = honest_momentum_step(spec, seed=1)
    commitments = spec.commitments(integers)
    assert commitments.names == spec.public_names
    ok, report = proves(tmp_path, "honest", spec.circuit_source(), spec.circuit_inputs(integers), commitments.public_inputs())
    assert ok and report.public_outputs == 5


@pytest.mark.prover
@pytest.mark.parametrize(("what", "forge", "hint", "guard"), FORGERIES, ids=[f[0] for f in FORGERIES])
def test_a_forged_momentum_witness_has_no_proof_without_its_guard_it_has(what, forge, hint, guard, tmp_path):
    """The cheater's witness generator computes each remainder from the claimed values (the same
    constraint system): the remainder of the forged parameter is then -2**p, which only its
    range check refuses."""
    spec = tiny_momentum_spec()
    integers = honest_momentum_step(spec, seed=1)
    forged = forge(spec, integers)
    claimed = spec.commitments(forged).public_inputs()
    assert VELOCITY_TEMPLATE in spec.circuit_source()
    tampered = tamper(spec.circuit_source(), *hint)
    ok, _ = proves(tmp_path, "tampered", tampered, spec.circuit_inputs(forged), claimed)
    assert not ok, f"CRITICAL: {what} proves a false step"
    weakened, _ = proves(tmp_path, "weakened", tamper(tampered, *guard), spec.circuit_inputs(forged), claimed)
    assert weakened, f"{what}: the forgery is not what {guard[0]!r} refuses"


def test_exact_training_keeps_weights_and_momentum_buffers_on_the_grid():
    """Three torch steps, each replaced by the exact step: the model and the optimizer's momentum
    buffers hold the exact W_t+1, V_t+1 (float32, exactly), and the next captured step starts
    from them, its V_t the previous V_t+1."""
    spec = tiny_momentum_spec(loss="cross_entropy")
    torch.manual_seed(0)
    model = spec.architecture.build()
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.learning_rate, momentum=spec.momentum, weight_decay=spec.weight_decay)
    training = ExactTraining(spec)
    training.start(model)
    previous = None
    for index in range(3):
        inputs, labels = torch.rand(2, 4) * 2 - 1, torch.tensor([index % 3, (index + 1) % 3])
        step = training.step(model, optimizer, capture_step(model, optimizer, inputs, labels))
        integers = spec.integers(step)
        spec.check_witness(integers)
        if previous is not None:
            assert np.array_equal(integers["v_before"], previous["v_after"]) and np.array_equal(integers["w_before"], previous["w_after"])
        buffers = flatten({name: optimizer.state[p]["momentum_buffer"].double() for name, p in model.named_parameters()}, spec.architecture.param_shapes)
        assert np.array_equal(buffers.numpy() * 2**spec.scale, integers["v_after"])
        weights = flatten({k: v.double() for k, v in model.state_dict().items()}, spec.architecture.param_shapes)
        assert np.array_equal(weights.numpy() * 2**spec.scale, integers["w_after"])
        previous = integers
    assert previous is not None and np.abs(previous["v_after"]).max() > 0
