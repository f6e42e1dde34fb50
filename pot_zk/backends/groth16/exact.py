"""The exact fixed-point SGD step: one integer arithmetic for training, proving and reexec.

For a :class:`~pot_zk.backends.groth16.spec.Groth16SgdSpec` with ``S = 2**scale`` and every
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
from typing import Sequence

import numpy as np

from pot_zk.backends.groth16.spec import Groth16SgdSpec
from pot_zk.exceptions import WitnessBuilderError
from pot_zk.kinds.exact_softmax import cross_entropy_delta


def signed_range(bits: int) -> tuple[int, int]:
    """The inclusive range of a signed ``bits``-bit value: [-2**(bits-1), 2**(bits-1) - 1]."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def check_range(values: np.ndarray, bits: int, what: str) -> None:
    """Raise WitnessBuilderError unless every value is a signed ``bits``-bit integer."""
    low, high = signed_range(bits)
    if values.size == 0:
        return
    worst_low, worst_high = int(values.min()), int(values.max())
    if worst_low < low or worst_high > high:
        bad = np.flatnonzero((values < low) | (values > high))
        raise WitnessBuilderError(
            f"{what} out of range: {bad.size} value(s) outside the signed {bits}-bit range [{low}, {high}]",
            expected=[low, high],
            actual=[worst_low, worst_high],
            tensor=what,
            first_index=int(bad[0]),
        )


def quantise_weights(values: Sequence[float] | np.ndarray, scale: int, value_bits: int, what: str = "weights") -> np.ndarray:
    """Weights of an exact-mode run as integers: every value must lie exactly on the grid
    2**-scale (an off-grid weight is an error, not rounded) and fit ``value_bits``."""
    flat = _finite_float64(values, what)
    scaled = flat * 2.0**scale
    off_grid = np.flatnonzero(scaled != np.round(scaled))
    if off_grid.size:
        index = int(off_grid[0])
        raise WitnessBuilderError(
            f"{what}: {off_grid.size} value(s) are not on the 2**-{scale} grid (exact mode needs grid weights)",
            expected=f"multiples of 2**-{scale}",
            actual=float(flat[index]),
            tensor=what,
            first_index=index,
        )
    return _to_int(scaled, value_bits, what)


def quantise_batch(values: Sequence[float] | np.ndarray, scale: int, value_bits: int, what: str = "batch") -> np.ndarray:
    """Batch values as integers: round half away from zero at ``scale`` bits, then range-check."""
    flat = _finite_float64(values, what)
    scaled = flat * 2.0**scale
    return _to_int(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5), value_bits, what)


def dequantise(values: np.ndarray, scale: int) -> np.ndarray:
    """Integers at ``scale`` bits as float64 (exact for |v| < 2**53)."""
    return np.asarray(values, dtype=np.int64).astype(np.float64) / 2.0**scale


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


def floor_checked(acc: np.ndarray, shift: int, bits: int, what: str) -> np.ndarray:
    """``acc // 2**shift``, which must lie in the signed range of ``bits`` bits."""
    quotient = acc // 2**shift
    check_range(quotient.reshape(-1), bits, what)
    return quotient


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


def _finite_float64(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(flat).all():
        raise WitnessBuilderError(f"{what} contain NaN or Inf", expected="finite values", actual="NaN/Inf", tensor=what)
    return flat


def _to_int(scaled: np.ndarray, value_bits: int, what: str) -> np.ndarray:
    low, high = signed_range(value_bits)
    outside = np.flatnonzero((scaled < low) | (scaled > high))
    if outside.size:
        index = int(outside[0])
        raise WitnessBuilderError(
            f"{what} out of range: {outside.size} value(s) outside the signed {value_bits}-bit range [{low}, {high}] "
            "(after scaling)",
            expected=[low, high],
            actual=float(scaled[index]),
            tensor=what,
            first_index=index,
        )
    return scaled.astype(np.int64)
