"""The circom 2 templates of the integer softmax and the cross-entropy output delta: one
constraint (or range check) per line of :mod:`pot_zk.kinds.exact_softmax`.

For one row of ``C`` logits ``z`` (each range-checked to ``QB`` signed bits by the forward
pass) at ``S = 2**scale``, ``SoftmaxRow`` checks (docs/groth16.md):

* max: ``d_k = m - z_k`` in ``[0, 2**QB)`` (its bits: the digits below) for every k, and
  ``prod_k d_k == 0`` (each factor a small non-negative integer, so the product is 0 in the
  field only if one is 0);
* clamp: ``H_k`` the sum of d_k's bits from ``scale + 4`` up; a hint bit ``c_k`` with
  ``c_k == H_k * i_k`` (so H_k = 0 gives c_k = 0) and ``H_k (1 - c_k) == 0`` (so H_k != 0 gives
  c_k = 1);
* exp: each digit's table is a polynomial in its bits with constant coefficients, evaluated
  with 1 (2 bits), 2 (3 bits) or 5 (4 bits) products; ``E_k = (1 - c_k) (S - tail_k) prod_c
  T_c``, one product per factor; ``E_k == e_k 2**D + r_k`` with ``r_k`` in ``[0, 2**D)`` and
  ``e_k`` in ``[0, 2**(EXP_BITS+1))``;
* reciprocal: ``Z = sum e_k``; ``inv Z + t == 2**(scale + RECIPROCAL_BITS)`` with ``t`` and
  ``Z - 1 - t`` in ``[0, 2**ZB)`` (so ``0 <= t < Z``) and ``inv`` in ``[0, 2**(scale+3))``;
* p: ``e_k inv + 2**(RECIPROCAL_BITS-1) == p_k 2**RECIPROCAL_BITS + rem_k`` with ``rem_k``
  in ``[0, 2**RECIPROCAL_BITS)`` and ``p_k`` in ``[0, 2**(scale+1))``.

``OneHotLabel`` turns a committed label ``k S`` into bits ``o_k`` (each a bit, one of them set,
``sum_k k S o_k == label``); the output delta is ``p_k - S o_k``. Every value is a non-negative
integer below ``2**(EXP_BITS + 1 + product bits)`` <= 2**89, far from the field modulus:
nothing wraps.
"""

from __future__ import annotations

from pot_zk.backends.groth16.circuit_writer import CircuitWriter
from pot_zk.kinds.exact_softmax import EXP_BITS, EXP_LIMIT_BITS, RECIPROCAL_BITS, exp_tables


def total_bits(classes: int) -> int:
    """Z = sum of C values at most 2**EXP_BITS: below 2**(EXP_BITS + bitlen(C))."""
    return EXP_BITS + classes.bit_length()


