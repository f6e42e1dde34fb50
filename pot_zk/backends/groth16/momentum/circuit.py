"""The circom 2 source of the ``zk-groth16`` momentum circuit, generated from its spec.

Private inputs W_t (``w_before``), X, Y, W_t+1 (``w_after``), V_t (``v_before``) and V_t+1
(``v_after``); public outputs their commitments ``c_w_before``, ``c_batch``, ``c_w_after``,
``c_v_before``, ``c_v_after`` (:mod:`pot_zk.backends.groth16.commit`, every value range-checked
to ``value_bits``). The forward pass, output delta and backward pass are the SGD circuit's
(:func:`pot_zk.backends.groth16.sgd.circuit.gradients`); per parameter, with its gradient G:

* ``VelocityCheck``: mu_fix S V + g_fix G + wd_fix S W == V' 2**(p + s) + r with
  0 <= r < 2**(p + s) (G at S**2: the weights' GW, the biases' gb times S; the factors of two
  the three constants share cancelled against the shift); V' is range-checked where it is
  committed, so the quotient is bounded as well as the remainder (the accumulator stays below
  2**200, far from the field modulus: V' is the floor, uniquely);
* ``UpdateCheck`` (shared): lr_fix V' == (W - W') 2**p + r with 0 <= r < 2**p, its quotient
  bounded by the range checks of W and W'.

The source depends on the spec alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pot_zk.backends.groth16.circuit_writer import CircuitWriter, source
from pot_zk.backends.groth16.commit import packing_width
from pot_zk.backends.groth16.sgd.circuit import LayerGradient, batch_inputs, batch_signal, gradients, loss_templates

if TYPE_CHECKING:
    from pot_zk.backends.groth16.momentum.spec import Groth16MomentumSpec

VELOCITY_TEMPLATE = r"""
// v_new = floor((mu * v + c * g + d * w) / 2^p): mu v + c g + d w == v_new 2^p + r, 0 <= r < 2^p.
// v_new is range-checked where it is committed (the quotient bound). The hint shifts the
// accumulator by 2^200, a multiple of 2^p above its magnitude.
template VelocityCheck(mu, c, d, p) {
    signal input v;
    signal input g;
    signal input w;
    signal input v_new;
    signal r;
    var offset = 2 ** 200;
    r <-- (mu * v + c * g + d * w + offset) % (2 ** p);
    component remainder = Num2Bits(p);
    remainder.in <== r;
    mu * v + c * g + d * w === v_new * (2 ** p) + r;
}
"""

STATE = ("w_before", "w_after", "v_before", "v_after")


def velocity_constants(mu: int, c: int, d: int, shift: int) -> tuple[int, int, int, int]:
    """``floor((mu v + c g + d w) / 2**shift)`` with the factors of two the constants share
    cancelled (at most ``shift`` of them): the same integer, fewer remainder bits to check."""
    twos = min([shift] + [(k & -k).bit_length() - 1 for k in (mu, c, d) if k])
    return mu >> twos, c >> twos, d >> twos, shift - twos


def momentum_circuit_source(spec: Groth16MomentumSpec) -> str:
    return source(spec, _main(spec), "MomentumStep", VELOCITY_TEMPLATE + loss_templates(spec))


def _main(spec: Groth16MomentumSpec) -> str:
    params, vb, p = spec.num_params, spec.value_bits, spec.param_scale
    out = CircuitWriter("MomentumStep")
    out.add(f"signal input w_before[{params}];")
    batch_inputs(out, spec)
    for name in STATE[1:]:
        out.add(f"signal input {name}[{params}];")
    for name in spec.public_names:
        out.add(f"signal output c_{name};")
    out.add()
    batch_signal(out, spec)
    width = packing_width(vb)
    for name in spec.public_names:
        out.committed_input(name, spec.num_batch_values if name == "batch" else params, vb, width, f"c_{name}")

    unit = 2**spec.scale
    mu, c, d, shift = velocity_constants(spec.mu_fix * unit, spec.c_fix, spec.wd_fix * unit, p + spec.scale)

    def update(out: CircuitWriter, gradient: LayerGradient) -> None:
        weight = (gradient.rows, gradient.cols, gradient.weight, gradient.weight_at)
        bias = (1, gradient.rows, f"{gradient.bias} * {unit}", gradient.bias_at)
        for part, (rows, cols, g, at) in (("w", weight), ("b", bias)):
            name = f"{part}{gradient.layer}"
            out.add(f"component velocity_{name}[{rows}][{cols}];")
            out.loop(
                rows, cols,
                f"velocity_{name}[n][m] = VelocityCheck({mu}, {c}, {d}, {shift}); velocity_{name}[n][m].v <== {at('v_before')}; "
                f"velocity_{name}[n][m].g <== {g}; velocity_{name}[n][m].w <== {at('w_before')}; velocity_{name}[n][m].v_new <== {at('v_after')};",
            )
            out.updates(f"update_{name}", rows, cols, spec.lr_fix, p, gradient=at("v_after"), before=at("w_before"), after=at("w_after"))

    words = f"V' = floor(({mu} V + {c} G + {d} W) / 2^{shift}) (G: GW, gb * {unit}), W' = W - floor({spec.lr_fix} V' / 2^{p})"
    gradients(out, spec, words, update)
    return out.text()
