"""A cheating prover against the whole zk-groth16 cross-entropy circuit (4-3-3, batch 2, real engine).

The cheater controls the witness: its witness generator is the circuit's own with some prover
hints (``<--``) changed, which leaves the constraint system untouched (checked: the same
constraint and wire counts). For each forged witness -- another one-hot than the committed
label, a second class bit, p off by one either way, e raised, an unclamped logit clamped --
the claimed W_t+1 is the step with the forged intermediate (different from the honest one), and
no proof verifies against the commitments of (W_t, the committed batch, that W_t+1). Each forgery
proves once the one constraint that guards it is removed, so each test fails without its
constraint (and shows the tampered hint reaches the proof, not a signal the compiler
substituted away).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from pot_zk.backends.groth16 import adapter
from pot_zk.backends.groth16.sgd import exact

from pot_zk.backends.groth16.circuit_writer import gadget_source

from pot_zk.backends.groth16.sgd.exact import exact_sgd_step
from pot_zk.backends.groth16.integers import FIELD_MODULUS

from pot_zk.backends.groth16.softmax_circom import softmax_templates
from pot_zk.kinds.exact_softmax import EXP_LIMIT_BITS, RECIPROCAL_BITS, softmax_trace

from groth16_support import honest_ce_step, sgd_integers, sgd_signals, tiny_ce_spec

pytestmark = pytest.mark.prover

S = 4096
LABELS = (1, 0)
LR = 4.0
"""c = lr / N = 2: one unit of an output delta moves a bias by two grid steps, so every forgery below
claims another W_t+1 (at a small rate, p one off can round to the honest update)."""

LIMIT = 2**EXP_LIMIT_BITS * S
P_HINT = "p[k] <-- (share[k] + 2 ** (J - 1)) \\ (2 ** J);"
REM_HINT = "rem[k] <-- (share[k] + 2 ** (J - 1)) % (2 ** J);"
E_HINT = "e[k] <-- product[k] \\ (2 ** D);"
DROP_HINT = "dropped[k] <-- product[k] % (2 ** D);"
HOT_HINT = "hot[k] <-- label == k * 2 ** SB ? 1 : 0;"
CLAMP_HINT = "clamped[k] <-- high != 0 ? 1 : 0;"


def _p_plus_one(trace, logits):
    p = trace.probabilities.copy()
    p[:, 0] += 1
    return p


def _p_minus_one(trace, logits):
    p = trace.probabilities.copy()
    p[:, 0] -= 1
    return p


def _e_raised(trace, logits):
    e = trace.exp.copy()
    e[:, 0] += 256
    reciprocal = 2 ** (12 + RECIPROCAL_BITS) // e.sum(axis=1)[:, None]
    return (e * reciprocal + 2 ** (RECIPROCAL_BITS - 1)) >> RECIPROCAL_BITS


def _class_one_clamped(trace, logits):
    """Logit 1 clamped wherever it is not the row's max: the softmax of the logits m - 16 S there."""
    moved = logits.copy()
    rows = logits[:, 1] != logits.max(axis=1)
    moved[rows, 1] = logits.max(axis=1)[rows] - LIMIT
    return softmax_trace(moved, 12).probabilities


def _next_class(classes):
    hot = np.zeros((len(classes), 3), dtype=np.int64)
    hot[np.arange(len(classes)), (classes + 1) % 3] = 1
    return hot


def _class_zero_too(classes):
    hot = np.zeros((len(classes), 3), dtype=np.int64)
    hot[np.arange(len(classes)), classes] = 1
    hot[:, 0] = 1
    return hot


def _one_hot(classes):
    return np.eye(3, dtype=np.int64)[classes]


def _honest_p(trace, logits):
    return trace.probabilities


# (forgery, hint changes, the forged p, the forged one-hot, the constraint that refuses it)
FORGERIES = [
    (
        "one-hot of the next class, not the committed label",
        [(HOT_HINT, "hot[k] <-- label == ((k + 2) % C) * 2 ** SB ? 1 : 0;")],
        _honest_p, _next_class, ("weighted === label;", ""),
    ),
    (
        "class 0's bit set as well (its weight k S is 0)",
        [(HOT_HINT, "hot[k] <-- (label == k * 2 ** SB || k == 0) ? 1 : 0;")],
        _honest_p, _class_zero_too, ("count === 1;", ""),
    ),
    (
        "p one too large (negative remainder)",
        [(P_HINT, P_HINT[:-1] + " + (k == 0 ? 1 : 0);"), (REM_HINT, REM_HINT[:-1] + " - (k == 0 ? 2 ** J : 0);")],
        _p_plus_one, _one_hot, ("remBits[k].in <== rem[k];", "remBits[k].in <== 0;"),
    ),
    (
        "p one too small (remainder >= 2^J)",
        [(P_HINT, P_HINT[:-1] + " - (k == 0 ? 1 : 0);"), (REM_HINT, REM_HINT[:-1] + " + (k == 0 ? 2 ** J : 0);")],
        _p_minus_one, _one_hot, ("remBits[k].in <== rem[k];", "remBits[k].in <== 0;"),
    ),
    (
        "e 256 too large (negative dropped bits), so Z and every p move",
        [(E_HINT, E_HINT[:-1] + " + (k == 0 ? 256 : 0);"), (DROP_HINT, DROP_HINT[:-1] + " - (k == 0 ? 256 * 2 ** D : 0);")],
        _e_raised, _one_hot, ("droppedBits[k].in <== dropped[k];", "droppedBits[k].in <== 0;"),
    ),
    (
        "an unclamped logit clamped (its class's probability 0)",
        [(CLAMP_HINT, "clamped[k] <-- (k == 1 && high == 0 && m != z[k]) ? 1 : (high != 0 ? 1 : 0);")],
        _class_one_clamped, _one_hot, ("clamped[k] === high * clampInverse[k];", ""),
    ),
]


