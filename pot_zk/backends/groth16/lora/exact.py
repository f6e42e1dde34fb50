"""The exact fixed-point LoRA step: SGD on the adapters of a frozen ReLU MLP.

For a :class:`~pot_zk.backends.groth16.lora.spec.Groth16LoraSpec`, ``S = 2**scale``,
``P = 2**param_scale`` and every ``//`` a floor division (docs/groth16.md):

    forward, layer l    u_l = (h @ A_l^T) // S,  v_l = (u_l @ B_l^T) // S   (adapted layers)
                        z_l = (h @ W0_l^T) // S + b0_l + (sigma * v_l) // P  (term 0 if not adapted)
                        h = relu(z_l) below the last layer
    loss                delta = z_L - Y
    backward, layer l   p_l = (delta @ B_l) // S
    (adapted)           GA_l = p_l^T @ h_l,  GB_l = delta^T @ u_l         (at S**2, not rescaled)
    back-propagation    delta' = ((delta @ W0_l) // S + (sigma * ((p_l @ A_l) // S)) // P) * [z_{l-1} > 0]
    (above the lowest   (the second term only for adapted layers)
     adapted layer)
    update              A' = A - (c_fix * GA) // (P * S),  B' = B - (c_fix * GB) // (P * S)

Bounds: base, adapters, X, Y and the adapters after the step in the signed ``value_bits``
range; every rescaled value above (u, v, the scaled adapter terms, z, p, p @ A, the
back-propagated sum) in the signed ``quotient_bits`` range, exactly as the circuit checks.
The gradients are rounded once, in the update (c_fix * G as Python integers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pot_zk.backends.groth16.integers import check_range, floor_checked
from pot_zk.exceptions import WitnessBuilderError

if TYPE_CHECKING:
    from pot_zk.backends.groth16.lora.spec import Groth16LoraSpec


def exact_lora_step(spec: Groth16LoraSpec, base: np.ndarray, adapters: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Adapters after the step (flat, canonical order, int64)."""
    base, adapters, x, y = check_lora_inputs(spec, base, adapters, x, y)
    base_parts = _split(base, spec.base_shapes, spec.base_offsets)
    adapter_parts = _split(adapters, spec.adapter_shapes, spec.adapter_offsets)
    pairs = {layer: (adapter_parts[2 * i], adapter_parts[2 * i + 1]) for i, layer in enumerate(spec.adapted)}
    inputs, pre, lowrank = [], [], {}
    h = x
    for layer in range(spec.num_layers):
        name = f"layer {layer + 1}"
        inputs.append(h)
        weight, bias = base_parts[2 * layer], base_parts[2 * layer + 1]
        extra = 0
        if layer in pairs:
            a, b = pairs[layer]
            lowrank[layer] = _rescale(h @ a.T, spec, f"{name} adapter projection u")
            v = _rescale(lowrank[layer] @ b.T, spec, f"{name} adapter output v")
            extra = _scaled(spec.sigma * v, spec, f"{name} scaled adapter output")
        z = (h @ weight.T) // 2**spec.scale + bias + extra
        check_range(z.reshape(-1), spec.quotient_bits, f"{name} pre-activation z")
        pre.append(z)
        h = np.maximum(z, 0) if layer < spec.num_layers - 1 else z
    delta = h - y
    gradients: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    lowest = spec.adapted[0]
    for layer in range(spec.num_layers - 1, lowest - 1, -1):
        name = f"layer {layer + 1}"
        projected = None
        if layer in pairs:
            a, b = pairs[layer]
            projected = _rescale(delta @ b, spec, f"{name} projected delta")
            gradients[layer] = (projected.T @ inputs[layer], delta.T @ lowrank[layer])
        if layer > lowest:
            extra = 0
            if projected is not None:
                through = _rescale(projected @ pairs[layer][0], spec, f"{name} adapter back-propagation")
                extra = _scaled(spec.sigma * through, spec, f"{name} scaled adapter back-propagation")
            back = (delta @ base_parts[2 * layer]) // 2**spec.scale + extra
            check_range(back.reshape(-1), spec.quotient_bits, f"layer {layer} back-propagated delta")
            delta = back * (pre[layer - 1] > 0)
    flat_gradients = np.concatenate([g.reshape(-1) for layer in spec.adapted for g in gradients[layer]]).astype(object)
    after = adapters.astype(object) - (spec.c_fix * flat_gradients) // 2 ** (spec.param_scale + spec.scale)
    check_range(after, spec.value_bits, "adapters after the update")
    return after.astype(np.int64)


def check_lora_inputs(
    spec: Groth16LoraSpec, base: np.ndarray, adapters: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shapes and ranges of a LoRA step's integer inputs; returns them as int64 arrays."""
    n = spec.batch_size
    expected = {
        "base weights": (base, (spec.num_base_params,)),
        "adapters": (adapters, (spec.num_adapter_params,)),
        "X": (x, (n, spec.dims[0])),
        "Y": (y, (n, spec.dims[-1])),
    }
    checked = []
    for what, (values, shape) in expected.items():
        array = np.asarray(values)
        if array.shape != shape or array.dtype.kind not in "iu":
            raise WitnessBuilderError(
                f"{what} must be integers of shape {list(shape)}, not {array.dtype} {list(array.shape)}",
                expected=list(shape), actual=list(array.shape), tensor=what,
            )
        array = array.astype(np.int64)
        check_range(array.reshape(-1), spec.value_bits, what)
        checked.append(array)
    return checked[0], checked[1], checked[2], checked[3]


def _split(flat: np.ndarray, shapes: list[tuple[int, ...]], offsets: list[int]) -> list[np.ndarray]:
    return [flat[offset : offset + int(np.prod(shape))].reshape(shape) for offset, shape in zip(offsets, shapes)]


def _rescale(acc: np.ndarray, spec: Groth16LoraSpec, what: str) -> np.ndarray:
    return floor_checked(acc, spec.scale, spec.quotient_bits, what)


def _scaled(acc: np.ndarray, spec: Groth16LoraSpec, what: str) -> np.ndarray:
    return floor_checked(acc, spec.param_scale, spec.quotient_bits, what)
