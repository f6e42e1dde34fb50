"""The integers of the zk-groth16 statements: fixed-point values at 2**-scale, their ranges,
and the floor divisions every statement's exact step is made of (docs/groth16.md).

A value of a statement is an integer v standing for v * 2**-scale; committed values (weights,
batch values, the state after the step) lie in the signed range of ``value_bits`` bits, every
rescaled quantity in that of ``quotient_bits`` bits. A value out of its range raises
:class:`WitnessBuilderError` naming the tensor, before anything expensive runs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pot_zk.exceptions import WitnessBuilderError

FIELD_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617
"""p, the BN254 scalar field of circom, groth16py and light-poseidon."""


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


def floor_checked(acc: np.ndarray, shift: int, bits: int, what: str) -> np.ndarray:
    """``acc // 2**shift``, which must lie in the signed range of ``bits`` bits."""
    quotient = acc // 2**shift
    check_range(quotient.reshape(-1), bits, what)
    return quotient


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
