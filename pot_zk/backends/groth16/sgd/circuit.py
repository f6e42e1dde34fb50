"""The circom 2 source of the ``zk-groth16`` SGD circuit, generated from its spec.

The circuit proves, for private inputs W_t (``w_before``), X, Y and W_t+1 (``w_after``), that
W_t+1 is exactly :func:`pot_zk.backends.groth16.sgd.exact.exact_sgd_step` of W_t on (X, Y) (Y: the
targets for mse, the class labels ``k * 2**scale`` for cross_entropy, whose softmax templates
are in :mod:`pot_zk.backends.groth16.softmax_circom`), and
exposes the commitments of :mod:`pot_zk.backends.groth16.commit` as its public outputs, in
the order ``c_w_before``, ``c_batch``, ``c_w_after``. The templates and their soundness rules
are in :mod:`pot_zk.backends.groth16.circuit_writer`. The source depends on the spec alone:
the same spec always gives the same bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pot_zk.backends.groth16.circuit_writer import CircuitWriter, source
from pot_zk.backends.groth16.commit import packing_width
from pot_zk.backends.groth16.softmax_circom import cross_entropy_delta, softmax_templates

if TYPE_CHECKING:
    from pot_zk.backends.groth16.sgd.spec import Groth16SgdSpec


def sgd_circuit_source(spec: Groth16SgdSpec) -> str:
    templates = softmax_templates(spec.dims[-1], spec.scale) if spec.loss == "cross_entropy" else ""
    return source(spec, _main(spec), "SgdStep", templates)


def _main(spec: Groth16SgdSpec) -> str:
    dims, n, layers = spec.dims, spec.batch_size, spec.num_layers
    vb, qb, scale = spec.value_bits, spec.quotient_bits, spec.scale
    d0, dl, params = dims[0], dims[-1], spec.num_params
    out = CircuitWriter("SgdStep")
    out.add(f"signal input w_before[{params}];")
    out.add(f"signal input x[{n}][{d0}];")
    labels = spec.loss == "cross_entropy"
    out.add(f"signal input y[{n}];" if labels else f"signal input y[{n}][{dl}];")
    out.add(f"signal input w_after[{params}];")
    for name in ("c_w_before", "c_batch", "c_w_after"):
        out.add(f"signal output {name};")
    out.add()
    out.add("// every input is range-checked and committed; the batch is X then Y, row-major")
    out.add(f"signal batch[{spec.num_batch_values}];")
    out.loop(n, d0, f"batch[n * {d0} + m] <== x[n][m];")
    if labels:
        out.add(f"for (var n = 0; n < {n}; n++) {{ batch[{n * d0} + n] <== y[n]; }}")
    else:
        out.loop(n, dl, f"batch[{n * d0} + n * {dl} + m] <== y[n][m];")
    width = packing_width(vb)
    out.committed_input("w_before", params, vb, width, "c_w_before")
    out.committed_input("batch", spec.num_batch_values, vb, width, "c_batch")
    out.committed_input("w_after", params, vb, width, "c_w_after")
    offsets = spec.param_offsets
    for layer in range(1, layers + 1):
        fan_in, fan_out = dims[layer - 1], dims[layer]
        weight, bias = offsets[2 * layer - 2], offsets[2 * layer - 1]
        below = "x" if layer == 1 else f"relu{layer - 1}.h"
        out.add()
        out.add(f"// layer {layer} forward: z{layer} = floor(a @ W{layer}^T / 2^{scale}) + b{layer}")
        out.matmul(
            f"forward{layer}", n, fan_in, fan_out,
            a=f"{below}[n][k]", b=f"w_before[{weight} + m * {fan_in} + k]", add=f"w_before[{bias} + m]", scale=scale, bits=qb,
        )
        if layer < layers:
            out.relu(f"relu{layer}", n, fan_out, f"forward{layer}")
    out.add()
    if labels:
        out.add(f"// output error: delta{layers} = softmax(z{layers}) - 2^{scale} onehot(y), every line of exact_softmax checked")
        cross_entropy_delta(out, n, dl, scale, qb, f"forward{layers}.out[n][m]", "y[n]", f"delta{layers}")
    else:
        out.add(f"// output error: delta{layers} = z{layers} - y")
        out.add(f"signal delta{layers}[{n}][{dl}];")
        out.loop(n, dl, f"delta{layers}[n][m] <== forward{layers}.out[n][m] - y[n][m];")
    for layer in range(layers, 0, -1):
        fan_in, fan_out = dims[layer - 1], dims[layer]
        weight, bias = offsets[2 * layer - 2], offsets[2 * layer - 1]
        below = "x" if layer == 1 else f"relu{layer - 1}.h"
        out.add()
        out.add(
            f"// layer {layer}: GW = delta^T @ a, gb = sum delta; "
            f"W' = W - floor({spec.c_fix} GW / 2^{spec.param_scale + scale}), b' = b - floor({spec.c_fix} gb / 2^{spec.param_scale})"
        )
        out.products(f"grad{layer}", fan_out, n, fan_in, a=f"delta{layer}[k][n]", b=f"{below}[k][m]")
        out.add(f"signal gb{layer}[{fan_out}];")
        out.add(f"for (var m = 0; m < {fan_out}; m++) {{ var sum = 0; for (var n = 0; n < {n}; n++) {{ sum += delta{layer}[n][m]; }} gb{layer}[m] <== sum; }}")
        out.updates(
            f"update_w{layer}", fan_out, fan_in, spec.c_fix, spec.param_scale + scale,
            gradient=f"grad{layer}.acc[n][m]", before=f"w_before[{weight} + n * {fan_in} + m]", after=f"w_after[{weight} + n * {fan_in} + m]",
        )
        out.updates(
            f"update_b{layer}", 1, fan_out, spec.c_fix, spec.param_scale,
            gradient=f"gb{layer}[m]", before=f"w_before[{bias} + m]", after=f"w_after[{bias} + m]",
        )
        if layer > 1:
            out.add(f"// back-propagation: delta{layer - 1} = floor(delta{layer} @ W{layer} / 2^{scale}) * [z{layer - 1} > 0]")
            out.matmul(
                f"back{layer}", n, fan_out, fan_in,
                a=f"delta{layer}[n][k]", b=f"w_before[{weight} + k * {fan_in} + m]", add="0", scale=scale, bits=qb,
            )
            out.add(f"signal delta{layer - 1}[{n}][{fan_in}];")
            out.loop(n, fan_in, f"delta{layer - 1}[n][m] <== back{layer}.out[n][m] * relu{layer - 1}.pos[n][m];")
    return out.text()
