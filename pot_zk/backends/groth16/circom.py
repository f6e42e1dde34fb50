"""The circom 2 source of the ``zk-groth16`` SGD circuit, generated from a spec.

The circuit proves, for private inputs W_t (``w_before``), X, Y and W_t+1 (``w_after``), that
W_t+1 is exactly the step of :func:`pot_zk.backends.groth16.exact.exact_sgd_step`, and exposes
the three commitments of :mod:`pot_zk.backends.groth16.commit` as its public outputs, in the
order ``c_w_before``, ``c_batch``, ``c_w_after``.

Soundness rules the templates follow (docs/groth16.md):

* every input value (including W_t+1) is range-checked to ``value_bits`` signed bits: they
  are packed into commitments, where an out-of-range value would carry into its neighbour;
* every floor division checks ``acc == q * 2**k + r`` with ``0 <= r < 2**k`` AND the quotient
  range-checked (both bounds): with the remainder alone, any r is matched by some field
  element q;
* ReLU and its derivative come from the sign bit of the range-checked pre-activation;
* the update is checked for equality: ``c * g == (w - w_new) * 2**p + r``, ``0 <= r < 2**p``,
  its quotient bounded by the range checks of w and w_new.

Quotients and remainders are prover hints (``<--``) computed on ``acc + 2**63``: circom's
``\\`` and ``%`` act on field representatives, so negative values are shifted first (every
accumulator is below 2**62 in magnitude, see ``Groth16SgdSpec.accumulator_bound``). The source
depends on the spec alone: the same spec always gives the same bytes.
"""

from __future__ import annotations

from pot_zk.backends.groth16.commit import packing_width
from pot_zk.backends.groth16.spec import Groth16SgdSpec

PRAGMA = "pragma circom 2.1.6;"
PUBLIC_OUTPUTS = ("c_w_before", "c_batch", "c_w_after")

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

template ReluLayer(N, J) {
    signal input z[N][J];
    signal input nonneg[N][J];
    signal output h[N][J];
    signal output pos[N][J];
    component relu[N][J];
    for (var n = 0; n < N; n++) {
        for (var j = 0; j < J; j++) {
            relu[n][j] = Relu();
            relu[n][j].z <== z[n][j];
            relu[n][j].nonneg <== nonneg[n][j];
            h[n][j] <== relu[n][j].h;
            pos[n][j] <== relu[n][j].pos;
        }
    }
}

// z[n][j] = floor(sum_i a[n][i] * w[j][i] / 2^k) + b[j]
template DenseForward(N, I, J, k, B) {
    signal input a[N][I];
    signal input w[J][I];
    signal input b[J];
    signal output z[N][J];
    signal output nonneg[N][J];
    signal product[N][J][I];
    component div[N][J];
    for (var n = 0; n < N; n++) {
        for (var j = 0; j < J; j++) {
            var acc = 0;
            for (var i = 0; i < I; i++) {
                product[n][j][i] <== a[n][i] * w[j][i];
                acc += product[n][j][i];
            }
            div[n][j] = FloorDiv(k, B);
            div[n][j].acc <== acc;
            div[n][j].add <== b[j];
            z[n][j] <== div[n][j].z;
            nonneg[n][j] <== div[n][j].nonneg;
        }
    }
}

// g[j][i] = floor(sum_n delta[n][j] * a[n][i] / 2^k)
template WeightGradient(N, I, J, k, B) {
    signal input delta[N][J];
    signal input a[N][I];
    signal output g[J][I];
    signal product[J][I][N];
    component div[J][I];
    for (var j = 0; j < J; j++) {
        for (var i = 0; i < I; i++) {
            var acc = 0;
            for (var n = 0; n < N; n++) {
                product[j][i][n] <== delta[n][j] * a[n][i];
                acc += product[j][i][n];
            }
            div[j][i] = FloorDiv(k, B);
            div[j][i].acc <== acc;
            div[j][i].add <== 0;
            g[j][i] <== div[j][i].z;
        }
    }
}

// out[n][i] = floor(sum_j delta[n][j] * w[j][i] / 2^k) * pos[n][i]
template BackPropagate(N, I, J, k, B) {
    signal input delta[N][J];
    signal input w[J][I];
    signal input pos[N][I];
    signal output out[N][I];
    signal product[N][I][J];
    component div[N][I];
    for (var n = 0; n < N; n++) {
        for (var i = 0; i < I; i++) {
            var acc = 0;
            for (var j = 0; j < J; j++) {
                product[n][i][j] <== delta[n][j] * w[j][i];
                acc += product[n][i][j];
            }
            div[n][i] = FloorDiv(k, B);
            div[n][i].acc <== acc;
            div[n][i].add <== 0;
            out[n][i] <== div[n][i].z * pos[n][i];
        }
    }
}

