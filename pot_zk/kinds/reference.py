"""The float64 reference of a full-MLP step (the ``sgd`` and ``momentum`` kinds): reading the
flat canonical encoding back into layers and the products of the one backward pass
(:func:`pot_zk.kinds.mlp.backprop`). Backends' float statements and the ``freivalds``
certificate read them from here; no backend is named.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from pot_zk.kinds.losses import gradient_scale, target_shape
from pot_zk.kinds.mlp import backprop


def unpack(architecture: Any, batch_size: int, w_before: torch.Tensor, batch: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The per-layer parameters, X and the targets (Y, or the labels) of ``(1, n)`` rows;
    ``architecture`` has ``dims``, ``loss`` and ``param_shapes``."""
    dims = architecture.dims
    params = []
    offset = 0
    for _, shape in architecture.param_shapes:
        count = math.prod(shape)
        params.append(w_before[:, offset : offset + count].reshape(shape))
        offset += count
    x = batch[:, : batch_size * dims[0]].reshape(batch_size, dims[0])
    y = batch[:, batch_size * dims[0] :].reshape(target_shape(architecture.loss, batch_size, dims[-1]))
    return params, x, y


def weight_gradients(architecture: Any, batch_size: int, w_before: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """The backward pass's unscaled weight gradients, in parameter order, as one ``(1, P)`` row."""
    params, x, y = unpack(architecture, batch_size, w_before, batch)
    trace = backprop(params, x, y, loss=architecture.loss)
    return torch.cat([g.reshape(1, -1) for layer in range(len(params) // 2) for g in trace.weight_grads[layer]], dim=1)


def mean_loss_gradient(architecture: Any, batch_size: int, named: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The gradient of the mean loss at ``w_before`` on ``batch`` (flat, float64, parameter order)."""
    mlp = getattr(architecture, "mlp", architecture)
    raw = weight_gradients(mlp, batch_size, named["w_before"].reshape(1, -1).to(torch.float64), named["batch"].reshape(1, -1).to(torch.float64))
    return raw.reshape(-1) * gradient_scale(mlp.loss, batch_size, mlp.dims[-1])


def sgd_after(architecture: Any, batch_size: int, learning_rate: float, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``w_after`` of a plain SGD step, functionally from the encoding (float64)."""
    w = named["w_before"].reshape(-1).to(torch.float64)
    return {"w_after": w - learning_rate * mean_loss_gradient(architecture, batch_size, named)}


def momentum_after(architecture: Any, batch_size: int, learning_rate: float, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``w_after`` and ``v_after`` of an SGD step with momentum mu and weight decay lambda
    (``architecture.momentum``, ``.weight_decay``): d = g + lambda W, V' = mu V + d, W' = W - lr V'."""
    w = named["w_before"].reshape(-1).to(torch.float64)
    d = mean_loss_gradient(architecture, batch_size, named) + architecture.weight_decay * w
    v = architecture.momentum * named["v_before"].reshape(-1).to(torch.float64) + d
    return {"w_after": w - learning_rate * v, "v_after": v}


def backprop_products(architecture: Any, batch_size: int, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What ``freivalds`` reveals of a full-MLP step: Z_l, the weight gradients G_l and the
    back-propagated products B_l (l > 0), float64."""
    params, x, y = unpack(architecture, batch_size, named["w_before"].reshape(1, -1), named["batch"].reshape(1, -1))
    trace = backprop(params, x, y, loss=architecture.loss)
    out = {f"z{l}": z for l, z in enumerate(trace.pre)}
    out.update({f"g{l}": grads[0] for l, grads in trace.weight_grads.items()})
    out.update({f"b{l}": back for l, back in trace.back.items()})
    return out
