"""The circom 2 templates every zk-groth16 circuit shares, and a writer for circuit mains.

Soundness rules the templates follow (docs/groth16.md):

* every committed value is range-checked to ``value_bits`` signed bits: values are packed
  into commitments (:mod:`pot_zk.backends.groth16.commit`), where an out-of-range value would
  carry into its neighbour;
* every floor division checks ``acc == (z - add) * 2**k + r`` with ``0 <= r < 2**k`` AND the
  result z range-checked in both directions: with the remainder alone, any r is matched by
  some field element;
* ReLU and its derivative come from the sign bit of the range-checked pre-activation;
* an update is checked for equality: ``c * g == (w - w_new) * 2**p + r``, ``0 <= r < 2**p``,
  its quotient bounded by the range checks of w and w_new; with ``c = c' 2**v`` the low v bits
  of r are 0, so the check is ``c' g == (w - w_new) 2**(p-v) + r'`` (:func:`update_constant`);
* matrix products are products of signals only (Winograd's pairing where it saves products:
  an identity, no hints), their sums exact integers below 2**62.

Quotients and remainders are prover hints (``<--``) computed on ``acc + 2**63`` (``c * g +
2**200`` for an update): circom's ``\\`` and ``%`` act on field representatives, so negative
values are shifted first (every accumulator is below 2**62 in magnitude, every update product
below 2**200: the specs' ``accumulator_bound`` and ``update_bound``).
"""

from __future__ import annotations

from typing import Any

from pot_zk.backends.groth16.commit import ABSORB

PRAGMA = "pragma circom 2.1.6;"
INCLUDES = ('include "bitify.circom";', 'include "poseidon.circom";')

