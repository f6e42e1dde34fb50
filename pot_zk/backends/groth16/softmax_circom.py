"""The circom 2 templates of the integer softmax and the cross-entropy output delta: one
constraint (or range check) per line of :mod:`pot_zk.kinds.exact_softmax`.

For one row of ``C`` logits ``z`` (each range-checked to ``QB`` signed bits by the forward
pass) at ``S = 2**scale``, ``SoftmaxRow`` checks (docs/groth16.md):

* max: ``m - z_k`` in ``[0, 2**(QB+1))`` for every k, and ``prod_k (m - z_k) == 0`` (each
  factor is a small non-negative integer, so the product is 0 in the field only if one is 0);
* clamp: a bit ``s_k``; ``u_k = z_k - m + s_k (m - z_k - L)`` with ``L = EXP_RANGE * S``, and
  ``(z_k - m + L) + 2 s_k (m - z_k - L)`` in ``[0, 2**(QB+2))`` -- ``z_k - m >= -L`` when
  ``s_k = 0``, ``z_k - m <= -L`` when ``s_k = 1``;
* split: ``-u_k * LOG2E == n_k 2**T + f_k 2**(T-POLY_BITS) + t_k`` with ``n_k``, ``f_k``,
  ``t_k`` range-checked to ``NB``, ``POLY_BITS`` and ``T - POLY_BITS`` bits (``T = scale +
  LOG2E_BITS``; the left side is below ``2**(T+NB)``, so the split is unique);
* Horner: each step a floor division by ``2**POLY_BITS`` with its remainder in
  ``[0, 2**POLY_BITS)`` and its result range-checked to ``HB`` signed bits (FloorDiv);
* shift: ``P_k = 2**(POLY_BITS - EB) * prod_i (1 + b_i (2**(2**i) - 1))`` from the bits
  ``b_i`` of ``n_k``; ``y_k == e_k P_k + r_k`` with ``e_k`` in ``[0, 2**(EB+1))`` and both
  ``r_k`` and ``P_k - 1 - r_k`` in ``[0, 2**RB)``, ``RB = POLY_BITS - EB + 2**NB - 1``;
* normalisation: ``Z = sum e_k = 2 h + o`` (o a bit, h range-checked);
  ``e_k S + h == p_k Z + rem_k`` with ``rem_k`` and ``Z - 1 - rem_k`` in ``[0, 2**ZB)`` (so
  ``0 <= rem_k < Z``) and ``p_k`` and ``S - p_k`` in ``[0, 2**(scale+1))``.

``OneHotLabel`` turns a committed label ``k S`` into bits ``o_k`` (each a bit, one of them set,
``sum_k k S o_k == label``); the output delta is ``p_k - S o_k``. Every value is an integer
below ``2**57`` in magnitude, far from the field modulus: nothing wraps.
"""

from __future__ import annotations

from pot_zk.backends.groth16.circuit_writer import CircuitWriter
from pot_zk.kinds.exact_softmax import COEFFICIENTS, EXP_BITS, EXP_RANGE, LOG2E, LOG2E_BITS, POLY_BITS, POLY_DEGREE

HORNER_BITS = sum(abs(c) for c in COEFFICIENTS).bit_length() + 2
"""Every Horner partial sum is at most sum |c_j| (+ rounding) in magnitude: signed HORNER_BITS fit it."""


def whole_bits(scale: int) -> int:
    """Bits of n = floor(-u log2(e)) for u in [-EXP_RANGE S, 0]."""
    return ((EXP_RANGE * 2**scale * LOG2E) >> (scale + LOG2E_BITS)).bit_length()


def total_bits(classes: int) -> int:
    """Z = sum of C values below 2**(EXP_BITS+1): below 2**(EXP_BITS + 1 + bitlen(C))."""
    return EXP_BITS + 1 + classes.bit_length()


