"""The circom 2 source of the ``zk-groth16`` LoRA circuit, generated from its spec.

Private inputs: adapters before (``a_before``), X, Y, adapters after (``a_after``) and the
frozen base weights (``base``); public outputs, in order: ``c_w_before``, ``c_batch``,
``c_w_after``, ``c_base``. The circuit checks that ``a_after`` is exactly
:func:`pot_zk.backends.groth16.lora.exact.exact_lora_step`; templates and soundness rules are
in :mod:`pot_zk.backends.groth16.circuit_writer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pot_zk.backends.groth16.circuit_writer import CircuitWriter, source
from pot_zk.backends.groth16.commit import packing_width

if TYPE_CHECKING:
    from pot_zk.backends.groth16.lora.spec import Groth16LoraSpec


def lora_circuit_source(spec: Groth16LoraSpec) -> str:
    return source(spec, _main(spec), "LoraStep")


def _main(spec: Groth16LoraSpec) -> str:
    dims, n, rank, layers = spec.dims, spec.batch_size, spec.rank, spec.num_layers
    vb, qb, scale, shift = spec.value_bits, spec.quotient_bits, spec.scale, spec.param_scale
    adapters, base = spec.num_adapter_params, spec.num_base_params
    out = CircuitWriter("LoraStep")
    out.add(f"signal input a_before[{adapters}];")
    out.add(f"signal input x[{n}][{dims[0]}];")
    out.add(f"signal input y[{n}][{dims[-1]}];")
    out.add(f"signal input a_after[{adapters}];")
    out.add(f"signal input base[{base}];")
    for name in ("c_w_before", "c_batch", "c_w_after", "c_base"):
        out.add(f"signal output {name};")
    out.add()
    out.add("// every input is range-checked and committed; the batch is X then Y, row-major")
    out.add(f"signal batch[{spec.num_batch_values}];")
    out.loop(n, dims[0], f"batch[n * {dims[0]} + m] <== x[n][m];")
    out.loop(n, dims[-1], f"batch[{n * dims[0]} + n * {dims[-1]} + m] <== y[n][m];")
    width = packing_width(vb)
    out.committed_input("a_before", adapters, vb, width, "c_w_before")
    out.committed_input("batch", spec.num_batch_values, vb, width, "c_batch")
    out.committed_input("a_after", adapters, vb, width, "c_w_after")
    out.committed_input("base", base, vb, width, "c_base")
    base_at, adapter_at = spec.base_offsets, spec.adapter_offsets
    slot = {layer: i for i, layer in enumerate(spec.adapted)}

    def below(j: int) -> str:  # the input activations of layer j (1-based)
        return "x" if j == 1 else f"relu{j - 1}.h"

    for j in range(1, layers + 1):
        fan_in, fan_out = dims[j - 1], dims[j]
        weight, bias = base_at[2 * j - 2], base_at[2 * j - 1]
        add = f"base[{bias} + m]"
        out.add()
        if j - 1 in slot:
            a_at, b_at = adapter_at[2 * slot[j - 1]], adapter_at[2 * slot[j - 1] + 1]
            out.add(f"// layer {j} adapter: u = floor(a @ A^T / 2^{scale}), v = floor(u @ B^T / 2^{scale}), floor({spec.sigma} v / 2^{shift})")
            out.matmul(f"u{j}", n, fan_in, rank, a=f"{below(j)}[n][k]", b=f"a_before[{a_at} + m * {fan_in} + k]", add="0", scale=scale, bits=qb)
            out.matmul(f"v{j}", n, rank, fan_out, a=f"u{j}.out[n][k]", b=f"a_before[{b_at} + m * {rank} + k]", add="0", scale=scale, bits=qb)
            out.scaled(f"sv{j}", n, fan_out, spec.sigma, shift, qb, f"v{j}.out[n][m]")
            add += f" + sv{j}[n][m].z"
        out.add(f"// layer {j} forward: z = floor(a @ W0^T / 2^{scale}) + b0 (+ adapter term)")
        out.matmul(f"forward{j}", n, fan_in, fan_out, a=f"{below(j)}[n][k]", b=f"base[{weight} + m * {fan_in} + k]", add=add, scale=scale, bits=qb)
        if j < layers:
            out.relu(f"relu{j}", n, fan_out, f"forward{j}")
    out.add()
    out.add(f"signal delta{layers}[{n}][{dims[-1]}];")
    out.loop(n, dims[-1], f"delta{layers}[n][m] <== forward{layers}.out[n][m] - y[n][m];")
    lowest = spec.adapted[0] + 1
    for j in range(layers, lowest - 1, -1):
        fan_in, fan_out = dims[j - 1], dims[j]
        weight = base_at[2 * j - 2]
        out.add()
        if j - 1 in slot:
            a_at, b_at = adapter_at[2 * slot[j - 1]], adapter_at[2 * slot[j - 1] + 1]
            out.add(
                f"// layer {j} adapter gradients: p = floor(delta @ B / 2^{scale}), GA = p^T @ a, GB = delta^T @ u; "
                f"A' = A - floor({spec.c_fix} GA / 2^{shift + scale}), B' likewise"
            )
            out.matmul(f"proj{j}", n, fan_out, rank, a=f"delta{j}[n][k]", b=f"a_before[{b_at} + k * {rank} + m]", add="0", scale=scale, bits=qb)
            out.products(f"grad_a{j}", rank, n, fan_in, a=f"proj{j}.out[k][n]", b=f"{below(j)}[k][m]")
            out.products(f"grad_b{j}", fan_out, n, rank, a=f"delta{j}[k][n]", b=f"u{j}.out[k][m]")
            out.updates(
                f"update_a{j}", rank, fan_in, spec.c_fix, shift + scale,
                gradient=f"grad_a{j}.acc[n][m]", before=f"a_before[{a_at} + n * {fan_in} + m]", after=f"a_after[{a_at} + n * {fan_in} + m]",
            )
            out.updates(
                f"update_b{j}", fan_out, rank, spec.c_fix, shift + scale,
                gradient=f"grad_b{j}.acc[n][m]", before=f"a_before[{b_at} + n * {rank} + m]", after=f"a_after[{b_at} + n * {rank} + m]",
            )
        if j > lowest:
            add = "0"
            if j - 1 in slot:
                a_at = adapter_at[2 * slot[j - 1]]
                out.matmul(f"pa{j}", n, rank, fan_in, a=f"proj{j}.out[n][k]", b=f"a_before[{a_at} + k * {fan_in} + m]", add="0", scale=scale, bits=qb)
                out.scaled(f"spa{j}", n, fan_in, spec.sigma, shift, qb, f"pa{j}.out[n][m]")
                add = f"spa{j}[n][m].z"
            out.add(f"// back-propagation: delta{j - 1} = (floor(delta{j} @ W0 / 2^{scale}) + adapter term) * [z{j - 1} > 0]")
            out.matmul(f"back{j}", n, fan_out, fan_in, a=f"delta{j}[n][k]", b=f"base[{weight} + k * {fan_in} + m]", add=add, scale=scale, bits=qb)
            out.add(f"signal delta{j - 1}[{n}][{fan_in}];")
            out.loop(n, fan_in, f"delta{j - 1}[n][m] <== back{j}.out[n][m] * relu{j - 1}.pos[n][m];")
    return out.text()