def _forged_step(spec, w, x, y, forged_p: Callable, forged_hot: Callable, monkeypatch) -> np.ndarray:
    """The reference step with the forged softmax output and one-hot in place of the honest ones."""

    def delta(logits, classes, scale):
        return forged_p(softmax_trace(logits, scale), logits) - S * forged_hot(classes)

    with monkeypatch.context() as patch:
        patch.setattr(exact, "cross_entropy_delta", delta)
        return exact_sgd_step(spec, w, x, y)


def _proves(tmp_path: Path, name: str, source: str, inputs: dict, public: list[int]):
    path = tmp_path / f"{name}.circom"
    path.write_text(source)
    pk, vk, report = adapter.setup(path)
    return adapter.verify(vk, adapter.prove(pk, inputs), public)[0], report


def _tamper(source: str, old: str, new: str) -> str:
    assert source.count(old) >= 1, old
    return source.replace(old, new)


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    spec = tiny_ce_spec(learning_rate=LR)
    w, x, y, w_after = honest_ce_step(spec, seed=3, labels=LABELS)
    source = spec.circuit_source()
    ok, report = _proves(tmp_path_factory.mktemp("honest"), "honest", source, sgd_signals(w, x, y, w_after), spec.commitments(sgd_integers(w, x, y, w_after)).public_inputs())
    assert ok
    return spec, (w, x, y, w_after), source, report


@pytest.mark.parametrize(("what", "hints", "forged_p", "forged_hot", "guard"), FORGERIES, ids=[f[0].split(" (")[0] for f in FORGERIES])
def test_a_forged_cross_entropy_witness_has_no_proof_without_its_guard_it_has(honest, what, hints, forged_p, forged_hot, guard, tmp_path, monkeypatch):
    spec, (w, x, y, w_after), source, honest_report = honest
    forged = _forged_step(spec, w, x, y, forged_p, forged_hot, monkeypatch)
    assert not np.array_equal(forged, w_after), f"{what}: the forgery does not change W_t+1"
    claimed = spec.commitments(sgd_integers(w, x, y, forged)).public_inputs()  # the committed batch: the true labels
    inputs = sgd_signals(w, x, y, forged)
    tampered = source
    for old, new in hints:
        tampered = _tamper(tampered, old, new)
    ok, report = _proves(tmp_path, "tampered", tampered, inputs, claimed)
    assert report.to_dict() == honest_report.to_dict()  # only hints changed: the same constraint system
    assert not ok, f"CRITICAL: {what} proves a false step"
    weakened, _ = _proves(tmp_path, "weakened", _tamper(tampered, *guard), inputs, claimed)
    assert weakened, f"{what}: the forgery is not what {guard[0]!r} refuses"


def test_the_clamp_is_pinned_at_its_boundary_and_its_free_inverse_hint_changes_nothing(tmp_path):
    """At m - z = 16 S - 1 (not clamped) and 16 S (clamped) only the honest clamp bit proves:
    H = 0 forces c = H i = 0, H != 0 forces c = 1. Where H = 0 the inverse hint i is free (any i
    gives c = 0): a second witness with every output of the row -- hence delta and W_t+1 -- the
    honest one. (The one other free hint of the circuit, ReLU's inverse of z at z = 0, is
    multiplied by 0.)"""
    row = np.array([[20000, 20000 - (LIMIT - 1), 20000 - LIMIT]])
    trace = softmax_trace(row, 12)
    assert trace.clamped[0].tolist() == [0, 0, 1]
    outputs = [trace.row_max, trace.clamped, trace.exp, trace.total, trace.reciprocal, trace.probabilities, trace.remainders]
    public = [int(v) % FIELD_MODULUS for v in np.concatenate([np.asarray(o).reshape(-1) for o in outputs])]
    honest = gadget_source("component main = SoftmaxRow(3, 12, 24);", softmax_templates(3, 12))
    inverse = "clampInverse[k] <-- high != 0 ? 1 / high : 0;"
    for k, bit in ((1, 1), (2, 0)):
        source = _tamper(honest, CLAMP_HINT, f"clamped[k] <-- k == {k} ? {bit} : (high != 0 ? 1 : 0);")
        source = _tamper(source, inverse, f"clampInverse[k] <-- k == {k} ? 0 : (high != 0 ? 1 / high : 0);")
        ok, _ = _proves(tmp_path, f"boundary{k}", source, {"z": row[0].tolist()}, public)
        assert not ok, (k, bit)
    ok, _ = _proves(tmp_path, "inverse", _tamper(honest, inverse, "clampInverse[k] <-- high != 0 ? 1 / high : 5;"), {"z": row[0].tolist()}, public)
    assert ok