TEMPLATES = r"""
// The integer softmax of one row (pot_zk/kinds/exact_softmax.py; docs/groth16.md), at scale @SCALE@.
template SoftmaxRow(C, SB, QB) {
    assert(SB == @SCALE@);
    signal input z[C];
    signal output m;
    signal output clamped[C];
    signal output e[C];
    signal output total;
    signal output inv;
    signal output p[C];
    signal output rem[C];
    var D = @DROPPED_BITS@;
    var J = @RECIPROCAL_BITS@;
    var ZB = @TOTAL_BITS@;

    // m = max_k z_k: d_k = m - z_k in [0, 2^QB), and prod_k d_k == 0
    var best = z[0];
    for (var k = 1; k < C; k++) { if (z[k] > best) { best = z[k]; } }
    m <-- best;
    component gapBits[C];
    signal gap[C];
    for (var k = 0; k < C; k++) {
        gapBits[k] = Num2Bits(QB);
        gapBits[k].in <== m - z[k];
        if (k == 0) { gap[k] <== m - z[k]; } else { gap[k] <== gap[k - 1] * (m - z[k]); }
    }
    gap[C - 1] === 0;

    // clamped_k = [a bit of d_k at or above SB + @LIMIT_BITS@ is set]: IsZero of their sum
    signal clampInverse[C];
    for (var k = 0; k < C; k++) {
        var high = 0;
        for (var i = SB + @LIMIT_BITS@; i < QB; i++) { high += gapBits[k].out[i]; }
        clamped[k] <-- high != 0 ? 1 : 0;
        clampInverse[k] <-- high != 0 ? 1 / high : 0;
        clamped[k] === high * clampInverse[k];
        high * (1 - clamped[k]) === 0;
    }

    // E_k = (1 - clamped_k) (S - tail_k) prod_c T_c[digit_c of d_k]; e_k = E_k >> D
@EXP_SIGNALS@
    signal product[C];
    signal dropped[C];
    component droppedBits[C];
    component eBits[C];
    for (var k = 0; k < C; k++) {
        var bit[SB + @LIMIT_BITS@];
        for (var i = 0; i < SB + @LIMIT_BITS@; i++) { bit[i] = i < QB ? gapBits[k].out[i] : 0; }
@EXP_BODY@
        product[k] <== running * (1 - clamped[k]);
        e[k] <-- product[k] \ (2 ** D);
        dropped[k] <-- product[k] % (2 ** D);
        product[k] === e[k] * (2 ** D) + dropped[k];
        droppedBits[k] = Num2Bits(D);
        droppedBits[k].in <== dropped[k];
        eBits[k] = Num2Bits(@EXP_BITS@ + 1);
        eBits[k].in <== e[k];
    }

    // inv = floor(2^(SB + J) / Z): inv Z + t == 2^(SB + J), 0 <= t < Z, inv in [0, 2^(SB + 3))
    var sum = 0;
    for (var k = 0; k < C; k++) { sum += e[k]; }
    total <== sum;
    signal invRem;
    inv <-- (2 ** (SB + J)) \ total;
    invRem <-- (2 ** (SB + J)) % total;
    inv * total === 2 ** (SB + J) - invRem;
    component invRemBits = Num2Bits(ZB);
    invRemBits.in <== invRem;
    component invGap = Num2Bits(ZB);
    invGap.in <== total - 1 - invRem;
    component invBits = Num2Bits(SB + 3);
    invBits.in <== inv;

    // p_k = (e_k inv + 2^(J-1)) >> J: rem_k in [0, 2^J), p_k in [0, 2^(SB+1))
    signal share[C];
    component remBits[C];
    component pBits[C];
    for (var k = 0; k < C; k++) {
        share[k] <== e[k] * inv;
        p[k] <-- (share[k] + 2 ** (J - 1)) \ (2 ** J);
        rem[k] <-- (share[k] + 2 ** (J - 1)) % (2 ** J);
        share[k] + 2 ** (J - 1) === p[k] * (2 ** J) + rem[k];
        remBits[k] = Num2Bits(J);
        remBits[k].in <== rem[k];
        pBits[k] = Num2Bits(SB + 1);
        pBits[k].in <== p[k];
    }
}

// hot[k] = [label == k * 2^SB]: bits, exactly one set, sum_k k 2^SB hot[k] == label.
template OneHotLabel(C, SB) {
    signal input label;
    signal output hot[C];
    var count = 0;
    var weighted = 0;
    for (var k = 0; k < C; k++) {
        hot[k] <-- label == k * 2 ** SB ? 1 : 0;
        hot[k] * (hot[k] - 1) === 0;
        count += hot[k];
        weighted += k * 2 ** SB * hot[k];
    }
    count === 1;
    weighted === label;
}
"""


def _pair(table: tuple[int, ...], h: int, b0: str, b1: str, q: str) -> str:
    """Entries 4h..4h+3 of ``table`` as a linear expression in the bits b0, b1 and q = b0 b1."""
    t0, t1, t2, t3 = table[4 * h : 4 * h + 4]
    return f"({t0} + {b0} * {t1 - t0} + {b1} * {t2 - t0} + {q} * {t3 - t2 - t1 + t0})"


