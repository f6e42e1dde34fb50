"""The circom 2 source of the ``zk-groth16`` AdamW circuit, generated from its spec.

Private inputs W_t, X, Y, W_t+1, m_t, m_t+1, v_t, v_t+1 and the step counts t_before, t_after;
public outputs their nine commitments, in :attr:`~pot_zk.backends.groth16.adamw.spec.Groth16AdamwSpec.public_names`
order (every value range-checked on its grid: the weights and batch to ``value_bits``, m to 22
signed bits, v to [0, 2**52) -- unsigned, which also proves v >= 0 -- and t to 24 signed bits;
the first moment after the step also to |m'| < 2**21 by its rounding, ``TruncCheck``, which the
reference checks too).
The forward pass, output delta and backward pass are the SGD circuit's
(:func:`pot_zk.backends.groth16.sgd.circuit.gradients`); the AdamW update is
:func:`pot_zk.backends.groth16.adamw.exact.exact_adamw_step` line by line. Every division and
square root is a prover hint (``<--``) pinned by constraints:

* ``Round(k)`` / ``RoundCheck(k)``: acc + 2**(k-1) == out 2**k + r, 0 <= r < 2**k, out
  range-checked (by the caller, or where it is committed);
* ``TruncCheck(k, B)`` (the first moment, rounded towards zero): acc == out 2**k + r with a sign
  bit s, r (1 - 2 s) in [0, 2**k) and out (1 - 2 s) in [0, 2**(B-1)): out and r share acc's sign;
* ``SquareRoot(n)``: out in [0, 2**n), in - out^2 and out^2 + 2 out - in both in [0, 2**(n+1)):
  out^2 <= in < (out + 1)^2;
* ``RoundDivide(n)``: 2 num + den == 2 out den + r with r and 2 den - 1 - r in [0, 2**n)
  (so den >= 1 and 0 <= r < 2 den), out range-checked by the caller;
* the step count: t_after == t_before + 1, the 23 bits of t_after pick the powers of the betas.

Every intermediate stays below 2**200 in magnitude (the spec's ``update_bound``, which also bounds
the update's division at the statement's learning rate; hints shift negatives by 2**200 or, in
the division, by 2**100 denominators, above every in-range update): nothing wraps the field. The source depends on the spec alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pot_zk.backends.groth16.adamw.exact import GRADIENT_SQUARE_SHIFT, SQUARE_SHIFT, update_exponent
from pot_zk.backends.groth16.adamw.spec import BIAS_SCALE, COUNT_BITS, FACTOR_SCALE, MOMENT_BITS, SECOND_BITS
from pot_zk.backends.groth16.circuit_writer import CircuitWriter, source
from pot_zk.backends.groth16.commit import packing_width
from pot_zk.backends.groth16.sgd.circuit import LayerGradient, batch_inputs, batch_signal, gradients, loss_templates

if TYPE_CHECKING:
    from pot_zk.backends.groth16.adamw.spec import Groth16AdamwSpec

ROOT_BITS = (SECOND_BITS - 1 + SQUARE_SHIFT) // 2
"""R = isqrt(v' 2**12) < 2**32."""

ADAMW_TEMPLATES = r"""
// isqrt(x) for 0 <= x < 2^80 (a prover hint; SquareRoot pins it).
function isqrt(x) {
    var r = 0;
    for (var i = 40; i >= 0; i--) {
        var c = r + 2 ** i;
        if (c * c <= x) {
            r = c;
        }
    }
    return r;
}

// out = round(acc / 2^k), halves up: acc + 2^(k-1) == out 2^k + r, 0 <= r < 2^k.
// The caller range-checks out (the quotient bound).
template Round(k) {
    signal input acc;
    signal output out;
    signal r;
    var offset = 2 ** 200;
    out <-- (acc + 2 ** (k - 1) + offset) \ (2 ** k) - offset \ (2 ** k);
    r <-- (acc + 2 ** (k - 1) + offset) % (2 ** k);
    component remainder = Num2Bits(k);
    remainder.in <== r;
    acc + 2 ** (k - 1) === out * (2 ** k) + r;
}

// out = trunc(acc / 2^k), towards zero, for a given out of at most B signed bits:
// acc == out 2^k + r with s a bit, r (1 - 2 s) in [0, 2^k) and out (1 - 2 s) in [0, 2^(B-1)):
// r and out take the sign s of acc (either s when out = r = 0).
template TruncCheck(k, B) {
    signal input acc;
    signal input out;
    signal s;
    signal r;
    s <-- acc < 0 ? 1 : 0;
    r <-- s == 1 ? -((-acc) % (2 ** k)) : acc % (2 ** k);
    s * (s - 1) === 0;
    signal remainder_sign;
    remainder_sign <== r * (1 - 2 * s);
    component remainder = Num2Bits(k);
    remainder.in <== remainder_sign;
    signal out_sign;
    out_sign <== out * (1 - 2 * s);
    component sign = Num2Bits(B - 1);
    sign.in <== out_sign;
    acc === out * (2 ** k) + r;
}

// The same as Round for a given out (a committed value, range-checked where it is committed).
template RoundCheck(k) {
    signal input acc;
    signal input out;
    signal r;
    var offset = 2 ** 200;
    r <-- (acc + 2 ** (k - 1) + offset) % (2 ** k);
    component remainder = Num2Bits(k);
    remainder.in <== r;
    acc + 2 ** (k - 1) === out * (2 ** k) + r;
}

// out = isqrt(in): out in [0, 2^n), out^2 <= in < (out + 1)^2.
template SquareRoot(n) {
    signal input in;
    signal output out;
    out <-- isqrt(in);
    component bits = Num2Bits(n);
    bits.in <== out;
    signal square;
    square <== out * out;
    component low = Num2Bits(n + 1);
    low.in <== in - square;
    component high = Num2Bits(n + 1);
    high.in <== square + 2 * out - in;
}

// out = round(num / den) = floor((2 num + den) / (2 den)): 2 num + den == 2 out den + r with
// r and 2 den - 1 - r in [0, 2^n), hence den >= 1 and 0 <= r < 2 den. The caller range-checks out.
template RoundDivide(n) {
    signal input num;
    signal input den;
    signal output out;
    signal r;
    var offset = 2 ** 100;
    out <-- (2 * num + den + offset * 2 * den) \ (2 * den) - offset;
    r <-- (2 * num + den + offset * 2 * den) % (2 * den);
    signal product;
    product <== out * den;
    2 * num + den === 2 * product + r;
    component low = Num2Bits(n);
    low.in <== r;
    component high = Num2Bits(n);
    high.in <== 2 * den - 1 - r;
}

// out = bit ? round(acc C / 2^B) : acc (one step of b^t, acc and out at 2^-B in [0, 2^B]).
template PowerBit(C, B) {
    signal input acc;
    signal input bit;
    signal output out;
    component product = Round(B);
    product.acc <== acc * C;
    component bound = Num2Bits(B + 1);
    bound.in <== product.out;
    out <== acc + bit * (product.out - acc);
}

// The terms a step count fixes: bc1 = 1 - b1^t, bc2 = 1 - b2^t (from the powers, at 2^-B),
// s2 = isqrt(bc2 2^B), factor = round(s2 2^PHI / bc1) in [0, 2^FB), eps_term = E s2.
template AdamStepTerms(B, PHI, FB, E) {
    signal input power1;
    signal input power2;
    signal output factor;
    signal output eps_term;
    component root = SquareRoot(B + 1);
    root.in <== (2 ** B - power2) * 2 ** B;
    component divide = RoundDivide(B + 2);
    divide.num <== root.out * 2 ** PHI;
    divide.den <== 2 ** B - power1;
    component bound = Num2Bits(FB);
    bound.in <== divide.out;
    factor <== divide.out;
    eps_term <== E * root.out;
}

// One parameter's update (docs/groth16.md, "AdamW steps"), G the gradient at 2^-2s (GW, or gb 2^s):
// g = round((GC G + WD w) / 2^K);
// m_new = trunc((B1 m + (2^P - B1) g) / 2^P); v_new = round((B2 v + (2^P - B2) g^2 2^SG) / 2^P);
// R = isqrt(v_new 2^SQ); u = round(L m_new factor 2^EN / ((R 2^B + eps_term) 2^ED));
// d = round(LWD w / 2^P); w_new = w - d - u.
template AdamParam(GC, WD, K, B1, B2, P, SG, SQ, RB, B, L, EN, ED, DB, LWD, MB, QB, WB) {
    signal input G;
    signal input w;
    signal input m;
    signal input v;
    signal input m_new;
    signal input v_new;
    signal input w_new;
    signal input factor;
    signal input eps_term;
    component g = Round(K);
    g.acc <== GC * G + WD * w;
    component g_range = SignedRange(MB);
    g_range.in <== g.out;
    component first = TruncCheck(P, MB);
    first.acc <== B1 * m + (2 ** P - B1) * g.out;
    first.out <== m_new;
    signal square;
    square <== g.out * g.out;
    component second = RoundCheck(P);
    second.acc <== B2 * v + (2 ** P - B2) * square * 2 ** SG;
    second.out <== v_new;
    component root = SquareRoot(RB);
    root.in <== v_new * 2 ** SQ;
    signal scaled;
    scaled <== factor * m_new;
    component step = RoundDivide(DB);
    step.num <== L * 2 ** EN * scaled;
    step.den <== (root.out * 2 ** B + eps_term) * 2 ** ED;
    component step_range = SignedRange(QB);
    step_range.in <== step.out;
    if (LWD == 0) {
        w_new === w - step.out;
    } else {
        component decay = Round(P);
        decay.acc <== LWD * w;
        component decay_range = SignedRange(WB);
        decay_range.in <== decay.out;
        w_new === w - decay.out - step.out;
    }
}

template UnsignedRangeArray(count, n) {
    signal input in[count];
    component range[count];
    for (var i = 0; i < count; i++) {
        range[i] = Num2Bits(n);
        range[i].in <== in[i];
    }
}
"""

STATE = ("w_after", "m_before", "m_after", "v_before", "v_after")


def adamw_circuit_source(spec: Groth16AdamwSpec) -> str:
    return source(spec, _main(spec), "AdamwStep", ADAMW_TEMPLATES + loss_templates(spec))


def _main(spec: Groth16AdamwSpec) -> str:
    params = spec.num_params
    out = CircuitWriter("AdamwStep")
    out.add(f"signal input w_before[{params}];")
    batch_inputs(out, spec)
    for name in STATE:
        out.add(f"signal input {name}[{params}];")
    out.add("signal input t_before[1];")
    out.add("signal input t_after[1];")
    for name in spec.public_names:
        out.add(f"signal output c_{name};")
    out.add()
    batch_signal(out, spec)
    for name in spec.public_names:
        count = spec.input_sizes()[name]
        bits = spec.grid(name)[1]
        if name.startswith("v_"):
            out.add(f"// {name} in [0, 2^{bits - 1}): unsigned, so within the signed {bits}-bit range it is committed in")
            out.add(f"component range_{name} = UnsignedRangeArray({count}, {bits - 1});")
            out.add(f"component commit_{name} = PackedCommitment({count}, {bits}, {packing_width(bits)});")
            out.add(f"for (var i = 0; i < {count}; i++) {{ range_{name}.in[i] <== {name}[i]; commit_{name}.in[i] <== {name}[i]; }}")
            out.add(f"c_{name} <== commit_{name}.out;")
        else:
            out.committed_input(name, count, bits, packing_width(bits), f"c_{name}")
    _step_terms(out, spec)
    exponent = update_exponent(spec)
    b1, b2 = spec.beta_fix
    arguments = (
        spec.c_fix, spec.wd_fix * 2**spec.scale, spec.gradient_shift, b1, b2, spec.param_scale, GRADIENT_SQUARE_SHIFT, SQUARE_SHIFT, ROOT_BITS,
        BIAS_SCALE, spec.lr_fix, max(exponent, 0), max(-exponent, 0), spec.update_remainder_bits, spec.lr_wd_fix,
        MOMENT_BITS, spec.quotient_bits, spec.value_bits,
    )

    def update(out: CircuitWriter, gradient: LayerGradient) -> None:
        weight = (gradient.rows, gradient.cols, gradient.weight, gradient.weight_at)
        bias = (1, gradient.rows, f"{gradient.bias} * {2**spec.scale}", gradient.bias_at)
        for part, (rows, cols, g, at) in (("w", weight), ("b", bias)):
            name = f"adam_{part}{gradient.layer}"
            wiring = "; ".join(
                f"{name}[n][m].{signal} <== {value}"
                for signal, value in (
                    ("G", g), ("w", at("w_before")), ("m", at("m_before")), ("v", at("v_before")), ("m_new", at("m_after")),
                    ("v_new", at("v_after")), ("w_new", at("w_after")), ("factor", "terms.factor"), ("eps_term", "terms.eps_term"),
                )
            )
            out.add(f"component {name}[{rows}][{cols}];")
            out.loop(rows, cols, f"{name}[n][m] = AdamParam({', '.join(str(a) for a in arguments)}); {wiring};")

    gradients(out, spec, "m', v', W' by AdamParam", update)
    return out.text()


def _step_terms(out: CircuitWriter, spec: Groth16AdamwSpec) -> None:
    """t_after = t_before + 1; b1^t and b2^t by square-and-multiply over t_after's bits; the terms."""
    bits = COUNT_BITS - 1
    out.add()
    out.add(f"// step count: t_after = t_before + 1 < 2^{bits}; b^t at 2^-{BIAS_SCALE} over its bits")
    out.add("t_after[0] === t_before[0] + 1;")
    out.add(f"component t_bits = Num2Bits({bits});")
    out.add("t_bits.in <== t_after[0];")
    for beta, constants in enumerate(spec.powers, start=1):
        out.add(f"component power{beta}[{bits}];")
        for i, constant in enumerate(constants):
            below = f"{2**BIAS_SCALE}" if i == 0 else f"power{beta}[{i - 1}].out"
            out.add(f"power{beta}[{i}] = PowerBit({constant}, {BIAS_SCALE}); power{beta}[{i}].acc <== {below}; power{beta}[{i}].bit <== t_bits.out[{i}];")
    out.add(f"component terms = AdamStepTerms({BIAS_SCALE}, {FACTOR_SCALE}, {spec.factor_bits}, {spec.eps_fix});")
    out.add(f"terms.power1 <== power1[{bits - 1}].out;")
    out.add(f"terms.power2 <== power2[{bits - 1}].out;")
