"""The zk-groth16 statement of Adam and AdamW steps: its exact step is the float64 reference's
(torch's update) within a grid step, the witness check refuses a moment, a step count or a
W_t+1 one unit off, honest steps prove with nine commitments (real engine), and exact training
keeps the weights, the moments (beyond float32) and torch's step count on the statement's grids.
The forgeries against each constraint are in test_groth16_adamw_forgery.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pot_zk.backends.groth16 import adapter
from pot_zk.backends.groth16.adamw.circuit import ADAMW_TEMPLATES
from pot_zk.backends.groth16.adamw.exact import check_first_moment, power
from pot_zk.backends.groth16.adamw.spec import BIAS_SCALE, MOMENT_BITS, MOMENT_SCALE, SECOND_SCALE
from pot_zk.backends.groth16.circuit_writer import gadget_source
from pot_zk.backends.groth16.training import ExactTraining
from pot_zk.backends.registry import spec_from_dict
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError
from pot_zk.kinds.adamw.reference import adamw_reference
from pot_zk.kinds.adamw.step import optimizer_state
from pot_zk.kinds.mlp import flatten
from pot_zk.kinds.registry import capture_step

from groth16_support import proves, tiny_adamw_spec

LOSSES = ("mse", "cross_entropy")
GRID = {"w": 12, "m": MOMENT_SCALE, "v": SECOND_SCALE}


def _reference(spec, integers):
    """The float64 reference on the same grid values, in each tensor's grid units."""
    named = {
        "w_before": torch.from_numpy(integers["w_before"] / 2.0**12),
        "batch": torch.cat([torch.from_numpy(integers["x"] / 2.0**12).reshape(-1), torch.from_numpy(integers["y"] / 2.0**12).reshape(-1)]),
        "m_before": torch.from_numpy(integers["m_before"] / 2.0 ** GRID["m"]),
        "v_before": torch.from_numpy(integers["v_before"] / 2.0 ** GRID["v"]),
        "t_before": torch.tensor([float(integers["t_before"][0])], dtype=torch.float64),
    }
    reference = adamw_reference(spec.architecture, spec.batch_size, spec.learning_rate, named)
    return {name: reference[f"{name}_after"].numpy() * 2.0**GRID[name] for name in GRID}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("decoupled", [True, False], ids=["adamw", "adam"])
def test_the_exact_step_is_the_float_reference_within_a_grid_step(loss, decoupled):
    """Measured over 50 steps each (step counts 1 to 7): W_t+1 within 0.98 grid steps of the
    reference (torch's update), m_t+1 within 8.8 units of 2**-18 (the backward pass's floors,
    and m' truncated towards zero), v_t+1 within 0.12 % (docs/groth16.md)."""
    worst = {"w": 0.0, "m": 0.0, "v": 0.0}
    for seed in range(50):
        spec = tiny_adamw_spec(loss=loss, weight_decay=0.05, decoupled_weight_decay=decoupled)
        integers = spec.sample_step(seed)
        integers["t_before"] = np.array([seed % 7])
        integers.update(spec.exact_step(integers))
        reference = _reference(spec, integers)
        worst["w"] = max(worst["w"], float(np.abs(reference["w"] - integers["w_after"]).max()))
        worst["m"] = max(worst["m"], float(np.abs(reference["m"] - integers["m_after"]).max()))
        worst["v"] = max(worst["v"], float((np.abs(reference["v"] - integers["v_after"]) / np.maximum(integers["v_after"], 1)).max()))
    assert worst["w"] <= 1.0 and worst["m"] <= 10.0 and worst["v"] <= 0.002, worst


def test_the_powers_of_the_betas_are_b_to_the_t_within_2_to_the_minus_24():
    """The rounded square-and-multiply chain (measured over t < 20000 and around each power of
    two up to 2**22: 1.3 units of 2**-32 for 0.9, 165 for 0.999, at t = 1021)."""
    spec = tiny_adamw_spec()
    for beta, constants in zip(spec.betas, spec.powers):
        for count in (1, 2, 5, 100, 1021, 1000, 10**5, 2**22 - 1):
            assert abs(power(constants, count) - beta**count * 2**BIAS_SCALE) <= 256, (beta, count)


