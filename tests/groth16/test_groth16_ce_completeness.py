"""Completeness of the zk-groth16 cross-entropy circuit (real engine): every step the reference
accepts proves, across shapes (one class, two, three, ten; one and two layers; scale 8 to 24;
quotient_bits 18 over value_bits 16) and at the edges of its range checks -- logits at both
ends of the bias range (a tie at the max, a clamped logit 16 or more below it), all-equal
logits (Z at its largest), labels 0 and C - 1 (also on a clamped class, p = 0), inputs at
both ends of value_bits, zero weights, and random steps. Each proof is forced (no reference
check in front of the engine) and verified against the native commitments."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest

from pot_zk.backends.groth16 import adapter, keys
from pot_zk.backends.groth16.circuit_writer import gadget_source

from pot_zk.backends.groth16.sgd.exact import exact_sgd_step

from pot_zk.backends.groth16.integers import signed_range

from pot_zk.backends.groth16.sgd.exact import split_params

from pot_zk.backends.groth16.integers import FIELD_MODULUS
from pot_zk.backends.groth16.softmax_circom import softmax_templates
from pot_zk.backends.groth16.sgd.statement import Groth16SgdStatement
from pot_zk.exceptions import WitnessBuilderError
from pot_zk.kinds.exact_softmax import EXP_LIMIT_BITS, softmax_trace
from groth16_support import sgd_integers, sgd_signals

pytestmark = pytest.mark.prover

SHAPES = [
    {"dims": (4, 3, 3), "batch_size": 2, "learning_rate": 1e-4},
    {"dims": (3, 1), "batch_size": 2, "learning_rate": 0.1},
    {"dims": (3, 2), "batch_size": 3, "learning_rate": 1e-4, "scale": 8, "param_scale": 24, "quotient_bits": 18},
    {"dims": (2, 3, 10), "batch_size": 2, "learning_rate": 1e-4},
    {"dims": (2, 2, 3), "batch_size": 2, "learning_rate": 1e-5, "scale": 24, "param_scale": 40, "quotient_bits": 30},
]


def _steps(spec: Groth16SgdStatement) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(what, W_t, X, classes): random steps and steps at the edges of the range checks."""
    rng = np.random.default_rng(7)
    unit, classes, n, d0 = 2**spec.scale, spec.dims[-1], spec.batch_size, spec.dims[0]
    low, high = signed_range(spec.value_bits)
    last_weight, last_bias = spec.param_offsets[-2], spec.param_offsets[-1]
    for seed in range(2):
        w = np.round(rng.normal(0, 0.5, spec.num_params) * unit).astype(np.int64)
        x = np.round(rng.uniform(-1, 1, (n, d0)) * unit).astype(np.int64)
        yield f"random {seed}", w, x, rng.integers(0, classes, n)
    for x_value in (high, low):
        # the output layer's weights 0: the logits are its biases, the largest ones tied at the max,
        # the last (the label's) clamped; the earlier weights 1 so X at the edge keeps z small
        w = np.ones(spec.num_params, dtype=np.int64)
        w[last_weight:last_bias] = 0
        w[last_bias:] = high
        w[-1] = low
        yield f"X = {x_value}, label C - 1 on a clamped logit", w, np.full((n, d0), x_value, dtype=np.int64), np.full(n, classes - 1)
        w[last_bias:] = high
        w[last_bias] = low
        yield f"X = {x_value}, label 0 on a clamped logit", w, np.full((n, d0), x_value, dtype=np.int64), np.zeros(n, dtype=np.int64)
    w = np.round(rng.normal(0, 0.5, spec.num_params) * unit).astype(np.int64)
    w[last_weight:] = 0
    yield "all-equal logits (Z largest), labels 0 and C - 1", w, np.full((n, d0), high, dtype=np.int64), np.arange(n) % 2 * (classes - 1)
    yield "zero weights and inputs", np.zeros(spec.num_params, dtype=np.int64), np.zeros((n, d0), dtype=np.int64), np.arange(n) % classes


