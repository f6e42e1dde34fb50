"""Softmax and its cross-entropy output delta in integer arithmetic, defined once, for exact
fixed-point statements (a circuit that checks every step of it with equalities and range
checks, and training that uses the same integers).

Every quantity is an integer; every rescale is a floor division by a power of two (a circuit
constrains ``a = q * 2**b + r`` with ``0 <= r < 2**b`` and ``q`` range-checked), and the one
division by a variable, the reciprocal of the row's total, is a floor division with
``0 <= r < Z``. For a row of logits ``z`` at ``2**-scale`` and ``S = 2**scale``:

    m     = max_k z_k                                     (a circuit: m >= z_k, m equals one z_k)
    d_k   = m - z_k                                       (>= 0; exp(-d_k / S) is wanted)
    e_k   = 0 when d_k >= 2**EXP_LIMIT_BITS * S           (exp(-16) < 2**-23, below e's unit)
    else  split the low scale + 4 bits of d_k: the tail, bits below 2**(scale - TAIL_GAP)
          (none when scale <= TAIL_GAP), and above it 4-bit digits from the top (the last may
          be narrower); digit c, at bit ``low_c``, selects T_c[j] = exp(-j 2**low_c / S) at
          2**-TABLE_BITS, rounded to nearest (exact decimal arithmetic, :func:`exp_tables`);
          E_k = prod_c T_c[digit_c] * (S - tail_k)        (exact; the tail factor ~ exp(-tail/S))
          e_k = E_k >> (TABLE_BITS * digits + scale [if a tail] - EXP_BITS)   (at 2**-EXP_BITS)
    Z     = sum_k e_k                                     (>= 2**EXP_BITS: the max's e is exactly that)
    inv   = 2**(scale + RECIPROCAL_BITS) // Z             (remainder in [0, Z))
    p_k   = (e_k * inv + 2**(RECIPROCAL_BITS - 1)) >> RECIPROCAL_BITS    (0 <= p_k <= S)
    delta = p_k - S * [k == label]                        (the cross-entropy output delta)

p_k <= S because e_k <= Z, so e_k inv <= 2**(scale + RECIPROCAL_BITS). Measured against float64
softmax: |p - softmax| <= 0.81 units of 2**-scale (12,000 random rows of 10 logits, spreads 1
to 60, scale 12; the error is the floor of e and the rounding of p, not the tables: 14 to 22
table bits measure alike); tests/test_exact_softmax.py checks <= 1 unit. :func:`softmax_trace`
returns every intermediate, so a circuit generator can emit one constraint per line above and
a test can compare its witness with this reference. The zk-groth16 cross-entropy statement
uses it: its exact step (pot_zk/backends/groth16/exact.py) and its circuit
(pot_zk/backends/groth16/softmax_circom.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal
from functools import lru_cache

import numpy as np

from pot_zk.exceptions import WitnessBuilderError

EXP_LIMIT_BITS = 4
"""e is 0 from d = 2**EXP_LIMIT_BITS * S (16 in real units) on: the bits of d above scale + 4."""
EXP_BITS = 16
"""e = exp(-d / S) at 2**-EXP_BITS."""
TABLE_BITS = 16
DIGIT_BITS = 4
TAIL_GAP = 8
"""The tail is d's bits below 2**(scale - TAIL_GAP), under 2**-8 in real units: exp(-x) = 1 - x
there to within x**2 / 2 < 2**-17."""
RECIPROCAL_BITS = 18
"""inv = 2**(scale + RECIPROCAL_BITS) // Z: p's error from the floor of inv is below
e / 2**RECIPROCAL_BITS <= 1/4 unit."""
LOGIT_BITS = 48
"""Logits lie below 2**LOGIT_BITS in magnitude: every logit a zk-groth16 statement range-checks
(quotient_bits <= 48). Only d = m - z touches an unclamped logit (within int64); every product
comes after the clamp."""


@dataclass(frozen=True)
class ExpTables:
    """The digits of d below 2**(scale + 4) at one scale: the tail's width and, per digit, its
    lowest bit, its width and its table (2**width integers at 2**-TABLE_BITS)."""

    scale: int
    tail_bits: int
    digits: tuple[tuple[int, int, tuple[int, ...]], ...]

    @property
    def product_bits(self) -> int:
        """The scale of E: TABLE_BITS per digit, plus scale for the tail factor."""
        return TABLE_BITS * len(self.digits) + (self.scale if self.tail_bits else 0)

    @property
    def dropped_bits(self) -> int:
        return self.product_bits - EXP_BITS


@lru_cache(maxsize=None)
def exp_tables(scale: int) -> ExpTables:
    """The tables at ``scale`` (exp in 60-digit decimal arithmetic, then rounded half up:
    the same integers on every machine)."""
    context = Context(prec=60)
    tail = max(0, scale - TAIL_GAP)
    digits, top = [], scale + EXP_LIMIT_BITS
    while top > tail:
        low = max(tail, top - DIGIT_BITS)
        width = top - low
        table = tuple(
            int(context.exp(Decimal(-j * 2**low) / Decimal(2**scale)) * 2**TABLE_BITS + Decimal("0.5")) for j in range(2**width)
        )
        digits.append((low, width, table))
        top = low
    return ExpTables(scale, tail, tuple(digits))


@dataclass(frozen=True)
class SoftmaxTrace:
    """Every intermediate of :func:`softmax_trace` (integer arrays, N x C unless noted; the
    products E are Python integers in an object array)."""

    row_max: np.ndarray
    """m, N."""
    gaps: np.ndarray
    """d = m - z."""
    clamped: np.ndarray
    """[d >= 2**EXP_LIMIT_BITS * S], 0 or 1."""
    products: np.ndarray
    """E (0 where clamped)."""
    exp: np.ndarray
    """e = exp(-d / S) at 2**-EXP_BITS."""
    total: np.ndarray
    """Z, N."""
    reciprocal: np.ndarray
    """inv = 2**(scale + RECIPROCAL_BITS) // Z, N."""
    probabilities: np.ndarray
    """p at 2**-scale."""
    remainders: np.ndarray
    """e * inv + 2**(RECIPROCAL_BITS - 1) - p * 2**RECIPROCAL_BITS, each in [0, 2**RECIPROCAL_BITS)."""