@pytest.mark.parametrize("loss", LOSSES)
def test_the_statement_is_its_own_circuit_and_round_trips(loss):
    spec = tiny_adamw_spec(loss=loss)
    assert spec_from_dict(spec.to_dict()) == spec
    assert spec.circuit_version == ("groth16-adamw-ce/1" if loss == "cross_entropy" else "groth16-adamw/1")
    others = [tiny_adamw_spec(loss=loss, decoupled_weight_decay=False), tiny_adamw_spec(loss=loss, betas=(0.8, 0.999)), tiny_adamw_spec(loss=loss, eps=1e-6)]
    assert len({spec.circuit_id(), *(other.circuit_id() for other in others)}) == 4
    assert spec.input_names == ("w_before", "batch", "w_after", "m_before", "m_after", "v_before", "v_after", "t_before", "t_after")


@pytest.mark.parametrize(("setting", "key"), [
    ({"eps": 1e-12}, "optimizer.eps"),
    ({"betas": (0.9, 1.0 - 2.0**-40)}, "optimizer.betas"),
    ({"learning_rate": 1e-9}, "train.learning_rate"),
    ({"weight_decay": 1e-6}, "optimizer.weight_decay"),
])
def test_a_setting_the_constants_cannot_state_is_refused(setting, key):
    with pytest.raises(ConfigurationError) as raised:
        tiny_adamw_spec(**setting)
    assert raised.value.context["key"] == key


def test_a_learning_rate_whose_update_division_could_pass_the_field_modulus_is_refused():
    """The update's numerator lr_fix m' f 2**e grows with the rate: at 1e45 it could reach 231
    bits, past the 200 every equation stays below (a review found the bound left it out: a spec
    at 1e60 was accepted and its division held only mod p)."""
    assert tiny_adamw_spec(learning_rate=1e15).update_bound() < 2**200
    with pytest.raises(ConfigurationError, match=r"could reach 231 bits \(limit 200\); lower param_scale or the learning rate"):
        tiny_adamw_spec(learning_rate=1e45)


def test_the_reference_refuses_the_first_moment_the_circuit_cannot_prove(tmp_path):
    """m' = -2**21 is in m's committed 22-bit range, but its towards-zero rounding (TruncCheck:
    a sign bit and a magnitude below 2**21) has no witness for it: the reference refuses it, so
    an honest step never reaches a value it cannot prove (found by a review); one unit inside,
    both accept."""
    spec = tiny_adamw_spec()
    low = -(2 ** (MOMENT_BITS - 1))
    p, b1 = spec.param_scale, spec.beta_fix[0]
    for m_after in (low, low + 1):
        acc = b1 * m_after + (2**p - b1) * m_after  # m = g = m': the rounding is exact
        main = (f"template Main() {{ signal input acc; signal input out; component t = TruncCheck({p}, {MOMENT_BITS}); "
                "t.acc <== acc; t.out <== out; }\ncomponent main = Main();")
        path = tmp_path / f"trunc{m_after - low}.circom"
        path.write_text(gadget_source(main, ADAMW_TEMPLATES))
        pk, vk, _ = adapter.setup(path)
        try:
            proved = adapter.verify(vk, adapter.prove(pk, {"acc": acc, "out": m_after}), [])[0]
        except WitnessBuilderError:
            proved = False
        if m_after == low:
            assert not proved
            with pytest.raises(WitnessBuilderError, match="first moment after the step out of range"):
                check_first_moment(np.array([m_after], dtype=object))
        else:
            assert proved
            check_first_moment(np.array([m_after], dtype=object))


@pytest.mark.parametrize("name", ["w_after", "m_after", "v_after", "t_after"])
def test_state_after_the_step_one_unit_off_is_refused_by_the_witness_check(name):
    spec = tiny_adamw_spec()
    integers = spec.sample_step(2)
    spec.check_witness(integers)
    for offset in (1, -1):
        forged = {**integers, name: integers[name] + offset * (np.arange(integers[name].size) == 0)}
        with pytest.raises(WitnessBuilderError, match=f"{name.replace('_', ' ')} are not the exact step"):
            spec.check_witness(forged)