def _digit(index: int, low: int, width: int, table: tuple[int, ...]) -> tuple[list[str], list[str], str]:
    """(signal declarations, body lines, the table's value as an expression) of one digit."""
    bits = [f"bit[{low + i}]" for i in range(width)]
    if width == 1:
        return [], [], f"({table[0]} + {bits[0]} * {table[1] - table[0]})"
    name = f"digit{index}"
    signals = [f"signal {name}Low[C];"]
    body = [f"{name}Low[k] <== {bits[0]} * {bits[1]};"]
    pairs = [_pair(table, h, bits[0], bits[1], f"{name}Low[k]") for h in range(2 ** (width - 2))]
    if width == 2:
        return signals, body, pairs[0]
    signals.append(f"signal {name}Third[C];")
    body.append(f"{name}Third[k] <== {bits[2]} * ({pairs[1]} - {pairs[0]});")
    if width == 3:
        return signals, body, f"({pairs[0]} + {name}Third[k])"
    signals += [f"signal {name}High[C];", f"signal {name}Fourth[C];", f"signal {name}Both[C];"]
    body += [
        f"{name}High[k] <== {bits[2]} * {bits[3]};",
        f"{name}Fourth[k] <== {bits[3]} * ({pairs[2]} - {pairs[0]});",
        f"{name}Both[k] <== {name}High[k] * ({pairs[3]} - {pairs[2]} - {pairs[1]} + {pairs[0]});",
    ]
    return signals, body, f"({pairs[0]} + {name}Third[k] + {name}Fourth[k] + {name}Both[k])"


def _exp_code(scale: int) -> tuple[str, str]:
    """The signal declarations and the per-logit body computing ``running`` = (S - tail) prod_c T_c."""
    tables = exp_tables(scale)
    signals, body = [], []
    running = None
    for index, (low, width, table) in enumerate(tables.digits):
        digit_signals, digit_body, value = _digit(index, low, width, table)
        signals += digit_signals
        body += digit_body
        if running is None:
            running = value
            continue
        signals.append(f"signal factor{index}[C];")
        body.append(f"factor{index}[k] <== {running} * {value};")
        running = f"factor{index}[k]"
    if tables.tail_bits:
        tail = " + ".join(f"bit[{i}] * {2**i}" for i in range(tables.tail_bits))
        signals.append("signal tailFactor[C];")
        body.append(f"tailFactor[k] <== {running} * ({2**scale} - ({tail}));")
        running = "tailFactor[k]"
    body.append(f"var running = {running};")
    return "\n".join("    " + line for line in signals), "\n".join("        " + line for line in body)


def softmax_templates(classes: int, scale: int) -> str:
    """The templates for ``classes`` classes at ``scale``, the tables of
    :mod:`pot_zk.kinds.exact_softmax` filled in."""
    signals, body = _exp_code(scale)
    values = {
        "SCALE": scale,
        "LIMIT_BITS": EXP_LIMIT_BITS,
        "DROPPED_BITS": exp_tables(scale).dropped_bits,
        "RECIPROCAL_BITS": RECIPROCAL_BITS,
        "TOTAL_BITS": total_bits(classes),
        "EXP_BITS": EXP_BITS,
        "EXP_SIGNALS": signals,
        "EXP_BODY": body,
    }
    text = TEMPLATES
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    return text


def cross_entropy_delta(out: CircuitWriter, rows: int, classes: int, scale: int, quotient_bits: int, logits: str, labels: str, delta: str) -> None:
    """Emit ``delta[n][k] = softmax(logits[n])[k] - 2**scale * [labels[n] == k * 2**scale]``."""
    out.add(f"component softmax[{rows}];")
    out.add(f"component hot[{rows}];")
    out.add(f"signal {delta}[{rows}][{classes}];")
    out.add(f"for (var n = 0; n < {rows}; n++) {{")
    out.add(f"softmax[n] = SoftmaxRow({classes}, {scale}, {quotient_bits});", 2)
    out.add(f"for (var m = 0; m < {classes}; m++) {{ softmax[n].z[m] <== {logits}; }}", 2)
    out.add(f"hot[n] = OneHotLabel({classes}, {scale});", 2)
    out.add(f"hot[n].label <== {labels};", 2)
    out.add(f"for (var m = 0; m < {classes}; m++) {{ {delta}[n][m] <== softmax[n].p[m] - {2**scale} * hot[n].hot[m]; }}", 2)
    out.add("}")
