"""A cheating prover against the whole zk-groth16 AdamW circuit (2-1-1, batch 2, real engine: 8,753 constraints; 3-2-2 has 14,576).

The cheater controls the witness: its witness generator is the circuit's own with prover hints
(``<--``) changed, which leaves the constraint system untouched (checked: the same constraint
and wire counts), and it computes each remainder from the values it claims. For each hint of the
AdamW update -- the rescaled gradient g, the moments m' (its remainder and its sign bit) and
v', the square root of v', the update's division, AdamW's decay, a power of a beta, the square
root of 1 - b2^t and the step factor, each off by one (both ways where two inequalities pin it) -- the claimed state after the
step is the reference's with that intermediate forged, and no proof verifies against its
commitments. Each forgery proves once the one constraint guarding it is removed, so each test
fails without its constraint (and shows the tampered hint reaches the proof).

The per-parameter forgeries claim another W_t+1 (or moment): parameter 0 sits where sqrt(v')
moves the update (m = 0.05, v = 4e-10, a zero input column so its gradient is 0). The per-step
terms (b^t, sqrt(1 - b2^t), f, all at 2**-32) are 2**-32-fine: one unit of them does not move a
W_t+1 on the 2**-12 grid, so those forgeries claim the honest state with a forged hint, and show
that the constraint pins the hint (a deviation large enough to move W_t+1 breaks the other
inequality's range too). A second moment below zero before the step is refused by v's unsigned
range check alone.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from pot_zk.backends.groth16.adamw import exact
from pot_zk.backends.groth16.adamw.spec import BIAS_SCALE, MOMENT_SCALE, SECOND_SCALE

from groth16_support import proves, tamper, tiny_adamw_spec

pytestmark = pytest.mark.prover

ROUND_OUT = "out <-- (acc + 2 ** (k - 1) + offset) \\ (2 ** k) - offset \\ (2 ** k);"
ROUND_REST = ("r <-- (acc + 2 ** (k - 1) + offset) % (2 ** k);", "r <-- acc + 2 ** (k - 1) - out * (2 ** k);")
ROOT_OUT = "out <-- isqrt(in);"
DIVIDE_OUT = "out <-- (2 * num + den + offset * 2 * den) \\ (2 * den) - offset;"
DIVIDE_REST = ("r <-- (2 * num + den + offset * 2 * den) % (2 * den);", "r <-- 2 * num + den - 2 * out * den;")
ROUND_TAIL = "    remainder.in <== r;\n    acc + 2 ** (k - 1) === out * (2 ** k) + r;\n}\n\n"
ROUND_GUARD = (ROUND_TAIL + "// out = trunc(acc", ROUND_TAIL.replace("<== r;", "<== 0;") + "// out = trunc(acc")
ROUND_CHECK_GUARD = (ROUND_TAIL + "// out = isqrt(in)", ROUND_TAIL.replace("<== r;", "<== 0;") + "// out = isqrt(in)")
TRUNC_SIGN = "s <-- acc < 0 ? 1 : 0;"
TRUNC_REST = ("r <-- s == 1 ? -((-acc) % (2 ** k)) : acc % (2 ** k);", "r <-- acc - out * (2 ** k);")
TRUNC_GUARD = ("remainder.in <== remainder_sign;", "remainder.in <== 0;")
SIGN_GUARD = ("sign.in <== out_sign;", "sign.in <== 0;")
ROOT_LOW = ("low.in <== in - square;", "low.in <== 0;")
ROOT_HIGH = ("high.in <== square + 2 * out - in;", "high.in <== 0;")
DIVIDE_LOW = ("low.in <== r;", "low.in <== 0;")
DIVIDE_HIGH = ("high.in <== 2 * den - 1 - r;", "high.in <== 0;")


def _shifted(name: str, offset: int) -> Callable:
    original = getattr(exact, name)
    return lambda *args: original(*args) + offset


def _away_from_zero(spec, m, g):
    """m' rounded away from zero instead of towards it (one unit further out where inexact)."""
    b1 = spec.beta_fix[0]
    acc = b1 * m + (2**spec.param_scale - b1) * g
    return np.array([-(-abs(int(a)) // 2**spec.param_scale) * (1 if a >= 0 else -1) for a in acc], dtype=object)


def _forged_power(constants: tuple[int, ...], count: int) -> int:
    value = 2**BIAS_SCALE
    for bit, constant in enumerate(constants):
        if count >> bit & 1:
            value = exact.rounded(value * constant, BIAS_SCALE) + 1
    return value


def _round_hint(k: int) -> list[tuple[str, str]]:
    return [(ROUND_OUT, ROUND_OUT[:-1] + f" + (k == {k} ? 1 : 0);"), ROUND_REST]


def _root_hint(n: int, offset: int) -> list[tuple[str, str]]:
    return [(ROOT_OUT, f"out <-- isqrt(in) + (n == {n} ? {offset} : 0);")]


def _divide_hint(n: int, offset: int) -> list[tuple[str, str]]:
    return [(DIVIDE_OUT, DIVIDE_OUT[:-1] + f" + (n == {n} ? {offset} : 0);"), DIVIDE_REST]


# (forgery, {function of exact.py: its forged version}, the hint edits (given the spec), the
# guard that refuses it, whether the claimed state after the step differs from the honest one)
FORGERIES = [
    ("the gradient g one unit up", {"gradient": _shifted("gradient", 1)}, lambda spec: _round_hint(spec.gradient_shift), ROUND_GUARD, True),
    ("the first moment m' one unit further from zero", {"first_moment": _away_from_zero}, lambda spec: [TRUNC_REST], TRUNC_GUARD, True),
    ("m' rounded away from zero with its sign bit flipped", {"first_moment": _away_from_zero}, lambda spec: [(TRUNC_SIGN, "s <-- acc < 0 ? 0 : 1;"), TRUNC_REST], SIGN_GUARD, True),
    ("the second moment v' one unit up", {"second_moment": _shifted("second_moment", 1)}, lambda spec: [ROUND_REST], ROUND_CHECK_GUARD, True),
    ("sqrt(v') one unit up", {"isqrt": _shifted("isqrt", 1)}, lambda spec: _root_hint(32, 1), ROOT_LOW, True),
    ("sqrt(v') one unit down", {"isqrt": _shifted("isqrt", -1)}, lambda spec: _root_hint(32, -1), ROOT_HIGH, True),
    ("the update u one unit up", {"update": _shifted("update", 1)}, lambda spec: _divide_hint(spec.update_remainder_bits, 1), DIVIDE_LOW, True),
    ("the update u one unit down", {"update": _shifted("update", -1)}, lambda spec: _divide_hint(spec.update_remainder_bits, -1), DIVIDE_HIGH, True),
    ("AdamW's decay one unit up", {"decay": _shifted("decay", 1)}, lambda spec: _round_hint(spec.param_scale), ROUND_GUARD, True),
    ("b^t one unit up at each set bit of t", {"power": _forged_power}, lambda spec: _round_hint(BIAS_SCALE), ROUND_GUARD, False),
    ("sqrt(1 - b2^t) one unit up", {"bias_root": _shifted("bias_root", 1)}, lambda spec: _root_hint(BIAS_SCALE + 1, 1), ROOT_LOW, False),
    ("sqrt(1 - b2^t) one unit down", {"bias_root": _shifted("bias_root", -1)}, lambda spec: _root_hint(BIAS_SCALE + 1, -1), ROOT_HIGH, False),
    ("the step factor f one unit up", {"step_factor": _shifted("step_factor", 1)}, lambda spec: _divide_hint(BIAS_SCALE + 2, 1), DIVIDE_LOW, False),
    ("the step factor f one unit down", {"step_factor": _shifted("step_factor", -1)}, lambda spec: _divide_hint(BIAS_SCALE + 2, -1), DIVIDE_HIGH, False),
]


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    spec = tiny_adamw_spec(dims=(2, 1, 1), weight_decay=0.05)
    inputs = _inputs(spec.sample_step(3))  # t = 5: bits 0 and 2 set
    inputs["x"][:, 0] = 0  # parameter 0 (weight 1 of input 0) has gradient 0 ...
    inputs["m_before"][0], inputs["v_before"][0] = round(0.05 * 2**MOMENT_SCALE), round(4e-10 * 2**SECOND_SCALE)  # ... and an update sqrt(v') moves
    integers = {**inputs, **spec.exact_step(inputs)}
    source = spec.circuit_source()
    ok, report = proves(tmp_path_factory.mktemp("honest"), "honest", source, spec.circuit_inputs(integers), spec.commitments(integers).public_inputs())
    assert ok
    return spec, integers, source, report


def _inputs(integers: dict) -> dict:
    return {name: values for name, values in integers.items() if not name.endswith("_after")}


@pytest.mark.parametrize(("what", "patches", "hints", "guard", "changes"), FORGERIES, ids=[f[0] for f in FORGERIES])
def test_a_forged_adamw_witness_has_no_proof_without_its_guard_it_has(honest, what, patches, hints, guard, changes, tmp_path, monkeypatch):
    spec, integers, source, honest_report = honest
    with monkeypatch.context() as patch:
        for name, forged_function in patches.items():
            patch.setattr(exact, name, forged_function)
        forged = {**_inputs(integers), **spec.exact_step(_inputs(integers))}
    moved = any(not np.array_equal(forged[name], integers[name]) for name in spec.after_names)
    assert moved == changes, f"{what}: the forged state after the step {'differs' if moved else 'does not differ'}"
    claimed = spec.commitments(forged).public_inputs()
    tampered = source
    for old, new in hints(spec):
        tampered = tamper(tampered, old, new)
    ok, report = proves(tmp_path, "tampered", tampered, spec.circuit_inputs(forged), claimed)
    assert report.to_dict() == honest_report.to_dict()  # only hints changed: the same constraint system
    assert not ok, f"CRITICAL: {what} proves a false step"
    weakened, _ = proves(tmp_path, "weakened", tamper(tampered, *guard), spec.circuit_inputs(forged), claimed)
    assert weakened, f"{what}: the forgery is not what {guard[0]!r} refuses"


def test_a_negative_second_moment_before_the_step_is_refused_by_its_unsigned_range_check(honest, tmp_path, monkeypatch):
    """v_before with one value -1 and the step computed from it (the reference refuses it; here
    its check is bypassed): a signed range check, as for the other committed tensors, proves it."""
    spec, integers, source, _ = honest
    inputs = _inputs(integers)
    inputs["v_before"] = inputs["v_before"].copy()
    inputs["v_before"][4] = -1  # a parameter with a gradient: v' stays >= 0
    with monkeypatch.context() as patch:
        patch.setattr(exact, "nonnegative", lambda values, what: None)
        forged = {**inputs, **spec.exact_step(inputs)}
    claimed = spec.commitments(forged).public_inputs()
    ok, _ = proves(tmp_path, "negative", source, spec.circuit_inputs(forged), claimed)
    assert not ok, "CRITICAL: a negative second moment proves"
    count = spec.num_params
    signed = tamper(source, f"component range_v_before = UnsignedRangeArray({count}, 52);", f"component range_v_before = SignedRangeArray({count}, 53);")
    weakened, _ = proves(tmp_path, "signed", signed, spec.circuit_inputs(forged), claimed)
    assert weakened, "the negative second moment is not what the unsigned range check refuses"
