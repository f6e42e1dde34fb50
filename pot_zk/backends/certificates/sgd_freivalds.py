"""``freivalds`` certificates of SGD steps, with or without momentum: the products of the MLP's
forward and backward pass checked by random projection.

Per layer l (input A_{l-1}, weights W_l, b_l) the prover reveals, in float64, the
pre-activations Z_l, the weight gradients G_l = delta_l^T A_{l-1} and, for l > 0, the
back-propagated products B_l = delta_l W_l. With Gaussian vectors r the verifier checks
(Z_l - b_l) r = A_{l-1} (W_l^T r),  G_l r = delta_l^T (A_{l-1} r),  B_l r = delta_l (W_l r),
recomputes the element-wise parts (ReLU, its mask, the output delta of the loss -- Z_L - Y
for mse, softmax(Z_L) - one_hot(labels) for cross_entropy, in float64 -- and the bias
gradients) and takes the update from the checked G_l (with momentum: the velocity's update
from them, and the weights' from the revealed V_t+1).
"""

from __future__ import annotations

import torch

from pot_zk.backends.base import Statement
from pot_zk.backends.certificates.products import check_projection, offset
from pot_zk.kinds.losses import gradient_scale, output_delta
from pot_zk.kinds.reference import unpack


def _gradient_constant(spec: Statement) -> float:
    """The factor that makes the backward pass the gradient of the mean loss."""
    architecture = spec.architecture
    return gradient_scale(architecture.loss, spec.batch_size, architecture.dims[-1])


def _layers(spec: Statement) -> int:
    return len(spec.architecture.dims) - 1


def _activations(spec: Statement, zs: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    layers = _layers(spec)
    return [x] + [torch.relu(z) if l < layers - 1 else z for l, z in enumerate(zs)]


class SgdProducts:
    """The ``freivalds`` product checks of an SGD step."""

    def expected_shapes(self, spec: Statement) -> dict[str, tuple[int, ...]]:
        dims, n, layers = spec.architecture.dims, spec.batch_size, _layers(spec)
        shapes = {f"z{l}": (n, dims[l + 1]) for l in range(layers)}
        shapes.update({f"g{l}": (dims[l + 1], dims[l]) for l in range(layers)})
        shapes.update({f"b{l}": (n, dims[l]) for l in range(1, layers)})
        return shapes

    def check_products(self, spec: Statement, tensors: dict[str, torch.Tensor], generator: torch.Generator, roundoff: float) -> None:
        dims = spec.architecture.dims
        params, x, y = unpack(spec.architecture, spec.batch_size, tensors["w_before"].reshape(1, -1), tensors["batch"].reshape(1, -1))
        zs = [tensors[f"z{l}"] for l in range(_layers(spec))]
        acts = _activations(spec, zs, x)
        delta = output_delta(spec.architecture.loss, zs[-1], y)
        for l in reversed(range(_layers(spec))):
            weight, bias = params[2 * l], params[2 * l + 1]
            r_out = torch.randn(dims[l + 1], generator=generator, dtype=torch.float64)
            r_in = torch.randn(dims[l], generator=generator, dtype=torch.float64)
            check_projection(f"Z{l}", zs[l], [(1.0, acts[l], weight.t()), offset(bias, spec.batch_size)], r_out, roundoff)
            check_projection(f"G{l}", tensors[f"g{l}"], [(1.0, delta.t(), acts[l])], r_in, roundoff)
            if l > 0:
                check_projection(f"B{l}", tensors[f"b{l}"], [(1.0, delta, weight)], r_in, roundoff)
                delta = tensors[f"b{l}"] * (zs[l - 1] > 0)

    def gradients(self, spec: Statement, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The unscaled weight gradients in parameter order, from the (checked) products and
        the recomputed element-wise parts."""
        _, _, y = unpack(spec.architecture, spec.batch_size, tensors["w_before"].reshape(1, -1), tensors["batch"].reshape(1, -1))
        layers = _layers(spec)
        zs = [tensors[f"z{l}"] for l in range(layers)]
        delta = output_delta(spec.architecture.loss, zs[-1], y)
        grads: list[torch.Tensor] = [delta] * (2 * layers)
        for l in reversed(range(layers)):
            grads[2 * l] = tensors[f"g{l}"]
            grads[2 * l + 1] = delta.sum(0)
            if l > 0:
                delta = tensors[f"b{l}"] * (zs[l - 1] > 0)
        return torch.cat([g.reshape(-1) for g in grads])

    def update_residual(self, spec: Statement, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        update = self.gradients(spec, tensors) * (spec.learning_rate * _gradient_constant(spec))
        return tensors["w_after"] - (tensors["w_before"] - update)


class MomentumProducts(SgdProducts):
    """A momentum step reveals and checks the products of an SGD step; its update residual is
    that of the weights and of the velocity (float64, exact constants)."""

    def update_residual(self, spec: Statement, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        architecture = spec.architecture
        gradient = self.gradients(spec, tensors) * _gradient_constant(spec) + architecture.weight_decay * tensors["w_before"]
        residual_v = tensors["v_after"] - (architecture.momentum * tensors["v_before"] + gradient)
        residual_w = tensors["w_after"] - (tensors["w_before"] - spec.learning_rate * tensors["v_after"])
        return torch.cat([residual_w, residual_v])


SGD_PRODUCTS = SgdProducts()
MOMENTUM_PRODUCTS = MomentumProducts()
