"""The integer softmax and cross-entropy delta for exact statements (pot_zk/kinds/exact_softmax.py):
integers only, within one unit of the float64 softmax, every division's quotient and remainder
in the bounds a circuit would check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pot_zk.exceptions import WitnessBuilderError
from pot_zk.kinds.exact_softmax import (
    EXP_BITS,
    EXP_LIMIT_BITS,
    RECIPROCAL_BITS,
    TABLE_BITS,
    cross_entropy_delta,
    exp_tables,
    softmax,
    softmax_trace,
)

SCALE = 12


def random_logits(rows: int, classes: int, spread: float, seed: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return np.round(generator.uniform(-spread, spread, size=(rows, classes)) * 2**SCALE).astype(np.int64)


def float_softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.tensor(logits, dtype=torch.float64) / 2**SCALE, dim=1).numpy()


@pytest.mark.parametrize("spread", [0.5, 4.0, 30.0])
def test_the_integer_softmax_is_within_one_unit_of_the_float_softmax(spread):
    logits = random_logits(200, 10, spread, seed=int(spread * 10))
    p = softmax(logits, SCALE)
    assert p.dtype == np.int64
    error = np.abs(p / 2**SCALE - float_softmax(logits)).max() * 2**SCALE
    assert error <= 1.0, error
    assert np.all(np.abs(p.sum(axis=1) - 2**SCALE) <= 5)  # each class rounded to the nearest unit


def test_exp_of_zero_is_exactly_one_and_exp_decreases_to_zero_at_the_clamp():
    limit = 2**EXP_LIMIT_BITS * 4096
    trace = softmax_trace(np.array([[0, -1, -4096, -(limit - 1), -limit, -100 * 4096]]), SCALE)
    assert trace.exp[0, 0] == 2**EXP_BITS
    assert list(trace.exp[0]) == sorted(trace.exp[0], reverse=True)
    assert trace.clamped[0].tolist() == [0, 0, 0, 0, 1, 1] and trace.exp[0, 3:].tolist() == [0, 0, 0]
    assert abs(trace.exp[0, 2] / 2**EXP_BITS - np.exp(-1)) < 2**-15


@pytest.mark.parametrize("scale", [1, 4, 8, 9, 12, 24])
def test_the_digits_cover_the_bits_below_the_clamp_and_the_tables_are_rounded_exponentials(scale):
    tables = exp_tables(scale)
    covered = sorted(bit for low, width, _ in tables.digits for bit in range(low, low + width))
    assert covered == list(range(tables.tail_bits, scale + EXP_LIMIT_BITS))
    assert tables.tail_bits == max(0, scale - 8)
    for low, width, table in tables.digits:
        assert width <= 4 and table[0] == 2**TABLE_BITS
        exact = np.exp(-np.arange(2**width) * 2.0**low / 2**scale) * 2**TABLE_BITS
        assert np.abs(np.asarray(table) - exact).max() <= 0.5 + 1e-9


def test_every_division_stays_in_the_bounds_a_circuit_checks():
    trace = softmax_trace(random_logits(50, 10, 20.0, seed=3), SCALE)
    tables = exp_tables(SCALE)
    assert np.all(trace.total >= 2**EXP_BITS)  # the row maximum contributes exactly 2**16
    assert np.all((trace.exp >= 0) & (trace.exp <= 2**EXP_BITS))
    assert all(0 <= int(e) < 2 ** (tables.dropped_bits + EXP_BITS + 1) for e in trace.products.reshape(-1))
    assert np.all(trace.reciprocal * trace.total <= 2 ** (SCALE + RECIPROCAL_BITS))
    assert np.all(2 ** (SCALE + RECIPROCAL_BITS) - trace.reciprocal * trace.total < trace.total)
    assert np.all((trace.remainders >= 0) & (trace.remainders < 2**RECIPROCAL_BITS))
    assert np.all((trace.probabilities >= 0) & (trace.probabilities <= 2**SCALE))


def test_the_cross_entropy_delta_is_the_float_gradient_to_one_unit():
    logits = random_logits(64, 10, 6.0, seed=7)
    labels = np.random.default_rng(8).integers(0, 10, size=64)
    delta = cross_entropy_delta(logits, labels, SCALE)
    z = torch.tensor(logits / 2**SCALE, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.cross_entropy(z, torch.tensor(labels), reduction="sum").backward()
    assert np.abs(delta / 2**SCALE - z.grad.numpy()).max() * 2**SCALE <= 1.0


def test_non_integer_inputs_and_bad_labels_are_refused():
    with pytest.raises(WitnessBuilderError, match="must be integers"):
        softmax(np.array([[0.5, 1.0]]), SCALE)
    with pytest.raises(WitnessBuilderError, match="labels must be N integers in 0..1"):
        cross_entropy_delta(np.array([[0, 1]]), np.array([2]), SCALE)
    with pytest.raises(WitnessBuilderError, match="exceed 48 bits"):
        softmax(np.array([[2**48, 0]]), SCALE)


def test_logits_anywhere_in_the_widest_quotient_range_are_accepted():
    """quotient_bits may reach 42 within the accumulator bound (e.g. 2048-8-2 at scale 1): a
    logit of 2**40 the circuit range-checks must have a softmax (it was refused above 40 bits)."""
    top = 2**47 - 1
    rows = np.array([[top, 0, top - 4096], [-top - 1, top, 2**40], [2**40, 2**40 - 4096, -(2**40)]])
    small = rows - rows.max(axis=1, keepdims=True)  # the same rows near 0: only z - max z matters
    assert np.array_equal(softmax(rows, SCALE), softmax(small, SCALE))
    assert softmax(rows, SCALE)[:, 0].tolist() == [2994, 0, 2994]  # 1 / (1 + e^-1) = 0.731 of 4096
