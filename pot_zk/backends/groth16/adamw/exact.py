"""The exact fixed-point Adam / AdamW step: one integer arithmetic for training, proving and reexec.

For a :class:`~pot_zk.backends.groth16.adamw.spec.Groth16AdamwSpec` with P = 2**p, S = 2**scale,
G the gradients of the SGD statement's backward pass at S**2, not rounded
(:func:`~pot_zk.backends.groth16.sgd.exact.unscaled_gradients`), ``round(a / 2**k)`` the floor
of ``(a + 2**(k-1)) / 2**k`` (halves up) and ``isqrt`` the integer square root (floor), every
quantity below an integer and ``trunc`` the division rounded towards zero (docs/groth16.md,
"AdamW and Adam steps")::

    per step, t = t_before + 1 (its 23 bits t_i):
      A_0 = 2**32,  A_(i+1) = round(A_i C_i / 2**32) if t_i else A_i     b^t at 2**-32, each beta
      bc1 = 2**32 - A_23(b1),  bc2 = 2**32 - A_23(b2)                      1 - b^t
      s2  = isqrt(bc2 2**32)                                               sqrt(1 - b2^t) at 2**-32
      f   = round(s2 2**32 / bc1)                                          the step factor at 2**-32
    per parameter:
      g   = round((g_fix G + wd_fix S W) / 2**(p + 2 scale - 18))         gradient at 2**-18 (G at S**2)
      m'  = trunc((b1_fix m + (P - b1_fix) g) / P)                         at 2**-18
      v'  = round((b2_fix v + (P - b2_fix) g^2 2**10) / P)                 at 2**-46
      R   = isqrt(v' 2**12)                                                sqrt(v') at 2**-29
      u   = round(lr_fix m' f 2**e / (R 2**32 + eps_fix s2))               lr m_hat / (sqrt(v_hat) + eps) at 2**-scale
      d   = round(lr_wd_fix W / P)                                         AdamW's decay (0 for Adam)
      W'  = W - d - u

where e = 29 + 32 + scale - p - 18 - 32 (the denominator is multiplied by 2**-e when e < 0).
m' is truncated towards zero so that it decays to 0 when the gradients stop (rounded to the
nearest, it would stop at a few units while v decays, and a dead ReLU's weights would keep
moving by lr m / sqrt(v) every step); v' rounds to the nearest, so it never reaches 0 while m
is not. Bounds (what the circuit range-checks): W, X, Y, W', d in the signed ``value_bits``
range; g, m in the signed 22-bit range, m' too but for -2**21 (|m'| < 2**21, as the circuit's
TruncCheck bounds it); v, v' in [0, 2**52); u in the signed ``quotient_bits`` range; t_before
in [0, 2**23 - 1). The arithmetic after G runs on Python integers (below 2**200: the spec's
``update_bound``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from pot_zk.backends.groth16.adamw.spec import BIAS_SCALE, COUNT_BITS, FACTOR_SCALE, MOMENT_BITS, MOMENT_SCALE, ROOT_SCALE, SECOND_BITS, SECOND_SCALE
from pot_zk.backends.groth16.integers import check_range
from pot_zk.backends.groth16.sgd.exact import check_params, unscaled_gradients
from pot_zk.exceptions import WitnessBuilderError

if TYPE_CHECKING:
    from pot_zk.backends.groth16.adamw.spec import Groth16AdamwSpec

SQUARE_SHIFT = 2 * ROOT_SCALE - SECOND_SCALE
"""v' 2**12 is at 2**-58: its integer square root is at 2**-29 (``ROOT_SCALE``)."""
GRADIENT_SQUARE_SHIFT = SECOND_SCALE - 2 * MOMENT_SCALE
"""g^2 is at 2**-36: 2**10 puts it on v's grid (2**-46)."""


@dataclass(frozen=True)
class StepTerms:
    """What a step's count t fixes: b1^t and b2^t, the bias corrections, sqrt(bc2), the step factor."""

    powers: tuple[int, int]
    bias1: int
    bias2: int
    root2: int
    factor: int
    eps_term: int


