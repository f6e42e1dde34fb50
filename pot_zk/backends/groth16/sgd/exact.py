"""The exact fixed-point SGD step: one integer arithmetic for training, proving and reexec.

For a :class:`~pot_zk.backends.groth16.sgd.spec.Groth16SgdSpec` with ``S = 2**scale`` and every
``//`` a floor division (docs/groth16.md):

    forward   z_l = (h_{l-1} @ W_l^T) // S + b_l,     h_0 = X,  h_l = relu(z_l) (hidden l)
    loss      delta_L = z_L - Y                                       (mse)
              delta_L = softmax_S(z_L) - S * onehot(labels)           (cross_entropy)
    backward  GW_l = delta_l^T @ h_{l-1},  gb_l = sum_n delta_l          (at S**2 and S)
              delta_{l-1} = ((delta_l @ W_l) // S) * [z_{l-1} > 0]
    update    W' = W - (c_fix * GW) // (2**param_scale * S),  b' = b - (c_fix * gb) // 2**param_scale

where softmax_S is the integer softmax of :mod:`pot_zk.kinds.exact_softmax` (at 2**-scale, the
one the circuit checks line by line) and the labels are the batch targets ``k * S`` (class k
at the statement's scale, as every backend commits them).

The weight gradient is rounded once, in the update (one floor, not a floor to the grid and
another after the learning rate). Bounds (exactly what the circuit range-checks): W, X, Y and W'
in the signed range of ``value_bits`` bits; every z and (delta @ W) // S in the signed range of
``quotient_bits`` bits. A value out of bound raises :class:`WitnessBuilderError` naming the
tensor and layer, before anything expensive runs. The products c_fix * GW are Python integers
(they may pass 2**63; the spec bounds them far below the field modulus).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from pot_zk.backends.groth16.integers import check_range, floor_checked
from pot_zk.exceptions import WitnessBuilderError
from pot_zk.kinds.exact_softmax import cross_entropy_delta

if TYPE_CHECKING:
    from pot_zk.backends.groth16.sgd.spec import Groth16SgdSpec


def exact_sgd_step(spec: Groth16SgdSpec, w_int: np.ndarray, x_int: np.ndarray, y_int: np.ndarray) -> np.ndarray:
    """W_t+1 (flat, canonical order, int64) from W_t (flat), X (N x d_0) and Y (N x d_L for
    mse; N labels ``k * 2**scale`` for cross_entropy)."""
    w, x, y = check_inputs(spec, w_int, x_int, y_int)
    params = split_params(spec, w)
    steps = [
        (spec.c_fix * gradient.astype(object).reshape(-1)) // 2 ** (spec.param_scale + (spec.scale if index % 2 == 0 else 0))
        for index, gradient in enumerate(_gradients(spec, params, x, y))
    ]
    w_after = w.astype(object) - np.concatenate(steps)
    for start, stop, label in _param_slices(spec):
        check_range(w_after[start:stop], spec.value_bits, f"{label} after the update")
    return w_after.astype(np.int64)


def check_inputs(spec: Groth16SgdSpec, w_int: np.ndarray, x_int: np.ndarray, y_int: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shapes and ranges of a step's integer inputs; returns them as int64 arrays."""
    n, d_in, d_out = spec.batch_size, spec.dims[0], spec.dims[-1]
    y_shape = (n,) if spec.loss == "cross_entropy" else (n, d_out)
    checked = []
    for what, values, shape in (("weights", w_int, (spec.num_params,)), ("X", x_int, (n, d_in)), ("Y", y_int, y_shape)):
        array = np.asarray(values)
        if array.shape != shape:
            raise WitnessBuilderError(f"{what} has shape {list(array.shape)}, expected {list(shape)}", expected=list(shape), actual=list(array.shape), tensor=what)
        if array.dtype.kind not in "iu":
            raise WitnessBuilderError(f"{what} must be integers, not {array.dtype}", expected="integer dtype", actual=str(array.dtype), tensor=what)
        array = array.astype(np.int64)
        check_range(array.reshape(-1), spec.value_bits, what)
        checked.append(array)
    if spec.loss == "cross_entropy":
        class_labels(spec, checked[2])
    return checked[0], checked[1], checked[2]


def class_labels(spec: Groth16SgdSpec, y: np.ndarray) -> np.ndarray:
    """The class of each committed label ``k * 2**scale`` (WitnessBuilderError unless every
    label is one of 0, S, ..., (d_out - 1) S)."""
    unit = 2**spec.scale
    classes = y // unit
    bad = np.flatnonzero((y % unit != 0) | (classes < 0) | (classes >= spec.dims[-1]))
    if bad.size:
        raise WitnessBuilderError(
            f"class labels must be integers in 0..{spec.dims[-1] - 1} (at 2**-{spec.scale}: multiples of {unit})",
            expected=f"k * {unit}, k in 0..{spec.dims[-1] - 1}",
            actual=int(y[bad[0]]),
            tensor="Y",
            first_index=int(bad[0]),
        )
    return classes


def split_params(spec: Groth16SgdSpec, w: np.ndarray) -> list[np.ndarray]:
    """Flat parameters -> per layer weight (out x in) and bias (out,), in canonical order."""
    return [w[start:stop].reshape(shape) for (start, stop, _), shape in zip(_param_slices(spec), spec.param_shapes)]


def _param_slices(spec: Groth16SgdSpec) -> list[tuple[int, int, str]]:
    return [
        (offset, offset + math.prod(shape), f"layer {index // 2 + 1} {'weight' if index % 2 == 0 else 'bias'}")
        for index, (offset, shape) in enumerate(zip(spec.param_offsets, spec.param_shapes))
    ]


def _rescale(acc: np.ndarray, spec: Groth16SgdSpec, what: str) -> np.ndarray:
    return floor_checked(acc, spec.scale, spec.quotient_bits, what)


def _gradients(spec: Groth16SgdSpec, params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Per parameter tensor in canonical order: GW_l = delta_l^T @ h_{l-1} (at S**2, not
    rescaled) and gb_l = sum_n delta_l."""
    layers = spec.num_layers
    activations, pre_activations = [x], []
    for layer in range(1, layers + 1):
        weight, bias = params[2 * layer - 2], params[2 * layer - 1]
        z = (activations[-1] @ weight.T) // 2**spec.scale + bias
        check_range(z.reshape(-1), spec.quotient_bits, f"layer {layer} pre-activation z")
        pre_activations.append(z)
        activations.append(np.maximum(z, 0) if layer < layers else z)
    if spec.loss == "cross_entropy":
        delta = cross_entropy_delta(activations[-1], class_labels(spec, y), spec.scale)
    else:
        delta = activations[-1] - y
    gradients: list[np.ndarray] = [np.empty(0)] * len(params)
    for layer in range(layers, 0, -1):
        gradients[2 * layer - 2] = delta.T @ activations[layer - 1]
        gradients[2 * layer - 1] = delta.sum(axis=0)
        if layer > 1:
            back = _rescale(delta @ params[2 * layer - 2], spec, f"layer {layer - 1} back-propagated delta")
            delta = back * (pre_activations[layer - 2] > 0)
    return gradients