TEMPLATES = r"""
// in lies in [-2^(n-1), 2^(n-1)).
template SignedRange(n) {
    signal input in;
    component bits = Num2Bits(n);
    bits.in <== in + 2 ** (n - 1);
}

template SignedRangeArray(count, n) {
    signal input in[count];
    component range[count];
    for (var i = 0; i < count; i++) {
        range[i] = SignedRange(n);
        range[i].in <== in[i];
    }
}

// z = floor(acc / 2^k) + add, with z in [-2^(B-1), 2^(B-1)) and 0 <= r < 2^k:
// acc == (z - add) * 2^k + r. nonneg = [z >= 0], the top bit of z + 2^(B-1).
template FloorDivCheck(k, B) {
    signal input acc;
    signal input add;
    signal input z;
    signal input r;
    signal output nonneg;
    component remainder = Num2Bits(k);
    remainder.in <== r;
    component quotient = Num2Bits(B);
    quotient.in <== z + 2 ** (B - 1);
    acc === (z - add) * (2 ** k) + r;
    nonneg <== quotient.out[B - 1];
}

template FloorDiv(k, B) {
    signal input acc;
    signal input add;
    signal output z;
    signal output nonneg;
    signal r;
    var offset = 2 ** 63;
    z <-- (acc + offset) \ (2 ** k) - offset \ (2 ** k) + add;
    r <-- (acc + offset) % (2 ** k);
    component check = FloorDivCheck(k, B);
    check.acc <== acc;
    check.add <== add;
    check.z <== z;
    check.r <== r;
    nonneg <== check.nonneg;
}

// h = relu(z), pos = [z > 0], given nonneg = [z >= 0] of a range-checked z.
template Relu() {
    signal input z;
    signal input nonneg;
    signal output h;
    signal output pos;
    signal inverse;
    signal zero;
    inverse <-- z != 0 ? 1 / z : 0;
    zero <== 1 - z * inverse;
    z * zero === 0;
    pos <== nonneg - zero;
    h <== z * pos;
}

template ReluLayer(N, M) {
    signal input z[N][M];
    signal input nonneg[N][M];
    signal output h[N][M];
    signal output pos[N][M];
    component relu[N][M];
    for (var n = 0; n < N; n++) {
        for (var m = 0; m < M; m++) {
            relu[n][m] = Relu();
            relu[n][m].z <== z[n][m];
            relu[n][m].nonneg <== nonneg[n][m];
            h[n][m] <== relu[n][m].h;
            pos[n][m] <== relu[n][m].pos;
        }
    }
}

// acc[n][m] = sum_k a[n][k] * b[m][k], one product per term.
template MatMul(N, K, M) {
    signal input a[N][K];
    signal input b[M][K];
    signal output acc[N][M];
    signal product[N][M][K];
    for (var n = 0; n < N; n++) {
        for (var m = 0; m < M; m++) {
            var sum = 0;
            for (var k = 0; k < K; k++) {
                product[n][m][k] <== a[n][k] * b[m][k];
                sum += product[n][m][k];
            }
            acc[n][m] <== sum;
        }
    }
}

// MatMul with Winograd's pairing (1968): sum_k a_k b_k equals
// sum_j (a_2j + b_2j+1)(a_2j+1 + b_2j) - sum_j a_2j a_2j+1 - sum_j b_2j b_2j+1 (+ a_K-1 b_K-1 for
// odd K), an identity in any commutative ring: one product per pair of terms, plus the row and
// column corrections, each computed once. The same integers as MatMul.
template MatMulPaired(N, K, M) {
    signal input a[N][K];
    signal input b[M][K];
    signal output acc[N][M];
    var H = K \ 2;
    signal rowPair[N][H];
    signal colPair[M][H];
    signal cross[N][M][H];
    signal last[N][M];
    for (var n = 0; n < N; n++) { for (var j = 0; j < H; j++) { rowPair[n][j] <== a[n][2 * j] * a[n][2 * j + 1]; } }
    for (var m = 0; m < M; m++) { for (var j = 0; j < H; j++) { colPair[m][j] <== b[m][2 * j] * b[m][2 * j + 1]; } }
    for (var n = 0; n < N; n++) {
        for (var m = 0; m < M; m++) {
            var sum = 0;
            for (var j = 0; j < H; j++) {
                cross[n][m][j] <== (a[n][2 * j] + b[m][2 * j + 1]) * (a[n][2 * j + 1] + b[m][2 * j]);
                sum += cross[n][m][j] - rowPair[n][j] - colPair[m][j];
            }
            if (K % 2 == 1) {
                last[n][m] <== a[n][K - 1] * b[m][K - 1];
            } else {
                last[n][m] <== 0;
            }
            acc[n][m] <== sum + last[n][m];
        }
    }
}

// out[n][m] = floor(acc[n][m] / 2^s) + add[n][m], out in [-2^(B-1), 2^(B-1)).
template FloorDivArray(N, M, s, B) {
    signal input acc[N][M];
    signal input add[N][M];
    signal output out[N][M];
    signal output nonneg[N][M];
    component div[N][M];
    for (var n = 0; n < N; n++) {
        for (var m = 0; m < M; m++) {
            div[n][m] = FloorDiv(s, B);
            div[n][m].acc <== acc[n][m];
            div[n][m].add <== add[n][m];
            out[n][m] <== div[n][m].z;
            nonneg[n][m] <== div[n][m].nonneg;
        }
    }
}

// w_new = w - floor(c * g / 2^p): c * g == (w - w_new) * 2^p + r with 0 <= r < 2^p (the hint
// shifts c * g by 2^200, a multiple of 2^p above every |c * g|, before taking the remainder).
template UpdateCheck(c, p) {
    signal input g;
    signal input w;
    signal input w_new;
    signal r;
    var offset = 2 ** 200;
    r <-- (c * g + offset) % (2 ** p);
    component remainder = Num2Bits(p);
    remainder.in <== r;
    c * g === (w - w_new) * (2 ** p) + r;
}

// h_0 = count, h_(c+1) = Poseidon(h_c, packed_(11c), ..., packed_(11c+10)) (the last call takes
// the elements left); packed_e holds `width` values v + 2^(bits-1), little-endian, `bits` bits each.
template PackedCommitment(count, bits, width) {
    signal input in[count];
    signal output out;
    var elements = (count + width - 1) \ width;
    var calls = (elements + @ABSORB@ - 1) \ @ABSORB@;
    signal packed[elements];
    for (var e = 0; e < elements; e++) {
        var sum = 0;
        for (var j = 0; j < width; j++) {
            if (e * width + j < count) {
                sum += (in[e * width + j] + 2 ** (bits - 1)) * 2 ** (bits * j);
            }
        }
        packed[e] <== sum;
    }
    component hash[calls];
    for (var c = 0; c < calls; c++) {
        var taken = elements - c * @ABSORB@ < @ABSORB@ ? elements - c * @ABSORB@ : @ABSORB@;
        hash[c] = Poseidon(taken + 1);
        hash[c].inputs[0] <== c == 0 ? count : hash[c - 1].out;
        for (var i = 0; i < taken; i++) {
            hash[c].inputs[i + 1] <== packed[c * @ABSORB@ + i];
        }
    }
    out <== hash[calls - 1].out;
}
""".replace("@ABSORB@", str(ABSORB))


def source(spec: Any, main: str, main_name: str, templates: str = "") -> str:
    """A complete circuit: header naming the spec, the shared templates (and ``templates``), ``main``."""
    return "\n".join(
        [
            f"// pot-zk {spec.circuit_version} circuit {spec.circuit_id()}",
            f"// spec: {spec.canonical_bytes().decode()}",
            PRAGMA,
            *INCLUDES,
            TEMPLATES,
            *([templates] if templates else []),
            main,
            f"component main = {main_name}();",
            "",
        ]
    )