// w_new = w - floor(c * g / 2^p): c * g == (w - w_new) * 2^p + r with 0 <= r < 2^p.
template UpdateCheck(c, p) {
    signal input g;
    signal input w;
    signal input w_new;
    signal r;
    var offset = 2 ** 63;
    r <-- (c * g + offset) % (2 ** p);
    component remainder = Num2Bits(p);
    remainder.in <== r;
    c * g === (w - w_new) * (2 ** p) + r;
}

// h_0 = count, h_(e+1) = Poseidon(h_e, packed_e); packed_e holds `width` values
// v + 2^(bits-1), little-endian, `bits` bits each.
template PackedCommitment(count, bits, width) {
    signal input in[count];
    signal output out;
    var elements = (count + width - 1) \ width;
    component hash[elements];
    for (var e = 0; e < elements; e++) {
        var packed = 0;
        for (var j = 0; j < width; j++) {
            if (e * width + j < count) {
                packed += (in[e * width + j] + 2 ** (bits - 1)) * 2 ** (bits * j);
            }
        }
        hash[e] = Poseidon(2);
        if (e == 0) {
            hash[e].inputs[0] <== count;
        } else {
            hash[e].inputs[0] <== hash[e - 1].out;
        }
        hash[e].inputs[1] <== packed;
    }
    out <== hash[elements - 1].out;
}
"""


def circuit_source(spec: Groth16SgdSpec) -> str:
    """The complete circom 2 source of the circuit for ``spec`` (deterministic)."""
    return "\n".join(
        [
            f"// pot-zk {spec.circuit_version} circuit {spec.circuit_id()}",
            f"// spec: {spec.canonical_bytes().decode()}",
            PRAGMA,
            'include "bitify.circom";',
            'include "poseidon.circom";',
            TEMPLATES,
            _main_template(spec),
            "component main = SgdStep();",
            "",
        ]
    )


def gadget_source(main: str) -> str:
    """A circuit of the shared templates with the given main line (tests check one gadget)."""
    return "\n".join([PRAGMA, 'include "bitify.circom";', 'include "poseidon.circom";', TEMPLATES, main, ""])


def _main_template(spec: Groth16SgdSpec) -> str:
    dims, n, layers = spec.dims, spec.batch_size, spec.num_layers
    p, vb, qb, k = spec.num_params, spec.value_bits, spec.quotient_bits, spec.scale
    d0, dl = dims[0], dims[-1]
    out = _Lines()
    out.add("template SgdStep() {")
    out.add(f"signal input w_before[{p}];", 1)
    out.add(f"signal input x[{n}][{d0}];", 1)
    out.add(f"signal input y[{n}][{dl}];", 1)
    out.add(f"signal input w_after[{p}];", 1)
    for name in PUBLIC_OUTPUTS:
        out.add(f"signal output {name};", 1)
    out.add("")
    out.add("// every input is range-checked and committed; the batch is X then Y, row-major", 1)
    out.add(f"signal batch[{spec.num_batch_values}];", 1)
    out.loop2(n, d0, f"batch[n * {d0} + i] <== x[n][i];")
    out.loop2(n, dl, f"batch[{n * d0} + n * {dl} + i] <== y[n][i];")
    width = packing_width(vb)
    for name, count, output in (("w_before", p, "c_w_before"), ("batch", spec.num_batch_values, "c_batch"), ("w_after", p, "c_w_after")):
        out.add(f"component range_{name} = SignedRangeArray({count}, {vb});", 1)
        out.add(f"component commit_{name} = PackedCommitment({count}, {vb}, {width});", 1)
        out.add(f"for (var i = 0; i < {count}; i++) {{ range_{name}.in[i] <== {name}[i]; commit_{name}.in[i] <== {name}[i]; }}", 1)
        out.add(f"{output} <== commit_{name}.out;", 1)
    offsets = spec.param_offsets
    for layer in range(1, layers + 1):
        fan_in, fan_out = dims[layer - 1], dims[layer]
        weight, bias = offsets[2 * layer - 2], offsets[2 * layer - 1]
        source = "x" if layer == 1 else f"relu{layer - 1}.h"
        out.add("")
        out.add(f"// layer {layer} forward: z{layer} = floor(a @ W{layer}^T / 2^{k}) + b{layer}", 1)
        out.add(f"component forward{layer} = DenseForward({n}, {fan_in}, {fan_out}, {k}, {qb});", 1)
        out.loop2(n, fan_in, f"forward{layer}.a[n][i] <== {source}[n][i];")
        out.loop2(fan_out, fan_in, f"forward{layer}.w[n][i] <== w_before[{weight} + n * {fan_in} + i];")
        out.add(f"for (var j = 0; j < {fan_out}; j++) {{ forward{layer}.b[j] <== w_before[{bias} + j]; }}", 1)
        if layer < layers:
            out.add(f"component relu{layer} = ReluLayer({n}, {fan_out});", 1)
            out.loop2(n, fan_out, f"relu{layer}.z[n][i] <== forward{layer}.z[n][i]; relu{layer}.nonneg[n][i] <== forward{layer}.nonneg[n][i];")
    out.add("")
    out.add(f"// output error: delta{layers} = z{layers} - y", 1)
    out.add(f"signal delta{layers}[{n}][{dl}];", 1)
    out.loop2(n, dl, f"delta{layers}[n][i] <== forward{layers}.z[n][i] - y[n][i];")
    for layer in range(layers, 0, -1):
        fan_in, fan_out = dims[layer - 1], dims[layer]
        weight, bias = offsets[2 * layer - 2], offsets[2 * layer - 1]
        source = "x" if layer == 1 else f"relu{layer - 1}.h"
        out.add("")
        out.add(f"// layer {layer} gradients and update: W' = W - floor({spec.c_fix} * g / 2^{spec.param_scale})", 1)
        out.add(f"component grad{layer} = WeightGradient({n}, {fan_in}, {fan_out}, {k}, {qb});", 1)
        out.loop2(n, fan_out, f"grad{layer}.delta[n][i] <== delta{layer}[n][i];")
        out.loop2(n, fan_in, f"grad{layer}.a[n][i] <== {source}[n][i];")
        out.add(f"component update_w{layer}[{fan_out}][{fan_in}];", 1)
        out.loop2(
            fan_out,
            fan_in,
            f"update_w{layer}[n][i] = UpdateCheck({spec.c_fix}, {spec.param_scale}); "
            f"update_w{layer}[n][i].g <== grad{layer}.g[n][i]; "
            f"update_w{layer}[n][i].w <== w_before[{weight} + n * {fan_in} + i]; "
            f"update_w{layer}[n][i].w_new <== w_after[{weight} + n * {fan_in} + i];",
        )
        out.add(f"component update_b{layer}[{fan_out}];", 1)
        out.add(f"for (var j = 0; j < {fan_out}; j++) {{", 1)
        out.add("var sum = 0;", 2)
        out.add(f"for (var n = 0; n < {n}; n++) {{ sum += delta{layer}[n][j]; }}", 2)
        out.add(f"update_b{layer}[j] = UpdateCheck({spec.c_fix}, {spec.param_scale});", 2)
        out.add(f"update_b{layer}[j].g <== sum;", 2)
        out.add(f"update_b{layer}[j].w <== w_before[{bias} + j];", 2)
        out.add(f"update_b{layer}[j].w_new <== w_after[{bias} + j];", 2)
        out.add("}", 1)
        if layer > 1:
            below = fan_in
            out.add(f"// back-propagation: delta{layer - 1} = floor(delta{layer} @ W{layer} / 2^{k}) * [z{layer - 1} > 0]", 1)
            out.add(f"component back{layer} = BackPropagate({n}, {below}, {fan_out}, {k}, {qb});", 1)
            out.loop2(n, fan_out, f"back{layer}.delta[n][i] <== delta{layer}[n][i];")
            out.loop2(fan_out, below, f"back{layer}.w[n][i] <== w_before[{weight} + n * {below} + i];")
            out.loop2(n, below, f"back{layer}.pos[n][i] <== relu{layer - 1}.pos[n][i];")
            out.add(f"signal delta{layer - 1}[{n}][{below}];", 1)
            out.loop2(n, below, f"delta{layer - 1}[n][i] <== back{layer}.out[n][i];")
    out.add("}")
    return out.text()


class _Lines:
    def __init__(self) -> None:
        self._lines: list[str] = []

    def add(self, line: str, indent: int = 0) -> None:
        self._lines.append("    " * indent + line if line else "")

    def loop2(self, outer: int, inner: int, body: str) -> None:
        """``for n < outer: for i < inner: body`` at one indent level."""
        self.add(f"for (var n = 0; n < {outer}; n++) {{ for (var i = 0; i < {inner}; i++) {{ {body} }} }}", 1)

    def text(self) -> str:
        return "\n".join(self._lines)