TEMPLATES = r"""
// The integer softmax of one row (pot_zk/kinds/exact_softmax.py; docs/groth16.md).
template SoftmaxRow(C, SB, QB) {
    signal input z[C];
    signal output m;
    signal output u[C];
    signal output whole[C];
    signal output fraction[C];
    signal output power[C];
    signal output e[C];
    signal output total;
    signal output p[C];
    signal output rem[C];
    var LIMIT = @EXP_RANGE@ * 2 ** SB;
    var T = SB + @LOG2E_BITS@;
    var FB = T - @POLY_BITS@;
    var NB = @WHOLE_BITS@;
    var RB = @POLY_BITS@ - @EXP_BITS@ + 2 ** NB - 1;
    var ZB = @TOTAL_BITS@;
    var coefficient[@TERMS@] = [@COEFFICIENTS@];

    // m = max_k z_k
    var best = z[0];
    for (var k = 1; k < C; k++) { if (z[k] > best) { best = z[k]; } }
    m <-- best;
    component below[C];
    signal gap[C];
    for (var k = 0; k < C; k++) {
        below[k] = Num2Bits(QB + 1);
        below[k].in <== m - z[k];
        if (k == 0) { gap[k] <== m - z[k]; } else { gap[k] <== gap[k - 1] * (m - z[k]); }
    }
    gap[C - 1] === 0;

    // u = max(z - m, -LIMIT): a selector bit, both branches range-checked
    signal clamped[C];
    signal side[C];
    component branch[C];
    for (var k = 0; k < C; k++) {
        clamped[k] <-- z[k] - m < -LIMIT ? 1 : 0;
        clamped[k] * (clamped[k] - 1) === 0;
        side[k] <== clamped[k] * (m - z[k] - LIMIT);
        branch[k] = Num2Bits(QB + 2);
        branch[k].in <== z[k] - m + LIMIT + 2 * side[k];
        u[k] <== z[k] - m + side[k];
    }

    // -u * LOG2E = whole * 2^T + fraction * 2^FB + tail
    signal tail[C];
    component wholeBits[C];
    component fractionBits[C];
    component tailBits[C];
    for (var k = 0; k < C; k++) {
        whole[k] <-- (-u[k] * @LOG2E@) \ (2 ** T);
        fraction[k] <-- ((-u[k] * @LOG2E@) % (2 ** T)) \ (2 ** FB);
        tail[k] <-- (-u[k] * @LOG2E@) % (2 ** FB);
        -u[k] * @LOG2E@ === whole[k] * (2 ** T) + fraction[k] * (2 ** FB) + tail[k];
        wholeBits[k] = Num2Bits(NB);
        wholeBits[k].in <== whole[k];
        fractionBits[k] = Num2Bits(@POLY_BITS@);
        fractionBits[k].in <== fraction[k];
        tailBits[k] = Num2Bits(FB);
        tailBits[k].in <== tail[k];
    }

    // power = 2^-fraction by Horner's rule, each step floor((acc * fraction) / 2^POLY_BITS) + c_j
    signal product[C][@DEGREE@];
    component horner[C][@DEGREE@];
    for (var k = 0; k < C; k++) {
        for (var j = 0; j < @DEGREE@; j++) {
            if (j == 0) { product[k][j] <== coefficient[@DEGREE@] * fraction[k]; }
            else { product[k][j] <== horner[k][j - 1].z * fraction[k]; }
            horner[k][j] = FloorDiv(@POLY_BITS@, @HORNER_BITS@);
            horner[k][j].acc <== product[k][j];
            horner[k][j].add <== coefficient[@DEGREE@ - 1 - j];
        }
        power[k] <== horner[k][@DEGREE@ - 1].z;
    }

    // e = floor(power / 2^(POLY_BITS - EXP_BITS + whole)), 2^whole from the bits of whole
    signal twoPow[C][NB];
    signal scaled[C];
    signal dropped[C];
    component eBits[C];
    component droppedBits[C];
    component droppedGap[C];
    for (var k = 0; k < C; k++) {
        twoPow[k][0] <== 1 + wholeBits[k].out[0];
        for (var i = 1; i < NB; i++) {
            twoPow[k][i] <== twoPow[k][i - 1] * (1 + wholeBits[k].out[i] * (2 ** (2 ** i) - 1));
        }
        var shift = 2 ** (@POLY_BITS@ - @EXP_BITS@) * twoPow[k][NB - 1];
        e[k] <-- power[k] \ shift;
        dropped[k] <-- power[k] % shift;
        scaled[k] <== e[k] * twoPow[k][NB - 1];
        power[k] === scaled[k] * 2 ** (@POLY_BITS@ - @EXP_BITS@) + dropped[k];
        eBits[k] = Num2Bits(@EXP_BITS@ + 1);
        eBits[k].in <== e[k];
        droppedBits[k] = Num2Bits(RB);
        droppedBits[k].in <== dropped[k];
        droppedGap[k] = Num2Bits(RB);
        droppedGap[k].in <== 2 ** (@POLY_BITS@ - @EXP_BITS@) * twoPow[k][NB - 1] - 1 - dropped[k];
    }

    // p = floor((e * S + floor(Z / 2)) / Z), 0 <= rem < Z, 0 <= p <= S
    var sum = 0;
    for (var k = 0; k < C; k++) { sum += e[k]; }
    total <== sum;
    signal half;
    signal odd;
    half <-- total \ 2;
    odd <-- total % 2;
    odd * (odd - 1) === 0;
    total === 2 * half + odd;
    component halfBits = Num2Bits(ZB);
    halfBits.in <== half;
    signal share[C];
    component remBits[C];
    component remGap[C];
    component pBits[C];
    component pGap[C];
    for (var k = 0; k < C; k++) {
        p[k] <-- (e[k] * 2 ** SB + half) \ total;
        rem[k] <-- (e[k] * 2 ** SB + half) % total;
        share[k] <== p[k] * total;
        e[k] * 2 ** SB + half === share[k] + rem[k];
        remBits[k] = Num2Bits(ZB);
        remBits[k].in <== rem[k];
        remGap[k] = Num2Bits(ZB);
        remGap[k].in <== total - 1 - rem[k];
        pBits[k] = Num2Bits(SB + 1);
        pBits[k].in <== p[k];
        pGap[k] = Num2Bits(SB + 1);
        pGap[k].in <== 2 ** SB - p[k];
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


def softmax_templates(classes: int, scale: int) -> str:
    """The templates with the constants of :mod:`pot_zk.kinds.exact_softmax` filled in."""
    values = {
        "EXP_RANGE": EXP_RANGE,
        "LOG2E_BITS": LOG2E_BITS,
        "POLY_BITS": POLY_BITS,
        "EXP_BITS": EXP_BITS,
        "LOG2E": LOG2E,
        "WHOLE_BITS": whole_bits(scale),
        "TOTAL_BITS": total_bits(classes),
        "HORNER_BITS": HORNER_BITS,
        "DEGREE": POLY_DEGREE,
        "TERMS": POLY_DEGREE + 1,
        "COEFFICIENTS": ", ".join(str(c) for c in COEFFICIENTS),
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

