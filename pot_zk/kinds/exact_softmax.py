"""Softmax and its cross-entropy output delta in integer arithmetic, defined once, for exact
fixed-point statements (a circuit that checks every step of it with equalities and range
checks, and training that uses the same integers).

Every quantity is an integer; every rescale is a floor division by a power of two (a circuit
constrains ``a = q * 2**b + r`` with ``0 <= r < 2**b`` and ``q`` range-checked), and the one
division by a variable, the normalisation, is a floor division whose quotient is bounded by
construction (``0 <= p <= 2**scale``) and whose remainder satisfies ``0 <= r < Z``. For a row of
logits ``z`` at ``2**-scale`` and ``S = 2**scale``:

    m     = max_k z_k                                      (a circuit: m >= z_k, m equals one z_k)
    u_k   = max(z_k - m, -EXP_RANGE * S)                   (u_k in [-EXP_RANGE * S, 0])
    t_k   = -u_k * LOG2E                                   (LOG2E = round(log2(e) * 2**LOG2E_BITS))
    n_k   = t_k >> (scale + LOG2E_BITS)                     (integer part of -u_k * log2(e))
    f_k   = (t_k mod 2**(scale + LOG2E_BITS)) >> (scale + LOG2E_BITS - POLY_BITS)
    y_k   = 2**-f_k by Horner's rule on the degree-POLY_DEGREE Taylor coefficients of
            exp(-f ln 2), each step acc = (acc * f_k) >> POLY_BITS + c_j  (y_k at 2**-POLY_BITS)
    e_k   = y_k >> (POLY_BITS - exp_bits + n_k)            (exp(u_k / S) at 2**-exp_bits)
    Z     = sum_k e_k                                      (Z >= 2**exp_bits: the max's e is 2**exp_bits)
    p_k   = (e_k * S + Z // 2) // Z                        (rounded; 0 <= p_k <= S, remainder in [0, Z))
    delta = p_k - S * [k == label]                         (the cross-entropy output delta)

Measured against float64 softmax: |p - softmax| <= 0.81 units of 2**-scale (12,000 random rows
of 10 logits, spreads 1 to 60, scale 12); tests/test_exact_softmax.py checks <= 1 unit.
:func:`softmax_trace` returns every intermediate, so a circuit generator can emit one
constraint per line above and a test can compare its witness with this reference. The
zk-groth16 cross-entropy statement uses it: its exact step (pot_zk/backends/groth16/exact.py)
and its circuit (pot_zk/backends/groth16/softmax_circom.py, one constraint or range check
per line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pot_zk.exceptions import WitnessBuilderError

EXP_RANGE = 12
"""u is clamped at -EXP_RANGE (exp(-12) ~ 6e-6): the same clamp as the zk-halo2 statement."""
EXP_BITS = 16
"""e = exp(u / S) is computed at 2**-EXP_BITS (the default of every function below)."""
LOG2E_BITS = 28
POLY_BITS = 24
LOGIT_BITS = 48
"""Logits lie below 2**LOGIT_BITS in magnitude: every logit a zk-groth16 statement range-checks
(quotient_bits <= 48). Only z - max z touches an unclamped logit (within int64); every product
comes after the clamp, so it is below 2**57 whatever the logits."""
POLY_DEGREE = 9
LOG2E = round(math.log2(math.e) * 2**LOG2E_BITS)
COEFFICIENTS = tuple(round((-math.log(2)) ** j / math.factorial(j) * 2**POLY_BITS) for j in range(POLY_DEGREE + 1))
"""c_j of 2**-f = sum_j (-ln 2 * f)**j / j!, at 2**-POLY_BITS (Taylor error at f = 1: < 2**-27)."""


@dataclass(frozen=True)
class SoftmaxTrace:
    """Every intermediate of :func:`softmax_trace` (integer arrays, N x C unless noted)."""

    row_max: np.ndarray
    """m, N."""
    shifted: np.ndarray
    """u = max(z - m, -EXP_RANGE * S)."""
    whole: np.ndarray
    """n = floor(-u * log2(e)) (at the scale of t)."""
    fraction: np.ndarray
    """f at 2**-POLY_BITS."""
    power: np.ndarray
    """y = 2**-f at 2**-POLY_BITS."""
    exp: np.ndarray
    """e = exp(u / S) at 2**-exp_bits."""
    total: np.ndarray
    """Z, N."""
    probabilities: np.ndarray
    """p at 2**-scale."""
    remainders: np.ndarray
    """e * S + Z // 2 - p * Z, each in [0, Z)."""


