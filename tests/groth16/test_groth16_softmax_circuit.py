"""The softmax and one-hot templates of the zk-groth16 cross-entropy circuit, with the real engine:
the circuit computes exactly softmax_trace's intermediates, and each tampered intermediate (a
cheating prover's own witness generator, same constraints) has no valid proof -- while the same
tampered witness proves once the constraint that guards it is removed (so each test would fail
without its constraint)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pot_zk.backends.groth16 import adapter
from pot_zk.backends.groth16.circuit_writer import gadget_source
from pot_zk.backends.groth16.softmax_circom import softmax_templates
from pot_zk.backends.groth16.integers import FIELD_MODULUS
from pot_zk.kinds.exact_softmax import EXP_LIMIT_BITS, RECIPROCAL_BITS, exp_tables, softmax_trace

pytestmark = pytest.mark.prover

SCALE, QB = 12, 24
LIMIT = 2**EXP_LIMIT_BITS * 4096
ROW = [20000, 19999, 20000 - LIMIT - 7000, 5000]
"""The max and max - 1 (a max one below a logit still equals a logit), one clamped logit, one not."""


def _field(values) -> list[int]:
    return [int(v) % FIELD_MODULUS for v in values]


def _outputs(trace) -> list[int]:
    """SoftmaxRow's public outputs, in declaration order: m, clamped, e, total, inv, p, rem."""
    outputs = [trace.row_max, trace.clamped[0], trace.exp[0], trace.total, trace.reciprocal, trace.probabilities[0], trace.remainders[0]]
    return _field(np.concatenate([np.asarray(o).reshape(-1) for o in outputs]))


def _proves(tmp_path: Path, name: str, source: str, inputs: dict, public: list[int]) -> bool:
    (tmp_path / f"{name}.circom").write_text(source)
    pk, vk, _ = adapter.setup(tmp_path / f"{name}.circom")
    return adapter.verify(vk, adapter.prove(pk, inputs), public)[0]


def test_the_circuit_computes_exactly_softmax_trace_s_intermediates(tmp_path):
    rng = np.random.default_rng(5)
    row = np.concatenate([np.round(rng.uniform(-6, 6, 8) * 2**SCALE), [0, -60 * 2**SCALE]]).astype(np.int64)
    row[8] = row[:8].max() - (LIMIT - 1)
    trace = softmax_trace(row[None, :], SCALE)
    assert trace.clamped[0].tolist() == [0] * 9 + [1]  # the clamp is exercised, and a logit just above it
    public = _outputs(trace)
    (tmp_path / "row.circom").write_text(gadget_source(f"component main = SoftmaxRow(10, {SCALE}, {QB});", softmax_templates(10, SCALE)))
    pk, vk, report = adapter.setup(tmp_path / "row.circom")
    proof = adapter.prove(pk, {"z": row.tolist()})
    assert adapter.verify(vk, proof, public) == (True, None)  # every intermediate is the reference's
    for index in range(len(public)):
        moved = list(public)
        moved[index] = (moved[index] + 1) % FIELD_MODULUS
        assert adapter.verify(vk, proof, moved)[0] is False
    assert report.public_outputs == len(public)


SEALED = f"""
template Sealed() {{
    signal input z[{len(ROW)}];
    component row = SoftmaxRow({len(ROW)}, {SCALE}, {QB});
    for (var k = 0; k < {len(ROW)}; k++) {{ row.z[k] <== z[k]; }}
}}
component main {{public [z]}} = Sealed();
"""

CLAMP_HINT = "clamped[k] <-- high != 0 ? 1 : 0;"
INVERSE_HINT = "clampInverse[k] <-- high != 0 ? 1 / high : 0;"
E_HINT = "e[k] <-- product[k] \\ (2 ** D);"
DROP_HINT = "dropped[k] <-- product[k] % (2 ** D);"
INV_HINT = "inv <-- (2 ** (SB + J)) \\ total;"
INV_REM_HINT = "invRem <-- (2 ** (SB + J)) % total;"
P_HINT = "p[k] <-- (share[k] + 2 ** (J - 1)) \\ (2 ** J);"
REM_HINT = "rem[k] <-- (share[k] + 2 ** (J - 1)) % (2 ** J);"


def _plus(hint: str, amount: str, k: int = 0) -> tuple[str, str]:
    """The hint with ``amount`` added for logit k."""
    return hint, f"{hint[:-1]} + (k == {k} ? {amount} : 0);"


