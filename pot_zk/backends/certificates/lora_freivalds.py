"""``freivalds`` certificates of LoRA steps: the products of the LoRA forward and backward pass
checked by random projection.

Per layer l (input H_l, N x in; frozen W_l, b_l; for adapted layers A_l, B_l, s = alpha/r)
the prover reveals, in float64:

    U_l = H_l A_l^T                       (adapted layers)
    Z_l = H_l W_l^T + b_l + s U_l B_l^T    pre-activations
    V_l = D_l B_l                         (adapted layers; D_l the output gradient)
    GA_l = V_l^T H_l,  GB_l = D_l^T U_l    unscaled adapter gradients (adapted layers)
    P_l = D_l W_l + s V_l A_l              back-propagated product (layers above the lowest
                                           adapted one)

The prover's values come from the step kind's one backward pass
(:meth:`pot_zk.kinds.lora.kind.LoraKind.backprop`). The verifier checks every product with
Gaussian vectors from the Fiat-Shamir seed of pot_zk.backends.certificates.freivalds, recomputes the element-wise parts (ReLU, its mask, D_L = Z_L - Y) and
accepts when the adapters after the step are within tolerance of
``w_before - step_constant * [GA_l, GB_l]``.
"""

from __future__ import annotations

import torch

from pot_zk.backends.certificates.products import Term, check_projection, offset
from pot_zk.backends.base import Statement
from pot_zk.kinds.mlp import unflatten

def _unpack(spec: Statement, tensors: dict[str, torch.Tensor]):
    architecture = spec.architecture
    dims = architecture.base.dims
    base = list(unflatten(tensors["base"], architecture.base_shapes).values())
    flat = list(unflatten(tensors["w_before"], architecture.adapter_shapes).values())
    adapters = {layer: (flat[2 * k], flat[2 * k + 1]) for k, layer in enumerate(architecture.adapted)}
    n = spec.batch_size
    x = tensors["batch"][: n * dims[0]].reshape(n, dims[0])
    y = tensors["batch"][n * dims[0] :].reshape(n, dims[-1])
    return base, adapters, x, y


def _layers(spec: Statement) -> range:
    return range(len(spec.architecture.base.dims) - 1)


def _inputs_of(spec: Statement, x: torch.Tensor, tensors: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    last = len(_layers(spec)) - 1
    return [x] + [torch.relu(tensors[f"z{l}"]) for l in _layers(spec) if l < last]


class LoraProducts:
    """The ``freivalds`` product checks of a LoRA step."""

    def expected_shapes(self, spec: Statement) -> dict[str, tuple[int, ...]]:
        dims, r, n = spec.architecture.base.dims, spec.architecture.rank, spec.batch_size
        lowest = spec.architecture.adapted[0]
        shapes = {f"z{l}": (n, dims[l + 1]) for l in _layers(spec)}
        shapes.update({f"p{l}": (n, dims[l]) for l in _layers(spec) if l > lowest})
        for l in spec.architecture.adapted:
            shapes.update({f"u{l}": (n, r), f"v{l}": (n, r), f"ga{l}": (r, dims[l]), f"gb{l}": (dims[l + 1], r)})
        return shapes

    def update_residual(self, spec: Statement, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        grads = [tensors[f"{g}{l}"].reshape(-1) for l in spec.architecture.adapted for g in ("ga", "gb")]
        architecture = spec.architecture
        step_constant = 2.0 * spec.learning_rate * architecture.scaling / (spec.batch_size * architecture.base.dims[-1])
        return tensors["w_after"] - (tensors["w_before"] - torch.cat(grads) * step_constant)

    def check_products(self, spec: Statement, tensors: dict[str, torch.Tensor], generator: torch.Generator, roundoff: float) -> None:
        base, adapters, x, y = _unpack(spec, tensors)
        s = spec.architecture.scaling
        dims = spec.architecture.base.dims
        inputs = _inputs_of(spec, x, tensors)
        last = len(_layers(spec)) - 1
        delta = tensors[f"z{last}"] - y
        lowest = spec.architecture.adapted[0]
        for l in reversed(_layers(spec)):
            r_out = torch.randn(dims[l + 1], generator=generator, dtype=torch.float64)
            r_in = torch.randn(dims[l], generator=generator, dtype=torch.float64)
            forward: list[Term] = [(1.0, inputs[l], base[2 * l].t())]
            if l in adapters:
                a, b = adapters[l]
                r_rank = torch.randn(spec.architecture.rank, generator=generator, dtype=torch.float64)
                forward.append((s, tensors[f"u{l}"], b.t()))
                check_projection(f"U{l}", tensors[f"u{l}"], [(1.0, inputs[l], a.t())], r_rank, roundoff)
            check_projection(f"Z{l}", tensors[f"z{l}"], [*forward, offset(base[2 * l + 1], spec.batch_size)], r_out, roundoff)
            if l < lowest:
                continue
            if l in adapters:
                check_projection(f"V{l}", tensors[f"v{l}"], [(1.0, delta, b)], r_rank, roundoff)
                check_projection(f"GA{l}", tensors[f"ga{l}"], [(1.0, tensors[f"v{l}"].t(), inputs[l])], r_in, roundoff)
                check_projection(f"GB{l}", tensors[f"gb{l}"], [(1.0, delta.t(), tensors[f"u{l}"])], r_rank, roundoff)
            if l > lowest:
                back: list[Term] = [(1.0, delta, base[2 * l])]
                if l in adapters:
                    back.append((s, tensors[f"v{l}"], adapters[l][0]))
                check_projection(f"P{l}", tensors[f"p{l}"], back, r_in, roundoff)
                delta = tensors[f"p{l}"] * (tensors[f"z{l - 1}"] > 0)


LORA_PRODUCTS = LoraProducts()
