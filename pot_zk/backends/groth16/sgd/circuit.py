"""The circom 2 source of the ``zk-groth16`` SGD circuit, generated from its spec.

The circuit proves, for private inputs W_t (``w_before``), X, Y and W_t+1 (``w_after``), that
W_t+1 is exactly :func:`pot_zk.backends.groth16.sgd.exact.exact_sgd_step` of W_t on (X, Y) (Y: the
targets for mse, the class labels ``k * 2**scale`` for cross_entropy, whose softmax templates
are in :mod:`pot_zk.backends.groth16.softmax_circom`), and
exposes the commitments of :mod:`pot_zk.backends.groth16.commit` as its public outputs, in
the order ``c_w_before``, ``c_batch``, ``c_w_after`` (a statement whose rate is public adds the
public input ``c_fix``, the step's update constant, after them). The templates and their soundness rules
are in :mod:`pot_zk.backends.groth16.circuit_writer`. The source depends on the spec alone:
the same spec always gives the same bytes.

The batch, the forward pass, the output delta and the backward pass are written by functions
other full-MLP statements (momentum, AdamW) call with their own update (:func:`gradients`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from pot_zk.backends.groth16.circuit_writer import CircuitWriter, source
from pot_zk.backends.groth16.commit import packing_width
from pot_zk.backends.groth16.softmax_circom import cross_entropy_delta, softmax_templates

if TYPE_CHECKING:
    from pot_zk.backends.groth16.sgd.spec import Groth16SgdSpec


@dataclass(frozen=True)
class LayerGradient:
    """Where the backward pass left layer ``layer``'s gradients, not rounded (loop variables n,
    m over the weight's ``rows`` x ``cols``, m over the bias): the weight's GW = delta^T @ a at
    2**-(2 scale), the bias's gb = sum delta at 2**-scale; and where the layer's parameters sit in
    a flat parameter signal."""

    layer: int
    rows: int
    cols: int
    weight_offset: int
    bias_offset: int

    @property
    def weight(self) -> str:
        return f"grad{self.layer}.acc[n][m]"

    @property
    def bias(self) -> str:
        return f"gb{self.layer}[m]"

    def weight_at(self, signal: str) -> str:
        """Entry (n, m) of the layer's weight in the flat parameter signal ``signal``."""
        return f"{signal}[{self.weight_offset} + n * {self.cols} + m]"

    def bias_at(self, signal: str) -> str:
        return f"{signal}[{self.bias_offset} + m]"


def sgd_circuit_source(spec: Groth16SgdSpec) -> str:
    return source(spec, _main(spec), "SgdStep", loss_templates(spec))


def loss_templates(spec: Groth16SgdSpec) -> str:
    """The templates the spec's loss needs beside the shared ones (the softmax's for cross_entropy)."""
    return softmax_templates(spec.dims[-1], spec.scale) if spec.loss == "cross_entropy" else ""


def _main(spec: Groth16SgdSpec) -> str:
    params, vb, scale = spec.num_params, spec.value_bits, spec.scale
    out = CircuitWriter("SgdStep")
    out.add(f"signal input w_before[{params}];")
    batch_inputs(out, spec)
    out.add(f"signal input w_after[{params}];")
    for name in ("c_w_before", "c_batch", "c_w_after"):
        out.add(f"signal output {name};")
    c_fix = out.rate_input(spec.c_fix) if spec.rate_public else spec.c_fix
    out.add()
    batch_signal(out, spec)
    width = packing_width(vb)
    out.committed_input("w_before", params, vb, width, "c_w_before")
    out.committed_input("batch", spec.num_batch_values, vb, width, "c_batch")
    out.committed_input("w_after", params, vb, width, "c_w_after")

    def update(out: CircuitWriter, gradient: LayerGradient) -> None:
        layer = gradient.layer
        out.updates(
            f"update_w{layer}", gradient.rows, gradient.cols, c_fix, spec.param_scale + scale,
            gradient=gradient.weight, before=gradient.weight_at("w_before"), after=gradient.weight_at("w_after"),
        )
        out.updates(
            f"update_b{layer}", 1, gradient.rows, c_fix, spec.param_scale,
            gradient=gradient.bias, before=gradient.bias_at("w_before"), after=gradient.bias_at("w_after"),
        )

    words = f"W' = W - floor({c_fix} GW / 2^{spec.param_scale + scale}), b' = b - floor({c_fix} gb / 2^{spec.param_scale})"
    gradients(out, spec, words, update)
    return out.text()


def batch_inputs(out: CircuitWriter, spec: Groth16SgdSpec) -> None:
    """The private inputs X (N x d_0) and Y (N x d_L targets, or N labels)."""
    n = spec.batch_size
    out.add(f"signal input x[{n}][{spec.dims[0]}];")
    out.add(f"signal input y[{n}];" if spec.loss == "cross_entropy" else f"signal input y[{n}][{spec.dims[-1]}];")


def batch_signal(out: CircuitWriter, spec: Groth16SgdSpec) -> None:
    """``batch``: X then Y, row-major (the committed batch)."""
    n, d0, dl = spec.batch_size, spec.dims[0], spec.dims[-1]
    out.add("// every input is range-checked and committed; the batch is X then Y, row-major")
    out.add(f"signal batch[{spec.num_batch_values}];")
    out.loop(n, d0, f"batch[n * {d0} + m] <== x[n][m];")
    if spec.loss == "cross_entropy":
        out.add(f"for (var n = 0; n < {n}; n++) {{ batch[{n * d0} + n] <== y[n]; }}")
    else:
        out.loop(n, dl, f"batch[{n * d0} + n * {dl} + m] <== y[n][m];")


def gradients(out: CircuitWriter, spec: Groth16SgdSpec, update_words: str, update: Callable[[CircuitWriter, LayerGradient], None]) -> None:
    """The forward pass from ``w_before`` and the batch, the output delta of the spec's loss
    and the backward pass (:func:`~pot_zk.backends.groth16.sgd.exact.unscaled_gradients`);
    ``update`` writes each layer's update from its gradients (``update_words`` says it in the
    layer's comment)."""
    dims, n, layers = spec.dims, spec.batch_size, spec.num_layers
    qb, scale, dl = spec.quotient_bits, spec.scale, dims[-1]
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
    if spec.loss == "cross_entropy":
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
        out.add(f"// layer {layer}: GW = delta^T @ a, gb = sum delta; {update_words}")
        out.products(f"grad{layer}", fan_out, n, fan_in, a=f"delta{layer}[k][n]", b=f"{below}[k][m]")
        out.add(f"signal gb{layer}[{fan_out}];")
        out.add(f"for (var m = 0; m < {fan_out}; m++) {{ var sum = 0; for (var n = 0; n < {n}; n++) {{ sum += delta{layer}[n][m]; }} gb{layer}[m] <== sum; }}")
        update(out, LayerGradient(layer, fan_out, fan_in, weight, bias))
        if layer > 1:
            out.add(f"// back-propagation: delta{layer - 1} = floor(delta{layer} @ W{layer} / 2^{scale}) * [z{layer - 1} > 0]")
            out.matmul(
                f"back{layer}", n, fan_out, fan_in,
                a=f"delta{layer}[n][k]", b=f"w_before[{weight} + k * {fan_in} + m]", add="0", scale=scale, bits=qb,
            )
            out.add(f"signal delta{layer - 1}[{n}][{fan_in}];")
            out.loop(n, fan_in, f"delta{layer - 1}[n][m] <== back{layer}.out[n][m] * relu{layer - 1}.pos[n][m];")
