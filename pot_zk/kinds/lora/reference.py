"""The float64 reference of a LoRA step: the forward and backward pass on the flat canonical
encoding (adapters, batch, frozen base), and the products ``freivalds`` reveals."""

from __future__ import annotations

import math
from typing import Mapping

import torch

from pot_zk.kinds.losses import gradient_scale, target_shape
from pot_zk.kinds.lora.step import LoraArchitecture
from pot_zk.kinds.mlp import Backprop, Shapes, backprop


def _split(flat: torch.Tensor, shapes: Shapes) -> list[torch.Tensor]:
    parts, offset = [], 0
    for _, shape in shapes:
        count = math.prod(shape)
        parts.append(flat[:, offset : offset + count].reshape(shape))
        offset += count
    return parts


def lora_backprop(architecture: LoraArchitecture, batch_size: int, w_before: torch.Tensor, batch: torch.Tensor, base: torch.Tensor) -> Backprop:
    """The forward and backward pass of a step on ``(1, n)`` rows (see :func:`pot_zk.kinds.mlp.backprop`)."""
    dims = architecture.base.dims
    n = batch_size
    x = batch[:, : n * dims[0]].reshape(n, dims[0])
    y = batch[:, n * dims[0] :].reshape(target_shape(architecture.base.loss, n, dims[-1]))
    params = _split(base, architecture.base_shapes)
    flat = _split(w_before, architecture.adapter_shapes)
    adapters = {layer: (flat[2 * k], flat[2 * k + 1]) for k, layer in enumerate(architecture.adapted)}
    return backprop(params, x, y, adapters=adapters, scaling=architecture.scaling, train_base=False, loss=architecture.base.loss)


def adapter_gradients(architecture: LoraArchitecture, batch_size: int, w_before: torch.Tensor, batch: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """The unscaled adapter gradients (delta B)^T h and delta^T (h A^T), per adapted layer A then
    B, as one ``(1, adapter params)`` row."""
    trace = lora_backprop(architecture, batch_size, w_before, batch, base)
    grads = [g for layer in architecture.adapted for g in trace.adapter_grads[layer]]
    return torch.cat([g.reshape(1, -1) for g in grads], dim=1)


def lora_products(architecture: LoraArchitecture, batch_size: int, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """U_l, Z_l, V_l, the adapter gradients GA_l, GB_l and the back-propagated P_l."""
    trace = lora_backprop(architecture, batch_size, *(named[name].reshape(1, -1) for name in ("w_before", "batch", "base")))
    out = {f"z{l}": z for l, z in enumerate(trace.pre)}
    out.update({f"u{l}": u for l, u in trace.lowrank.items()})
    out.update({f"v{l}": v for l, v in trace.projected.items()})
    out.update({f"ga{l}": grads[0] for l, grads in trace.adapter_grads.items()})
    out.update({f"gb{l}": grads[1] for l, grads in trace.adapter_grads.items()})
    out.update({f"p{l}": back for l, back in trace.back.items()})
    return out


def lora_after(architecture: LoraArchitecture, batch_size: int, learning_rate: float, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``w_after`` (the adapters) of a plain SGD step, functionally from the encoding (float64):
    lr times the gradient of the mean loss, whose adapter products carry the LoRA scaling."""
    w = named["w_before"].reshape(1, -1).to(torch.float64)
    rows = (named[name].reshape(1, -1).to(torch.float64) for name in ("batch", "base"))
    raw = adapter_gradients(architecture, batch_size, w, *rows).reshape(-1)
    factor = learning_rate * architecture.scaling * gradient_scale(architecture.base.loss, batch_size, architecture.base.dims[-1])
    return {"w_after": w.reshape(-1) - factor * raw}