def rounded(values: np.ndarray, shift: int) -> np.ndarray:
    """round(values / 2**shift), halves up (Python integers)."""
    return (values + 2 ** (shift - 1)) // 2**shift


def isqrt(values: np.ndarray) -> np.ndarray:
    return np.array([math.isqrt(int(v)) for v in values.reshape(-1)], dtype=object).reshape(values.shape)


def power(constants: tuple[int, ...], count: int) -> int:
    """b^count at 2**-32 by the square-and-multiply chain the circuit checks."""
    value = 2**BIAS_SCALE
    for bit, constant in enumerate(constants):
        if count >> bit & 1:
            value = rounded(value * constant, BIAS_SCALE)
    return value


def divide_rounded(numerator, denominator):
    """round(numerator / denominator), halves up, for denominator >= 1 (integers or arrays)."""
    return (2 * numerator + denominator) // (2 * denominator)


def step_factor(root2: int, bias1: int) -> int:
    """f = round(sqrt(1 - b2^t) / (1 - b1^t)) at 2**-32."""
    return divide_rounded(root2 * 2**FACTOR_SCALE, bias1)


def step_terms(spec: Groth16AdamwSpec, count: int) -> StepTerms:
    powers = (power(spec.powers[0], count), power(spec.powers[1], count))
    bias1, bias2 = 2**BIAS_SCALE - powers[0], 2**BIAS_SCALE - powers[1]
    root2 = bias_root(bias2)
    return StepTerms(powers, bias1, bias2, root2, step_factor(root2, bias1), spec.eps_fix * root2)


def bias_root(bias2: int) -> int:
    """sqrt(1 - b2^t) at 2**-32: isqrt(bc2 2**32)."""
    return math.isqrt(bias2 * 2**BIAS_SCALE)


def update_exponent(spec: Groth16AdamwSpec) -> int:
    """e: u = lr_fix m' f 2**e / den (den multiplied by 2**-e when e < 0)."""
    return ROOT_SCALE + BIAS_SCALE + spec.scale - spec.param_scale - MOMENT_SCALE - FACTOR_SCALE


def gradient(spec: Groth16AdamwSpec, unscaled: np.ndarray, w: np.ndarray) -> np.ndarray:
    """g at 2**-18 (MOMENT_SCALE; Adam's weight decay added); the gradient's one rounding."""
    return rounded(spec.c_fix * unscaled + spec.wd_fix * 2**spec.scale * w, spec.gradient_shift)


def first_moment(spec: Groth16AdamwSpec, m: np.ndarray, g: np.ndarray) -> np.ndarray:
    """m' = trunc((b1_fix m + (P - b1_fix) g) / P), towards zero."""
    b1 = spec.beta_fix[0]
    return towards_zero(b1 * m + (2**spec.param_scale - b1) * g, spec.param_scale)