def softmax_trace(logits: np.ndarray, scale: int, exp_bits: int = EXP_BITS) -> SoftmaxTrace:
    """The integer softmax of each row of ``logits`` (integers at 2**-scale), with every
    intermediate. Logits must lie below 2**LOGIT_BITS in magnitude (WitnessBuilderError
    otherwise)."""
    z = _integers(logits, "logits")
    if z.ndim != 2 or z.shape[1] < 1:
        raise WitnessBuilderError("logits must be an N x C integer array", expected="N x C", actual=list(z.shape))
    if not 0 < exp_bits <= POLY_BITS or not 0 < scale <= 24:
        raise WitnessBuilderError("need 0 < exp_bits <= 24 and 0 < scale <= 24", expected="bits in range", actual=[scale, exp_bits])
    if z.size and int(np.abs(z).max()) >= 2**LOGIT_BITS:
        raise WitnessBuilderError(
            f"logits exceed {LOGIT_BITS} bits", expected=f"|logit| < 2**{LOGIT_BITS}", actual=int(np.abs(z).max())
        )
    unit = 2**scale
    row_max = z.max(axis=1)
    shifted = np.maximum(z - row_max[:, None], -EXP_RANGE * unit)
    t = -shifted * LOG2E
    whole = t >> (scale + LOG2E_BITS)
    fraction = (t & (2 ** (scale + LOG2E_BITS) - 1)) >> (scale + LOG2E_BITS - POLY_BITS)
    power = np.full_like(fraction, COEFFICIENTS[-1])
    for coefficient in reversed(COEFFICIENTS[:-1]):
        power = ((power * fraction) >> POLY_BITS) + coefficient
    exp = power >> (POLY_BITS - exp_bits + whole)
    total = exp.sum(axis=1)
    numerators = exp * unit + (total // 2)[:, None]
    probabilities = numerators // total[:, None]
    remainders = numerators - probabilities * total[:, None]
    return SoftmaxTrace(row_max, shifted, whole, fraction, power, exp, total, probabilities, remainders)


def softmax(logits: np.ndarray, scale: int, exp_bits: int = EXP_BITS) -> np.ndarray:
    """p = softmax(logits) at 2**-scale, integers (see the module docstring)."""
    return softmax_trace(logits, scale, exp_bits).probabilities


def cross_entropy_delta(logits: np.ndarray, labels: np.ndarray, scale: int, exp_bits: int = EXP_BITS) -> np.ndarray:
    """softmax(logits) - one_hot(labels), integers at 2**-scale: the output delta the exact
    backward pass starts from (the gradient of the summed cross-entropy at the logits)."""
    p = softmax(logits, scale, exp_bits)
    classes = _integers(labels, "labels").reshape(-1)
    if classes.shape[0] != p.shape[0] or (classes.size and (classes.min() < 0 or classes.max() >= p.shape[1])):
        raise WitnessBuilderError(
            f"labels must be N integers in 0..{p.shape[1] - 1}", expected=[p.shape[0], p.shape[1]], actual=classes.tolist()[:10]
        )
    delta = p.copy()
    delta[np.arange(p.shape[0]), classes] -= 2**scale
    return delta


def _integers(values: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise WitnessBuilderError(f"{what} must be integers (fixed point)", expected="an integer array", actual=str(array.dtype))
    return array.astype(np.int64)