def gadget_source(main: str, templates: str = "") -> str:
    """The shared templates (and ``templates``) with the given main line (tests check one gadget at a time)."""
    return "\n".join([PRAGMA, *INCLUDES, TEMPLATES, *([templates] if templates else []), main, ""])


def update_constant(c_fix: int, shift: int) -> tuple[int, int]:
    """``floor(c_fix * g / 2**shift)`` as ``floor(c * g / 2**k)`` with the factors of two of
    c_fix cancelled (at most ``shift`` of them): the same integer for every g, k fewer remainder
    bits to range-check."""
    twos = min((c_fix & -c_fix).bit_length() - 1, shift)
    return c_fix >> twos, shift - twos


class CircuitWriter:
    """Lines of a main template. Loop bodies use the circom loop variables n, k, m."""

    def __init__(self, name: str) -> None:
        self._lines = [f"template {name}() {{"]

    def add(self, line: str = "", indent: int = 1) -> None:
        self._lines.append("    " * indent + line if line else "")

    def loop(self, rows: int, cols: int, body: str, outer: str = "n", inner: str = "m") -> None:
        self.add(f"for (var {outer} = 0; {outer} < {rows}; {outer}++) {{ for (var {inner} = 0; {inner} < {cols}; {inner}++) {{ {body} }} }}")

    def committed_input(self, name: str, count: int, value_bits: int, width: int, output: str) -> None:
        """Range-check every value of the flat signal ``name`` and expose its commitment."""
        self.add(f"component range_{name} = SignedRangeArray({count}, {value_bits});")
        self.add(f"component commit_{name} = PackedCommitment({count}, {value_bits}, {width});")
        self.add(f"for (var i = 0; i < {count}; i++) {{ range_{name}.in[i] <== {name}[i]; commit_{name}.in[i] <== {name}[i]; }}")
        self.add(f"{output} <== commit_{name}.out;")

    def products(self, name: str, rows: int, inner: int, cols: int, a: str, b: str) -> None:
        """``name.acc[n][m] = sum_k a(n,k) * b(m,k)``, with Winograd's pairing where it takes
        fewer products (rows + cols < rows * cols)."""
        template = "MatMulPaired" if inner >= 2 and rows + cols < rows * cols else "MatMul"
        self.add(f"component {name} = {template}({rows}, {inner}, {cols});")
        self.loop(rows, inner, f"{name}.a[n][k] <== {a};", "n", "k")
        self.loop(cols, inner, f"{name}.b[m][k] <== {b};", "m", "k")

    def matmul(self, name: str, rows: int, inner: int, cols: int, a: str, b: str, add: str, scale: int, bits: int) -> None:
        """``name.out[n][m] = floor(sum_k a(n,k) * b(m,k) / 2^scale) + add(n,m)``, range-checked
        to ``bits`` (``name.nonneg``: its sign); the sums are ``name_sum.acc``."""
        self.products(f"{name}_sum", rows, inner, cols, a, b)
        self.add(f"component {name} = FloorDivArray({rows}, {cols}, {scale}, {bits});")
        self.loop(rows, cols, f"{name}.acc[n][m] <== {name}_sum.acc[n][m]; {name}.add[n][m] <== {add};")

    def relu(self, name: str, rows: int, cols: int, source: str) -> None:
        """``name.h`` and ``name.pos`` of the floored matmul ``source``'s outputs (FloorDivArray)."""
        self.add(f"component {name} = ReluLayer({rows}, {cols});")
        self.loop(rows, cols, f"{name}.z[n][m] <== {source}.out[n][m]; {name}.nonneg[n][m] <== {source}.nonneg[n][m];")

    def scaled(self, name: str, rows: int, cols: int, factor: int, shift: int, bits: int, value: str) -> None:
        """``name[n][m].z = floor(factor * value(n,m) / 2^shift)``, range-checked."""
        self.add(f"component {name}[{rows}][{cols}];")
        self.loop(rows, cols, f"{name}[n][m] = FloorDiv({shift}, {bits}); {name}[n][m].acc <== {factor} * ({value}); {name}[n][m].add <== 0;")

    def updates(self, name: str, rows: int, cols: int, c_fix: int, shift: int, gradient: str, before: str, after: str) -> None:
        """``after(n,m) == before(n,m) - floor(c_fix * gradient(n,m) / 2^shift)``."""
        constant, bits = update_constant(c_fix, shift)
        self.add(f"component {name}[{rows}][{cols}];")
        self.loop(
            rows,
            cols,
            f"{name}[n][m] = UpdateCheck({constant}, {bits}); {name}[n][m].g <== {gradient}; "
            f"{name}[n][m].w <== {before}; {name}[n][m].w_new <== {after};",
        )

    def text(self) -> str:
        return "\n".join(self._lines + ["}"])