def _logits(spec: Groth16SgdStatement, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    h = x
    for layer, (weight, bias) in enumerate(zip(split_params(spec, w)[::2], split_params(spec, w)[1::2])):
        z = (h @ weight.T) // 2**spec.scale + bias
        h = np.maximum(z, 0) if layer < spec.num_layers - 1 else z
    return h


@pytest.mark.parametrize("shape", SHAPES, ids=["-".join(map(str, s["dims"])) + f"@{s.get('scale', 12)}" for s in SHAPES])
def test_every_cross_entropy_step_the_reference_accepts_proves(shape, groth16_cache):
    spec = Groth16SgdStatement(loss="cross_entropy", **shape)
    key_dir = keys.ensure_keys(spec, groth16_cache)
    pk, vk = key_dir.load_proving_key(), key_dir.load_verifying_key()
    proved, clamped = [], 0
    for what, w, x, classes in _steps(spec):
        y = classes.astype(np.int64) * 2**spec.scale
        try:
            w_after = exact_sgd_step(spec, w, x, y)
        except WitnessBuilderError:
            continue
        proof = adapter.prove(pk, sgd_signals(w, x, y, w_after))
        assert adapter.verify(vk, proof, spec.commitments(sgd_integers(w, x, y, w_after)).public_inputs()) == (True, None), what
        proved.append(what)
        clamped += bool(softmax_trace(_logits(spec, w, x), spec.scale).clamped.any())
    assert len(proved) >= 6, proved  # the edge cases are steps the reference accepts, not skipped ones
    if spec.dims[-1] > 1 and 2**spec.value_bits - 1 >= 2**EXP_LIMIT_BITS * 2**spec.scale:  # biases can be 16 S apart
        assert clamped >= 2, proved  # clamped logits were proven


ROW_SHAPES = [(1, 12, 24), (2, 12, 16), (10, 12, 24), (4, 24, 30), (3, 12, 42)]
"""(C, scale, quotient_bits) of SoftmaxRow alone: logits anywhere in the quotient range (42 bits:
logits beyond 2**40, which the reference used to refuse)."""


@pytest.mark.parametrize(("classes", "scale", "bits"), ROW_SHAPES, ids=[f"C{c}@{s}q{b}" for c, s, b in ROW_SHAPES])
def test_softmax_rows_at_the_ends_of_the_logit_range_prove(classes, scale, bits, tmp_path):
    """Rows the forward pass can hand over: every logit at either end of quotient_bits (the gap
    m - z at its largest, 2**bits - 1), all equal, and exactly 16 S - 1, 16 S and 16 S + 1 below
    the max (where the gap fits)."""
    low, high = signed_range(bits)
    limit = 2**EXP_LIMIT_BITS * 2**scale
    rows = [np.full(classes, high), np.full(classes, low), np.r_[np.full(classes - 1, low), high], np.r_[low, np.full(classes - 1, high)]]
    for gap in (limit - 1, limit, limit + 1):
        if gap < 2**bits:
            rows.append(np.r_[np.full(classes - 1, high), high - gap])
    rows += list(np.random.default_rng(3).integers(low, high + 1, (4, classes)))
    path = tmp_path / "row.circom"
    path.write_text(gadget_source(f"component main = SoftmaxRow({classes}, {scale}, {bits});", softmax_templates(classes, scale)))
    pk, vk, _ = adapter.setup(path)
    for row in rows:
        trace = softmax_trace(np.asarray(row, dtype=np.int64)[None, :], scale)
        outputs = [trace.row_max, trace.clamped, trace.exp, trace.total, trace.reciprocal, trace.probabilities, trace.remainders]
        public = [int(v) % FIELD_MODULUS for v in np.concatenate([np.asarray(o).reshape(-1) for o in outputs])]
        assert adapter.verify(vk, adapter.prove(pk, {"z": [int(v) for v in row]}), public) == (True, None), list(row)