# (tampered intermediate, the witness generator's changes, the constraints that refuse it)
ROW_TAMPERS = [
    ("max above every logit", [("m <-- best;", "m <-- best + 1;")], [("gap[C - 1] === 0;", "")]),
    ("max below a logit (equal to another)", [("m <-- best;", "m <-- best - 1;")], [("gapBits[k].in <== m - z[k];", "gapBits[k].in <== 0;")]),
    (
        "an unclamped logit clamped",
        [(CLAMP_HINT, "clamped[k] <-- k == 1 ? 1 : (high != 0 ? 1 : 0);")],
        [("clamped[k] === high * clampInverse[k];", "")],
    ),
    (
        "a clamped logit not clamped",
        [(CLAMP_HINT, "clamped[k] <-- k == 2 ? 0 : (high != 0 ? 1 : 0);"), (INVERSE_HINT, "clampInverse[k] <-- k == 2 ? 0 : (high != 0 ? 1 / high : 0);")],
        [("high * (1 - clamped[k]) === 0;", "")],
    ),
    ("exp one too large (negative dropped bits)", [_plus(E_HINT, "1"), _plus(DROP_HINT, "-(2 ** D)")], [("droppedBits[k].in <== dropped[k];", "droppedBits[k].in <== 0;")]),
    ("exp one too small (dropped bits >= 2^D)", [_plus(E_HINT, "-1"), _plus(DROP_HINT, "2 ** D")], [("droppedBits[k].in <== dropped[k];", "droppedBits[k].in <== 0;")]),
    ("reciprocal one too large (negative remainder)", [(INV_HINT, INV_HINT[:-1] + " + 1;"), (INV_REM_HINT, INV_REM_HINT[:-1] + " - total;")], [("invRemBits.in <== invRem;", "invRemBits.in <== 0;")]),
    ("reciprocal one too small (remainder >= Z)", [(INV_HINT, INV_HINT[:-1] + " - 1;"), (INV_REM_HINT, INV_REM_HINT[:-1] + " + total;")], [("invGap.in <== total - 1 - invRem;", "invGap.in <== 0;")]),
    ("p one too large (negative remainder)", [_plus(P_HINT, "1"), _plus(REM_HINT, "-(2 ** J)")], [("remBits[k].in <== rem[k];", "remBits[k].in <== 0;")]),
    ("p one too small (remainder >= 2^J)", [_plus(P_HINT, "-1"), _plus(REM_HINT, "2 ** J")], [("remBits[k].in <== rem[k];", "remBits[k].in <== 0;")]),
    (
        "p a field element, not the quotient (remainder + 1)",
        [(f"        {P_HINT}\n        {REM_HINT}", f"        {REM_HINT[:-1]} + (k == 0 ? 1 : 0);\n        p[k] <-- (share[k] + 2 ** (J - 1) - rem[k]) / (2 ** J);")],
        [("pBits[k].in <== p[k];", "pBits[k].in <== 0;")],
    ),
]
"""Everything after a tampered value is derived from it by the same hints (Z, inv and p from a
tampered e, p from a tampered inv, p as ``(num - rem) / 2^J`` in the field from a tampered
remainder), as a cheater's witness generator would; only the named constraint stands in the way.
A field-element e or inv that only its own range check refuses needs a chosen row: below."""


def _tamper(source: str, old: str, new: str) -> str:
    assert old in source, old
    return source.replace(old, new)


@pytest.mark.parametrize(("what", "tampers", "guards"), ROW_TAMPERS, ids=[t[0].split(",")[0] for t in ROW_TAMPERS])
def test_a_tampered_softmax_intermediate_has_no_proof_without_its_constraint_it_has(what, tampers, guards, tmp_path):
    honest = gadget_source(SEALED, softmax_templates(len(ROW), SCALE))
    inputs, public = {"z": ROW}, _field(ROW)
    assert _proves(tmp_path, "honest", honest, inputs, public)
    tampered = honest
    for old, new in tampers:
        tampered = _tamper(tampered, old, new)
    assert not _proves(tmp_path, "tampered", tampered, inputs, public), what
    weakened = tampered
    for old, new in guards:
        weakened = _tamper(weakened, old, new)
    assert _proves(tmp_path, "weakened", weakened, inputs, public), f"{what}: the tamper is not what the constraint refuses"


ROW_MAIN = "component main = SoftmaxRow(4, 12, 24);"
J, K = RECIPROCAL_BITS, SCALE + RECIPROCAL_BITS


def _two_logits(first: int, second: int):
    """A row of 4: two logits at ``first`` and ``second``, two clamped."""
    row = np.array([[first, second, first - 3 * LIMIT, first - 2 * LIMIT]])
    return row, softmax_trace(row, SCALE)


def _row_public(trace, e, inv, p, rem) -> list[int]:
    values = [trace.row_max, trace.clamped[0], e, trace.total, [inv], p, rem]
    return [int(v) % FIELD_MODULUS for part in values for v in np.asarray(part, dtype=object).reshape(-1)]


def _p_of(shares):
    numerators = [int(share) + 2 ** (J - 1) for share in shares]
    return [n >> J for n in numerators], [n % 2**J for n in numerators]