def towards_zero(values: np.ndarray, shift: int) -> np.ndarray:
    """values / 2**shift rounded towards zero (Python integers)."""
    return np.array([abs(int(v)) // 2**shift * (1 if v >= 0 else -1) for v in values.reshape(-1)], dtype=object).reshape(values.shape)


def second_moment(spec: Groth16AdamwSpec, v: np.ndarray, g: np.ndarray) -> np.ndarray:
    b2 = spec.beta_fix[1]
    return rounded(b2 * v + (2**spec.param_scale - b2) * g * g * 2**GRADIENT_SQUARE_SHIFT, spec.param_scale)


def update(spec: Groth16AdamwSpec, m_after: np.ndarray, root: np.ndarray, terms: StepTerms) -> np.ndarray:
    """u = lr m_hat / (sqrt(v_hat) + eps) at the weights' grid."""
    exponent = update_exponent(spec)
    numerator = spec.lr_fix * m_after * terms.factor * 2 ** max(exponent, 0)
    denominator = (root * 2**BIAS_SCALE + terms.eps_term) * 2 ** max(-exponent, 0)
    return divide_rounded(numerator, denominator)


def decay(spec: Groth16AdamwSpec, w: np.ndarray) -> np.ndarray:
    """AdamW's decoupled decay round(lr lambda W) (zero for Adam)."""
    return rounded(spec.lr_wd_fix * w, spec.param_scale)


def exact_adamw_step(spec: Groth16AdamwSpec, integers: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """W_t+1, m_t+1, v_t+1 (flat, canonical order) and t_after (one value), int64, from W_t, X,
    Y, m_t, v_t and t_before."""
    unscaled = unscaled_gradients(spec, integers["w_before"], integers["x"], integers["y"]).astype(object)
    w = np.asarray(integers["w_before"]).astype(np.int64).astype(object)
    m = _state(spec, integers["m_before"], spec.num_params, MOMENT_BITS, "first moment before the step").astype(object)
    v = _state(spec, integers["v_before"], spec.num_params, SECOND_BITS, "second moment before the step").astype(object)
    nonnegative(v, "second moment before the step")
    count = int(_state(spec, integers["t_before"], 1, COUNT_BITS, "step count before the step")[0])
    if not 0 <= count < 2 ** (COUNT_BITS - 1) - 1:
        raise WitnessBuilderError("the step count before the step must be in [0, 2**23 - 1)", expected=[0, 2 ** (COUNT_BITS - 1) - 2], actual=count, tensor="t_before")
    terms = step_terms(spec, count + 1)
    g = gradient(spec, unscaled, w)
    _check(g, MOMENT_BITS, "gradient g (at 2**-18)")
    m_after = first_moment(spec, m, g)
    check_first_moment(m_after)
    v_after = second_moment(spec, v, g)
    _check(v_after, SECOND_BITS, "second moment after the step")
    u = update(spec, m_after, isqrt(v_after * 2**SQUARE_SHIFT), terms)
    _check(u, spec.quotient_bits, "update lr m_hat / (sqrt(v_hat) + eps)")
    d = decay(spec, w)
    _check(d, spec.value_bits, "weight decay lr lambda W")
    w_after = (w - d - u).astype(np.int64)
    check_params(spec, w_after, "after the update")
    return {"w_after": w_after, "m_after": m_after.astype(np.int64), "v_after": v_after.astype(np.int64), "t_after": np.array([count + 1], dtype=np.int64)}


def check_first_moment(m_after: np.ndarray) -> None:
    """|m'| < 2**21: the signed 22-bit range without -2**21, which the circuit's towards-zero
    rounding (TruncCheck: sign bit and magnitude below 2**21) cannot prove."""
    _check(m_after, MOMENT_BITS, "first moment after the step", symmetric=True)


def _state(spec: Groth16AdamwSpec, values: np.ndarray, size: int, bits: int, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (size,) or array.dtype.kind not in "iu":
        raise WitnessBuilderError(f"the {what} must be {size} integer(s)", expected=[size, "integers"], actual=[list(array.shape), str(array.dtype)], tensor=what)
    array = array.astype(np.int64)
    check_range(array, bits, what)
    return array


def nonnegative(values: np.ndarray, what: str) -> None:
    negative = [i for i, value in enumerate(values) if value < 0]
    if negative:
        raise WitnessBuilderError(f"{what} has {len(negative)} negative value(s): a mean of squares is >= 0", expected=">= 0", actual=int(values[negative[0]]), tensor=what, first_index=negative[0])


def _check(values: np.ndarray, bits: int, what: str, symmetric: bool = False) -> None:
    """values in the signed range of ``bits`` bits; ``symmetric``: without its lowest value
    (|value| < 2**(bits-1), as the circuit's towards-zero rounding TruncCheck bounds m')."""
    low, high = -(2 ** (bits - 1)) + int(symmetric), 2 ** (bits - 1) - 1
    outside = [i for i, value in enumerate(values) if not low <= value <= high]
    if outside:
        index = outside[0]
        raise WitnessBuilderError(
            f"{what} out of range: {len(outside)} value(s) outside the signed {bits}-bit range [{low}, {high}]",
            expected=[low, high],
            actual=int(values[index]),
            tensor=what,
            first_index=index,
        )