def test_a_negative_second_moment_is_refused():
    spec = tiny_adamw_spec()
    integers = spec.sample_step(2)
    integers["v_before"] = integers["v_before"].copy()
    integers["v_before"][3] = -1
    with pytest.raises(WitnessBuilderError, match="second moment before the step has 1 negative value"):
        spec.exact_step(integers)


@pytest.mark.prover
@pytest.mark.parametrize(("loss", "decoupled"), [("mse", True), ("cross_entropy", False)], ids=["adamw-mse", "adam-ce"])
def test_an_honest_step_proves_and_verifies_with_the_nine_commitments(loss, decoupled, tmp_path):
    spec = tiny_adamw_spec(loss=loss, decoupled_weight_decay=decoupled)
    integers = spec.sample_step(1)
    commitments = spec.commitments(integers)
    assert commitments.names == spec.public_names
    ok, report = proves(tmp_path, "honest", spec.circuit_source(), spec.circuit_inputs(integers), commitments.public_inputs())
    assert ok and report.public_outputs == 9


@pytest.mark.parametrize("name", ["adamw", "adam"])
def test_exact_training_keeps_weights_moments_and_step_count_on_the_statement_s_grids(name):
    """Four torch steps on a float32 model, each replaced by the exact step: the model holds
    W_t+1 exactly, the optimizer's float64 copies m_t+1 and v_t+1 (v beyond float32) and its
    ``step`` t; each captured step starts from the last one's state."""
    spec = tiny_adamw_spec(loss="cross_entropy", decoupled_weight_decay=name == "adamw")
    torch.manual_seed(0)
    model = spec.architecture.build()
    optimizer = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[name](model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay)
    training = ExactTraining(spec)
    training.start(model)
    previous = None
    exact_beyond_float32 = False
    for index in range(4):
        inputs, labels = torch.rand(2, 4) * 2 - 1, torch.tensor([index % 3, (index + 1) % 3])
        step = training.step(model, optimizer, capture_step(model, optimizer, inputs, labels))
        integers = spec.integers(step)
        spec.check_witness(integers)
        assert int(integers["t_after"][0]) == index + 1
        if previous is not None:
            for state in ("w", "m", "v", "t"):
                assert np.array_equal(integers[f"{state}_before"], previous[f"{state}_after"]), state
        m, v, count = optimizer_state(model, optimizer)
        shapes = spec.architecture.param_shapes
        assert count == index + 1 and np.array_equal(flatten(v, shapes).numpy() * 2.0**SECOND_SCALE, integers["v_after"])
        assert np.array_equal(flatten(m, shapes).numpy() * 2.0**MOMENT_SCALE, integers["m_after"])
        weights = flatten({k: t.double() for k, t in model.state_dict().items()}, shapes)
        assert np.array_equal(weights.numpy() * 2.0**12, integers["w_after"])
        own = flatten({n: optimizer.state[p]["exp_avg_sq"].double() for n, p in model.named_parameters()}, shapes)
        exact_beyond_float32 |= not torch.equal(own, flatten(v, shapes))
        previous = integers
    assert exact_beyond_float32, "float32 held every v exactly: the float64 copies were never needed"


def test_a_parameter_whose_gradient_stops_stops_moving():
    """A zero input column gives its weights gradient 0: as in float, their m decays to 0 and so
    does their update (m' truncated towards zero; rounded to the nearest, m stalled at a few
    units while v decayed, and the weight kept moving by ~3 lr per step)."""
    spec = tiny_adamw_spec(dims=(3, 2, 2), weight_decay=0.0)
    integers = {name: values for name, values in spec.sample_step(5).items() if not name.endswith("_after")}
    integers["x"][:, 0] = 0
    integers["m_before"][0] = round(0.05 * 2**MOMENT_SCALE)
    for _ in range(80):
        after = spec.exact_step(integers)
        moved = int(after["w_after"][0] - integers["w_before"][0])
        integers = {**integers, **{name.replace("_after", "_before"): values for name, values in after.items()}}
    assert int(integers["m_before"][0]) == 0 and moved == 0, (int(integers["m_before"][0]), moved)