def test_half_integer_exps_in_the_field_have_no_proof_without_e_s_range_check(tmp_path):
    """A cheater moves half a unit of e from logit 0 to logit 1 in the field (2^(D-1) of the
    dropped bits, both still in [0, 2^D)): Z is unchanged, and where inv is even the shares
    e inv stay integers, so p moves and every other check holds; only e's range check refuses."""
    dropped_bits = exp_tables(SCALE).dropped_bits
    half = pow(2, -1, FIELD_MODULUS)
    for gap in range(1, 4000):
        row, trace = _two_logits(20000, 20000 - gap)
        inv = int(trace.reciprocal[0])
        second = int(trace.products[0, 1]) % 2**dropped_bits
        if inv % 2 or second < 2 ** (dropped_bits - 1):
            continue
        shares = [int(e) * inv for e in trace.exp[0]]
        shares[0] -= inv // 2
        shares[1] += inv // 2
        p, rem = _p_of(shares)
        if p != trace.probabilities[0].tolist():
            break
    else:
        pytest.fail("no row moves p")
    e = [int(trace.exp[0, 0]) - half, int(trace.exp[0, 1]) + half, 0, 0]
    forged = _row_public(trace, e, inv, p, rem)
    hints = [
        (f"        {E_HINT}\n        {DROP_HINT}", f"        {DROP_HINT[:-1]} + (k == 0 ? 2 ** (D - 1) : (k == 1 ? -(2 ** (D - 1)) : 0));\n        e[k] <-- (product[k] - dropped[k]) / (2 ** D);"),
    ]
    tampered = gadget_source(ROW_MAIN, softmax_templates(4, SCALE))
    for old, new in hints:
        tampered = _tamper(tampered, old, new)
    inputs = {"z": row[0].tolist()}
    assert not _proves(tmp_path, "tampered", tampered, inputs, forged)
    assert _proves(tmp_path, "weakened", _tamper(tampered, "eBits[k].in <== e[k];", "eBits[k].in <== 0;"), inputs, forged)


def test_a_fractional_reciprocal_in_the_field_has_no_proof_without_inv_s_range_check(tmp_path):
    """A cheater picks another remainder t of 2^K = inv Z + t (still in [0, Z)) and inv = (2^K - t) / Z
    in the field: where Z divides e_k (t* - t) for every k, the shares e inv stay integers and p
    moves; only inv's range check refuses."""
    for gap in range(2, 4000, 2):
        row, trace = _two_logits(20000, 20000 - gap)
        total, inv, rest = int(trace.total[0]), int(trace.reciprocal[0]), 2**K % int(trace.total[0])
        step = total // math.gcd(total, 2**16)
        moves = [t * step for t in range(-(total // step), total // step + 1) if t and 0 <= rest - t * step < total]
        found = None
        for move in moves:
            shares = [int(e) * inv + int(e) * move // total for e in trace.exp[0]]
            p, rem = _p_of(shares)
            if p != trace.probabilities[0].tolist():
                found = move, p, rem
                break
        if found:
            break
    else:
        pytest.fail("no row moves p")
    move, p, rem = found
    forged_inv = (2**K - (rest - move)) * pow(total, -1, FIELD_MODULUS) % FIELD_MODULUS
    forged = _row_public(trace, trace.exp[0], forged_inv, p, rem)
    hints = [(f"    {INV_HINT}\n    {INV_REM_HINT}", f"    {INV_REM_HINT[:-1]} - {move};\n    inv <-- (2 ** (SB + J) - invRem) / total;")]
    tampered = gadget_source(ROW_MAIN, softmax_templates(4, SCALE))
    for old, new in hints:
        tampered = _tamper(tampered, old, new)
    inputs = {"z": row[0].tolist()}
    assert not _proves(tmp_path, "tampered", tampered, inputs, forged)
    assert _proves(tmp_path, "weakened", _tamper(tampered, "invBits.in <== inv;", "invBits.in <== 0;"), inputs, forged)


LABEL_MAIN = "component main {public [label]} = OneHotLabel(3, 12);"
"""The one-hot bits are public outputs, so the engine cannot drop them: a tampered witness
generator's bits are the ones the constraints see (signals fixed by linear constraints alone are
substituted away, and their hints then never reach the proof)."""

LABEL_TAMPERS = [
    ("another class than the committed label", 4096, [0, 0, 1], ("label == k * 2 ** SB ? 1 : 0", "label == (k - 1) * 2 ** SB ? 1 : 0"), ("weighted === label;", "")),
    ("no class at all (label 0)", 0, [0, 0, 0], ("label == k * 2 ** SB ? 1 : 0", "0"), ("count === 1;", "")),
]


@pytest.mark.parametrize(("what", "label", "hot", "tamper", "guard"), LABEL_TAMPERS, ids=[t[0] for t in LABEL_TAMPERS])
def test_a_one_hot_that_is_not_the_committed_label_has_no_proof(what, label, hot, tamper, guard, tmp_path):
    honest = gadget_source(LABEL_MAIN, softmax_templates(3, SCALE))
    assert _proves(tmp_path, "honest", honest, {"label": label}, [int(k * 4096 == label) for k in range(3)] + [label])
    tampered = _tamper(honest, *tamper)
    assert not _proves(tmp_path, "tampered", tampered, {"label": label}, hot + [label]), what
    assert _proves(tmp_path, "weakened", _tamper(tampered, *guard), {"label": label}, hot + [label])


def test_a_label_off_the_class_grid_has_no_proof(tmp_path):
    source = gadget_source(LABEL_MAIN, softmax_templates(3, SCALE))
    assert not any(_proves(tmp_path, "off_grid", source, {"label": 4097}, hot + [4097]) for hot in ([1, 0, 0], [0, 1, 0], [0, 0, 0]))
