"""Forgeries that kill circuit mutants the other forgery tests let live (review28: mutation testing of the circuits).

Each test is in the style of the existing forgery tests: the cheater's witness generator is the
circuit's own with prover hints (``<--``) changed (the same constraint system), the claimed state
after the step is the reference's with the forged intermediate, the real circuit has no proof of
it, and the circuit with the one guarding constraint removed (or narrowed) has one. The existing
forgeries solve each remainder hint from the value they claim, so a remainder's range check
refuses them: the equation that pins the quotient is never the constraint in the way, and a
circuit without it passes them. Here the remainders are left honest (or the sign bit is a field
element), so only the equation (or the sign bit's check) refuses the forgery.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from pot_zk.backends.groth16.adamw import exact as adamw_exact
from pot_zk.backends.groth16.sgd import exact as sgd_exact
from pot_zk.backends.groth16.sgd.exact import exact_sgd_step

from test_groth16_adamw_forgery import DIVIDE_OUT, ROUND_OUT, TRUNC_GUARD, TRUNC_REST, TRUNC_SIGN, _shifted  # the same hints, edited alike

from groth16_support import honest_momentum_step, honest_step, proves, sgd_integers, sgd_signals, tamper, tiny_adamw_spec, tiny_momentum_spec, tiny_spec

pytestmark = pytest.mark.prover

FLOOR_Z_HINT = "z <-- (acc + offset) \\ (2 ** k) - offset \\ (2 ** k) + add;"
FLOOR_EQUATION = "    acc === (z - add) * (2 ** k) + r;\n"
RELU_HINT = "inverse <-- z != 0 ? 1 / z : 0;"
RELU_ZERO_TEST = "    z * zero === 0;\n"


def _removed(source: str, line: str) -> str:
    assert source.count(line) == 1, line
    return source.replace(line, "")


def test_a_forward_quotient_one_off_with_its_true_remainder_has_no_proof_without_floordivs_equation(tmp_path):
    """The output logit z2[0][0] claimed 2^12 units (one real unit) up, its remainder hint the honest one (in
    range, so no range check is in the way): only FloorDivCheck's equation refuses it. For mse a
    logit one up is the honest step on a target one down, so the claimed W_t+1 is
    exact_sgd_step on (X, Y - 2^12 e_00) under the commitment of the honest batch."""
    spec = tiny_spec()
    w, x, y, w_after = honest_step(spec)
    params = sgd_exact.split_params(spec, w)
    hidden = np.maximum((x @ params[0].T) // 2**spec.scale + params[1], 0)
    target, bias = int(hidden[0] @ params[2][0]), int(params[3][0])
    moved_y = y.copy()
    moved_y[0, 0] -= 2**12  # one real unit: one unit of z can round to the honest update
    forged = exact_sgd_step(spec, w, x, moved_y)
    assert not np.array_equal(forged, w_after)
    claimed = spec.commitments(sgd_integers(w, x, y, forged)).public_inputs()
    source = spec.circuit_source()
    tampered = tamper(source, FLOOR_Z_HINT, FLOOR_Z_HINT[:-1] + f" + (acc == {target} && add == {bias} ? 4096 : 0);")
    ok, _ = proves(tmp_path, "tampered", tampered, sgd_signals(w, x, y, forged), claimed)
    assert not ok, "CRITICAL: a forward quotient one off proves"
    weakened, _ = proves(tmp_path, "weakened", _removed(tampered, FLOOR_EQUATION), sgd_signals(w, x, y, forged), claimed)
    assert weakened, "the forgery is not what FloorDivCheck's equation refuses"


def _gradients_with_a_dead_unit(sample: int, unit: int) -> Callable:
    """sgd/exact._gradients with hidden unit ``unit`` of sample ``sample`` switched off (h = 0,
    relu' = 0) although its pre-activation is positive (two-layer mse nets)."""

    def gradients(spec, params, x, y):
        z1 = (x @ params[0].T) // 2**spec.scale + params[1]
        positive = z1 > 0
        positive[sample, unit] = False
        h1 = z1 * positive
        z2 = (h1 @ params[2].T) // 2**spec.scale + params[3]
        delta2 = z2 - y
        back = (delta2 @ params[2]) // 2**spec.scale
        delta1 = back * positive
        return [delta1.T @ x, delta1.sum(axis=0), delta2.T @ h1, delta2.sum(axis=0)]

    return gradients


def test_a_live_relu_switched_off_has_no_proof_without_the_zero_test(tmp_path, monkeypatch):
    """ReLU's zero flag: zero = 1 - z inverse, and z zero == 0 forces zero = 0 for z != 0. A
    cheater hands inverse = 0 for one positive pre-activation: zero = 1, pos = nonneg - zero = 0,
    h = 0, so the unit is dead for that sample in both passes. Only the zero test refuses it."""
    spec = tiny_spec()
    w, x, y, w_after = honest_step(spec)
    params = sgd_exact.split_params(spec, w)
    z1 = (x @ params[0].T) // 2**spec.scale + params[1]
    sample, unit = map(int, np.argwhere(z1 > 0)[0])
    target = int(z1[sample, unit])
    assert list(z1.reshape(-1)).count(target) == 1
    with monkeypatch.context() as patch:
        patch.setattr(sgd_exact, "_gradients", _gradients_with_a_dead_unit(sample, unit))
        forged = exact_sgd_step(spec, w, x, y)
    assert not np.array_equal(forged, w_after)
    claimed = spec.commitments(sgd_integers(w, x, y, forged)).public_inputs()
    tampered = tamper(spec.circuit_source(), RELU_HINT, f"inverse <-- (z != 0 && z != {target}) ? 1 / z : 0;")
    ok, _ = proves(tmp_path, "tampered", tampered, sgd_signals(w, x, y, forged), claimed)
    assert not ok, "CRITICAL: a live ReLU switched off proves"
    weakened, _ = proves(tmp_path, "weakened", _removed(tampered, RELU_ZERO_TEST), sgd_signals(w, x, y, forged), claimed)
    assert weakened, "the forgery is not what the zero test refuses"


# --- momentum ---------------------------------------------------------------------------------

VELOCITY_HINT = "r <-- (mu * v + c * g + d * w + offset) % (2 ** p);"
VELOCITY_SOLVED = "r <-- mu * v + c * g + d * w - v_new * (2 ** p);"
VELOCITY_GUARD = ("remainder.in <== r;\n    mu * v", "remainder.in <== 0;\n    mu * v")
VELOCITY_EQUATION = "    mu * v + c * g + d * w === v_new * (2 ** p) + r;\n"


def _velocity_moved(spec, integers, by: int) -> dict:
    v_after = integers["v_after"] + by * (np.arange(spec.num_params) == 4)
    w_after = integers["w_before"] - (spec.lr_fix * v_after) // 2**spec.param_scale
    return {**integers, "v_after": v_after, "w_after": w_after}


def test_a_velocity_one_grid_step_below_has_no_proof_without_its_remainder_check(tmp_path):
    """The existing forgery moves V_t+1 up (remainder -2^k); one step down the solved remainder
    is r + 2^k, in [2^k, 2^(k+1)): a remainder check one bit too wide would pass it."""
    spec = tiny_momentum_spec()
    integers = honest_momentum_step(spec, seed=1)
    forged = _velocity_moved(spec, integers, -1)
    claimed = spec.commitments(forged).public_inputs()
    tampered = tamper(spec.circuit_source(), VELOCITY_HINT, VELOCITY_SOLVED)
    ok, _ = proves(tmp_path, "tampered", tampered, spec.circuit_inputs(forged), claimed)
    assert not ok, "CRITICAL: a velocity one grid step below proves"
    weakened, _ = proves(tmp_path, "weakened", tamper(tampered, *VELOCITY_GUARD), spec.circuit_inputs(forged), claimed)
    assert weakened


def test_a_velocity_one_grid_step_off_with_its_true_remainder_has_no_proof_without_the_velocity_equation(tmp_path):
    spec = tiny_momentum_spec()
    integers = honest_momentum_step(spec, seed=1)
    forged = _velocity_moved(spec, integers, 1)
    claimed = spec.commitments(forged).public_inputs()
    source = spec.circuit_source()  # the honest remainder hint: in range, only the equation refuses
    ok, _ = proves(tmp_path, "tampered", source, spec.circuit_inputs(forged), claimed)
    assert not ok, "CRITICAL: a velocity one grid step off proves"
    weakened, _ = proves(tmp_path, "weakened", _removed(source, VELOCITY_EQUATION), spec.circuit_inputs(forged), claimed)
    assert weakened


# --- AdamW --------------------------------------------------------------------------------------

ROUND_EQUATION = "    acc + 2 ** (k - 1) === out * (2 ** k) + r;\n}\n\n"
ROUND_ANCHOR, ROUND_CHECK_ANCHOR = "// out = trunc(acc", "// out = isqrt(in)"
TRUNC_EQUATION = "    acc === out * (2 ** k) + r;\n"
TRUNC_BIT = "    s * (s - 1) === 0;\n"
DIVIDE_EQUATION = "    2 * num + den === 2 * product + r;\n"


def _towards_zero(spec, m, g):
    """m' one unit closer to zero than the truncation (where it is not 0)."""
    honest = adamw_exact.towards_zero(spec.beta_fix[0] * m + (2**spec.param_scale - spec.beta_fix[0]) * g, spec.param_scale)
    return np.array([int(v) - (1 if v > 0 else -1 if v < 0 else 0) for v in honest], dtype=object)


def _away_from_zero(spec, m, g):
    """m' one unit further from zero than the truncation (where it is not 0)."""
    honest = adamw_exact.towards_zero(spec.beta_fix[0] * m + (2**spec.param_scale - spec.beta_fix[0]) * g, spec.param_scale)
    return np.array([int(v) + (1 if v > 0 else -1 if v < 0 else 0) for v in honest], dtype=object)


def _without(source: str, anchor: str, line: str) -> str:
    """``source`` without the equation ``line`` (which ends its template) where ``anchor`` follows."""
    assert source.count(line + anchor) == 1, anchor
    return source.replace(line + anchor, "}\n\n" + anchor)


def _round_out_plus(k: int, offset: int = 1) -> list[tuple[str, str]]:
    return [(ROUND_OUT, ROUND_OUT[:-1] + f" + (k == {k} ? {offset} : 0);")]


def _divide_out_plus(n: int, offset: int) -> list[tuple[str, str]]:
    return [(DIVIDE_OUT, DIVIDE_OUT[:-1] + f" + (n == {n} ? {offset} : 0);")]


def _round_without_equation(source: str) -> str:
    return _without(source, ROUND_ANCHOR, ROUND_EQUATION)


def _round_check_without_equation(source: str) -> str:
    return _without(source, ROUND_CHECK_ANCHOR, ROUND_EQUATION)


# (forgery, {function of adamw/exact.py: forged}, hint edits (given the spec), the weakening, whether the state after moves)
ADAMW_FORGERIES = [
    ("g one unit up, its true remainder", {"gradient": _shifted("gradient", 1)}, lambda spec: _round_out_plus(spec.gradient_shift), _round_without_equation),
    ("AdamW's decay one unit up, its true remainder", {"decay": _shifted("decay", 1)}, lambda spec: _round_out_plus(spec.param_scale), _round_without_equation),
    ("m' one unit away from zero, its true remainder", {"first_moment": _away_from_zero}, lambda spec: [], lambda source: _removed(source, TRUNC_EQUATION)),
    ("v' one unit up, its true remainder", {"second_moment": _shifted("second_moment", 1)}, lambda spec: [], _round_check_without_equation),
    ("u one unit up, its true remainder", {"update": _shifted("update", 1)}, lambda spec: _divide_out_plus(spec.update_remainder_bits, 1), lambda source: _removed(source, DIVIDE_EQUATION)),
    ("m' one unit up with a sign bit 1/2 (both sign checks see 0)", {"first_moment": _shifted("first_moment", 1)},
     lambda spec: [(TRUNC_SIGN, "s <-- 1 / 2;"), TRUNC_REST], lambda source: _removed(source, TRUNC_BIT)),
    ("m' one unit towards zero (remainder in [2^k, 2^(k+1)))", {"first_moment": _towards_zero},
     lambda spec: [TRUNC_REST], lambda source: tamper(source, *TRUNC_GUARD)),
]


@pytest.fixture(scope="module")
def adamw_honest(tmp_path_factory):
    spec = tiny_adamw_spec(dims=(2, 1, 1), weight_decay=0.05)
    inputs = {name: values for name, values in spec.sample_step(3).items() if not name.endswith("_after")}
    integers = {**inputs, **spec.exact_step(inputs)}
    source = spec.circuit_source()
    ok, report = proves(tmp_path_factory.mktemp("honest"), "honest", source, spec.circuit_inputs(integers), spec.commitments(integers).public_inputs())
    assert ok
    return spec, integers, source, report


@pytest.mark.parametrize(("what", "patches", "hints", "weaken"), ADAMW_FORGERIES, ids=[f[0] for f in ADAMW_FORGERIES])
def test_a_forged_adamw_witness_with_true_remainders_has_no_proof_without_its_equation(adamw_honest, what, patches, hints, weaken, tmp_path, monkeypatch):
    spec, integers, source, honest_report = adamw_honest
    inputs = {name: values for name, values in integers.items() if not name.endswith("_after")}
    with monkeypatch.context() as patch:
        for name, forged_function in patches.items():
            patch.setattr(adamw_exact, name, forged_function)
        forged = {**inputs, **spec.exact_step(inputs)}
    assert any(not np.array_equal(forged[name], integers[name]) for name in spec.after_names), what
    claimed = spec.commitments(forged).public_inputs()
    tampered = source
    for old, new in hints(spec):
        tampered = tamper(tampered, old, new)
    ok, report = proves(tmp_path, "tampered", tampered, spec.circuit_inputs(forged), claimed)
    assert report.to_dict() == honest_report.to_dict()  # only hints changed
    assert not ok, f"CRITICAL: {what} proves a false step"
    weakened, _ = proves(tmp_path, "weakened", weaken(tampered), spec.circuit_inputs(forged), claimed)
    assert weakened, f"{what}: the forgery is not what the removed constraint refuses"


# --- softmax ------------------------------------------------------------------------------------

SOFTMAX_ROW = [20000, 19999, 20000 - 2**4 * 4096 - 7000, 5000]
SOFTMAX_SEALED = f"""
template Sealed() {{
    signal input z[{len(SOFTMAX_ROW)}];
    component row = SoftmaxRow({len(SOFTMAX_ROW)}, 12, 24);
    for (var k = 0; k < {len(SOFTMAX_ROW)}; k++) {{ row.z[k] <== z[k]; }}
}}
component main {{public [z]}} = Sealed();
"""
E_HINT = "e[k] <-- product[k] \\ (2 ** D);"
INV_HINT = "inv <-- (2 ** (SB + J)) \\ total;"
P_HINT = "p[k] <-- (share[k] + 2 ** (J - 1)) \\ (2 ** J);"

# (forgery: one quotient hint moved, its remainder hint left honest (in range); the equation that refuses it)
SOFTMAX_EQUATIONS = [
    ("e one too large", (E_HINT, E_HINT[:-1] + " + (k == 0 ? 1 : 0);"), "        product[k] === e[k] * (2 ** D) + dropped[k];\n"),
    ("e one too small", (E_HINT, E_HINT[:-1] + " - (k == 1 ? 1 : 0);"), "        product[k] === e[k] * (2 ** D) + dropped[k];\n"),
    ("the reciprocal one too large", (INV_HINT, INV_HINT[:-1] + " + 1;"), "    inv * total === 2 ** (SB + J) - invRem;\n"),
    ("p one too large", (P_HINT, P_HINT[:-1] + " + (k == 0 ? 1 : 0);"), "        share[k] + 2 ** (J - 1) === p[k] * (2 ** J) + rem[k];\n"),
]


@pytest.mark.parametrize(("what", "hint", "equation"), SOFTMAX_EQUATIONS, ids=[f[0] for f in SOFTMAX_EQUATIONS])
def test_a_softmax_quotient_moved_with_its_true_remainder_has_no_proof_without_its_equation(what, hint, equation, tmp_path):
    """The softmax forgeries of test_groth16_softmax_circuit.py solve each remainder from the
    moved quotient, so a range check refuses them whether the equation is there or not. With the
    remainder left honest only the equation pins the quotient (e, inv, p free in their ranges
    without it: any softmax output)."""
    from pot_zk.backends.groth16.circuit_writer import gadget_source
    from pot_zk.backends.groth16.softmax_circom import softmax_templates
    from pot_zk.backends.groth16.integers import FIELD_MODULUS

    source = gadget_source(SOFTMAX_SEALED, softmax_templates(len(SOFTMAX_ROW), 12))
    public = [v % FIELD_MODULUS for v in SOFTMAX_ROW]
    tampered = tamper(source, *hint)
    ok, _ = proves(tmp_path, "tampered", tampered, {"z": SOFTMAX_ROW}, public)
    assert not ok, what
    weakened, _ = proves(tmp_path, "weakened", _removed(tampered, equation), {"z": SOFTMAX_ROW}, public)
    assert weakened, f"{what}: the forgery is not what {equation.strip()!r} refuses"


def test_a_one_hot_of_non_bits_that_sums_right_has_no_proof_without_the_bit_checks(tmp_path):
    """hot = (1, -1, 1) for the label S of class 1: sum hot = 1 and sum k S hot = -S + 2 S = S,
    so count and weighted both hold; only hot (hot - 1) == 0 refuses it (an integer delta
    p - S hot with two classes pushed down and one up)."""
    from pot_zk.backends.groth16.circuit_writer import gadget_source
    from pot_zk.backends.groth16.softmax_circom import softmax_templates
    from pot_zk.backends.groth16.integers import FIELD_MODULUS

    source = gadget_source("component main {public [label]} = OneHotLabel(3, 12);", softmax_templates(3, 12))
    hot, label = [1, -1, 1], 4096
    public = [v % FIELD_MODULUS for v in hot] + [label]
    tampered = tamper(source, "hot[k] <-- label == k * 2 ** SB ? 1 : 0;", "hot[k] <-- k == 1 ? -1 : 1;")
    ok, _ = proves(tmp_path, "tampered", tampered, {"label": label}, public)
    assert not ok
    weakened, _ = proves(tmp_path, "weakened", _removed(tampered, "        hot[k] * (hot[k] - 1) === 0;\n"), {"label": label}, public)
    assert weakened


# --- committed weights: their range checks ----------------------------------------------------

UPDATE_HINT = ("r <-- (c * g + offset) % (2 ** p);", "r <-- c * g - (w - w_new) * (2 ** p);")


def _field_commitment(values: list[int], value_bits: int) -> int:
    """The circuit's PackedCommitment of arbitrary field elements (commit.pack refuses them)."""
    from pot_zk.backends.groth16.commit import chain, packing_width
    from pot_zk.backends.groth16.integers import FIELD_MODULUS

    width = packing_width(value_bits)
    elements = [
        sum((v + 2 ** (value_bits - 1)) * 2 ** (value_bits * j) for j, v in enumerate(values[start : start + width])) % FIELD_MODULUS
        for start in range(0, len(values), width)
    ]
    return chain(len(values), elements)


@pytest.mark.parametrize("name", ["w_before", "w_after"])
def test_a_fractional_field_element_weight_has_no_proof_without_its_committed_range_check(name, tmp_path):
    """Weight 0 of layer 1 sits on a zero input column (gradient 0, no effect on the forward
    pass). The cheater solves the update's remainder for 1 instead of 0, so W_t - W_t+1 = -1/2^k
    in the field: W_t (or W_t+1) of that weight is a field element, not a 16-bit value, and it is
    packed into its commitment as such. The update equation and its remainder check hold; only
    the committed range check refuses it. (Such a value is what lets a cheater aim a
    commitment: with a few of them in one packed element, matching a chosen commitment is a
    small lattice problem.)"""
    from pot_zk.backends.groth16.circuit_writer import update_constant
    from pot_zk.backends.groth16.integers import FIELD_MODULUS

    spec = tiny_spec()
    w, x, y, _ = honest_step(spec)
    x[:, 0] = 0
    w_after = exact_sgd_step(spec, w, x, y)
    assert w_after[0] == w[0]
    k = update_constant(spec.c_fix, spec.param_scale + spec.scale)[1]
    unit = pow(2**k, -1, FIELD_MODULUS)
    before, after = [int(v) for v in w], [int(v) for v in w_after]
    if name == "w_before":
        before[0] = (before[0] - unit) % FIELD_MODULUS
    else:
        after[0] = (after[0] + unit) % FIELD_MODULUS
    honest = spec.commitments(sgd_integers(w, x, y, w_after)).public_inputs()
    claimed = [_field_commitment(before, spec.value_bits), honest[1], _field_commitment(after, spec.value_bits)]
    inputs = {"w_before": before, "x": x.tolist(), "y": y.tolist(), "w_after": after}
    tampered = tamper(spec.circuit_source(), *UPDATE_HINT)
    ok, _ = proves(tmp_path, "tampered", tampered, inputs, claimed)
    assert not ok, f"CRITICAL: a field-element {name} proves"
    weakened, _ = proves(tmp_path, "weakened", tamper(tampered, f"range_{name}.in[i] <== {name}[i];", f"range_{name}.in[i] <== 0;"), inputs, claimed)
    assert weakened, f"the forgery is not what {name}'s range check refuses"


def test_a_step_count_that_skips_has_no_proof_without_the_increment(adamw_honest, tmp_path):
    """t_before committed as t - 3 with the honest step at t (the bias corrections taken from
    t_after's bits): only t_after == t_before + 1 refuses it in the circuit (verify pins both
    counts' commitments as well, optimizer-step-count)."""
    spec, integers, source, _ = adamw_honest
    forged = {**integers, "t_before": integers["t_before"] - 2}
    assert int(forged["t_before"][0]) >= 0
    claimed = spec.commitments(forged).public_inputs()
    ok, _ = proves(tmp_path, "tampered", source, spec.circuit_inputs(forged), claimed)
    assert not ok, "CRITICAL: a skipped step count proves"
    weakened, _ = proves(tmp_path, "weakened", _removed(source, "t_after[0] === t_before[0] + 1;\n"), spec.circuit_inputs(forged), claimed)
    assert weakened