def softmax_trace(logits: np.ndarray, scale: int) -> SoftmaxTrace:
    """The integer softmax of each row of ``logits`` (integers at 2**-scale), with every
    intermediate. Logits must lie below 2**LOGIT_BITS in magnitude (WitnessBuilderError
    otherwise)."""
    z = _integers(logits, "logits")
    if z.ndim != 2 or z.shape[1] < 1:
        raise WitnessBuilderError("logits must be an N x C integer array", expected="N x C", actual=list(z.shape))
    if not 0 < scale <= 24:
        raise WitnessBuilderError("need 0 < scale <= 24", expected="scale in 1..24", actual=scale)
    if z.size and int(np.abs(z).max()) >= 2**LOGIT_BITS:
        raise WitnessBuilderError(
            f"logits exceed {LOGIT_BITS} bits", expected=f"|logit| < 2**{LOGIT_BITS}", actual=int(np.abs(z).max())
        )
    tables = exp_tables(scale)
    unit = 2**scale
    row_max = z.max(axis=1)
    gaps = row_max[:, None] - z
    clamped = (gaps >= 2**EXP_LIMIT_BITS * unit).astype(np.int64)
    products = np.ones(gaps.shape, dtype=object)
    for low, width, table in tables.digits:
        products = products * np.asarray(table, dtype=object)[(gaps >> low) & (2**width - 1)]
    if tables.tail_bits:
        products = products * (unit - (gaps & (2**tables.tail_bits - 1))).astype(object)
    products = products * (1 - clamped).astype(object)
    exp = (products >> tables.dropped_bits).astype(np.int64)
    total = exp.sum(axis=1)
    reciprocal = 2 ** (scale + RECIPROCAL_BITS) // total
    numerators = exp * reciprocal[:, None] + 2 ** (RECIPROCAL_BITS - 1)
    probabilities = numerators >> RECIPROCAL_BITS
    remainders = numerators - (probabilities << RECIPROCAL_BITS)
    return SoftmaxTrace(row_max, gaps, clamped, products, exp, total, reciprocal, probabilities, remainders)


def softmax(logits: np.ndarray, scale: int) -> np.ndarray:
    """p = softmax(logits) at 2**-scale, integers (see the module docstring)."""
    return softmax_trace(logits, scale).probabilities


def cross_entropy_delta(logits: np.ndarray, labels: np.ndarray, scale: int) -> np.ndarray:
    """softmax(logits) - one_hot(labels), integers at 2**-scale: the output delta the exact
    backward pass starts from (the gradient of the summed cross-entropy at the logits)."""
    p = softmax(logits, scale)
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
