"""The softmax and one-hot templates of the zk-groth16 cross-entropy circuit, with the real engine:
the circuit computes exactly softmax_trace's intermediates, and each tampered intermediate (a
cheating prover's own witness generator, same constraints) has no valid proof -- while the same
tampered witness proves once the constraint that guards it is removed (so each test would fail
without its constraint)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pot_zk.backends.groth16 import adapter
from pot_zk.backends.groth16.circuit_writer import gadget_source
from pot_zk.backends.groth16.softmax_circom import softmax_templates
from pot_zk.backends.groth16.integers import FIELD_MODULUS
from pot_zk.kinds.exact_softmax import EXP_RANGE, LOG2E, softmax_trace

pytestmark = pytest.mark.prover

SCALE, QB = 12, 24
ROW = [20000, 19999, 20000 - EXP_RANGE * 4096 - 7000, 5000]
"""The max and max - 1 (a max one below a logit still equals a logit), one clamped logit, one not."""


def _field(values) -> list[int]:
    return [int(v) % FIELD_MODULUS for v in values]


def _proves(tmp_path: Path, name: str, source: str, inputs: dict, public: list[int]) -> bool:
    (tmp_path / f"{name}.circom").write_text(source)
    pk, vk, _ = adapter.setup(tmp_path / f"{name}.circom")
    return adapter.verify(vk, adapter.prove(pk, inputs), public)[0]


def test_the_circuit_computes_exactly_softmax_trace_s_intermediates(tmp_path):
    rng = np.random.default_rng(5)
    row = np.concatenate([np.round(rng.uniform(-6, 6, 9) * 2**SCALE), [-60 * 2**SCALE]]).astype(np.int64)
    trace = softmax_trace(row[None, :], SCALE)
    assert trace.shifted[0, -1] == -EXP_RANGE * 2**SCALE  # the clamp is exercised
    outputs = [
        trace.row_max, trace.shifted[0], trace.whole[0], trace.fraction[0], trace.power[0], trace.exp[0],
        trace.total, trace.probabilities[0], trace.remainders[0],
    ]
    public = _field(np.concatenate([np.asarray(o).reshape(-1) for o in outputs]))
    (tmp_path / "row.circom").write_text(gadget_source(f"component main = SoftmaxRow(10, {SCALE}, {QB});", softmax_templates(10, SCALE)))
    pk, vk, report = adapter.setup(tmp_path / "row.circom")
    proof = adapter.prove(pk, {"z": row.tolist()})
    assert adapter.verify(vk, proof, public) == (True, None)  # every intermediate is the reference's
    for index in range(len(public)):
        moved = list(public)
        moved[index] = (moved[index] + 1) % FIELD_MODULUS
        assert adapter.verify(vk, proof, moved)[0] is False
    assert report.public_outputs == len(public)


SEALED = f"""
template Sealed() {{
    signal input z[{len(ROW)}];
    component row = SoftmaxRow({len(ROW)}, {SCALE}, {QB});
    for (var k = 0; k < {len(ROW)}; k++) {{ row.z[k] <== z[k]; }}
}}
component main {{public [z]}} = Sealed();
"""

E_HINT = "e[k] <-- power[k] \\ shift;"
P_HINT = "p[k] <-- (e[k] * 2 ** SB + half) \\ total;"
REM_HINT = "rem[k] <-- (e[k] * 2 ** SB + half) % total;"
T_HINT = f"-u[k] * {LOG2E}"

# (tampered intermediate, the witness generator's changes, the constraints that refuse it)
ROW_TAMPERS = [
    ("max above every logit", [("m <-- best;", "m <-- best + 1;")], [("gap[C - 1] === 0;", "")]),
    (
        "max below a logit (equal to another), refused twice: m >= z_k, and u > 0 has no split of -u log2(e)",
        [("m <-- best;", "m <-- best - 1;")],
        [("below[k].in <== m - z[k];", "below[k].in <== 0;"), ("wholeBits[k].in <== whole[k];", "wholeBits[k].in <== 0;")],
    ),
    (
        "an unclamped logit clamped",
        [("clamped[k] <-- z[k] - m < -LIMIT ? 1 : 0;", "clamped[k] <-- k == 1 ? 1 : (z[k] - m < -LIMIT ? 1 : 0);")],
        [("branch[k].in <== z[k] - m + LIMIT + 2 * side[k];", "branch[k].in <== 0;")],
    ),
    (
        "a clamped logit not clamped",
        [("clamped[k] <-- z[k] - m < -LIMIT ? 1 : 0;", "clamped[k] <-- 0;")],
        [("branch[k].in <== z[k] - m + LIMIT + 2 * side[k];", "branch[k].in <== 0;")],
    ),
    (
        "fraction one too large (negative tail)",
        [
            (f"fraction[k] <-- (({T_HINT}) % (2 ** T)) \\ (2 ** FB);", f"fraction[k] <-- (({T_HINT}) % (2 ** T)) \\ (2 ** FB) + 1;"),
            (f"tail[k] <-- ({T_HINT}) % (2 ** FB);", f"tail[k] <-- ({T_HINT}) % (2 ** FB) - 2 ** FB;"),
        ],
        [("tailBits[k].in <== tail[k];", "tailBits[k].in <== 0;")],
    ),
    (
        "a Horner remainder out of range",
        [
            ("z <-- (acc + offset) \\ (2 ** k) - offset \\ (2 ** k) + add;", "z <-- (acc + offset) \\ (2 ** k) - offset \\ (2 ** k) + add - 1;"),
            ("r <-- (acc + offset) % (2 ** k);", "r <-- (acc + offset) % (2 ** k) + 2 ** k;"),
        ],
        [("remainder.in <== r;", "remainder.in <== 0;")],
    ),
    (
        "exp one too large (negative dropped bits)",
        [(E_HINT, E_HINT[:-1] + " + (k == 0 ? 1 : 0);"), ("dropped[k] <-- power[k] % shift;", "dropped[k] <-- power[k] % shift - (k == 0 ? shift : 0);")],
        [("droppedBits[k].in <== dropped[k];", "droppedBits[k].in <== 0;")],
    ),
    (
        "exp one too small (dropped bits >= the shift)",
        [(E_HINT, E_HINT[:-1] + " - (k == 0 ? 1 : 0);"), ("dropped[k] <-- power[k] % shift;", "dropped[k] <-- power[k] % shift + (k == 0 ? shift : 0);")],
        [("droppedGap[k].in <==", "droppedGap[k].in <== 0; //")],
    ),
    (
        "p one too large (negative remainder)",
        [(P_HINT, P_HINT[:-1] + " + (k == 0 ? 1 : 0);"), (REM_HINT, REM_HINT[:-1] + " - (k == 0 ? total : 0);")],
        [("remBits[k].in <== rem[k];", "remBits[k].in <== 0;")],
    ),
    (
        "p one too small (remainder >= Z)",
        [(P_HINT, P_HINT[:-1] + " - (k == 0 ? 1 : 0);"), (REM_HINT, REM_HINT[:-1] + " + (k == 0 ? total : 0);")],
        [("remGap[k].in <==", "remGap[k].in <== 0; //")],
    ),
    (
        "p a field element, not the quotient (remainder + 1)",
        [
            (f"        {P_HINT}\n        {REM_HINT}", f"        {REM_HINT[:-1]} + (k == 0 ? 1 : 0);\n        p[k] <-- (e[k] * 2 ** SB + half - rem[k]) / total;"),
        ],
        [("pBits[k].in <== p[k];", "pBits[k].in <== 0;"), ("pGap[k].in <==", "pGap[k].in <== 0; //")],
    ),
]
"""Everything after a tampered value is derived from it by the same hints (e and p from the
tampered m, p as ``(num - rem) / Z`` in the field from a tampered remainder), as a cheater's
witness generator would; only the named constraint stands in the way."""


def _tamper(source: str, old: str, new: str) -> str:
    assert old in source, old
    return source.replace(old, new)


@pytest.mark.parametrize(("what", "tampers", "guards"), ROW_TAMPERS, ids=[t[0].split(",")[0] for t in ROW_TAMPERS])
def test_a_tampered_softmax_intermediate_has_no_proof_without_its_constraint_it_has(what, tampers, guards, tmp_path):
    honest = gadget_source(SEALED, softmax_templates(len(ROW), SCALE))
    inputs, public = {"z": ROW}, _field(ROW)
    assert _proves(tmp_path, "honest", honest, inputs, public)
    tampered = honest
    for old, new in tampers:
        tampered = _tamper(tampered, old, new)
    assert not _proves(tmp_path, "tampered", tampered, inputs, public), what
    weakened = tampered
    for old, new in guards:
        weakened = _tamper(weakened, old, new)
    assert _proves(tmp_path, "weakened", weakened, inputs, public), f"{what}: the tamper is not what the constraint refuses"


LABEL_MAIN = "component main {public [label]} = OneHotLabel(3, 12);"
"""The one-hot bits are public outputs, so the engine cannot drop them: a tampered witness
generator's bits are the ones the constraints see (signals fixed by linear constraints alone are
substituted away, and their hints then never reach the proof)."""

LABEL_TAMPERS = [
    ("another class than the committed label", 4096, [0, 0, 1], ("label == k * 2 ** SB ? 1 : 0", "label == (k - 1) * 2 ** SB ? 1 : 0"), ("weighted === label;", "")),
    ("no class at all (label 0)", 0, [0, 0, 0], ("label == k * 2 ** SB ? 1 : 0", "0"), ("count === 1;", "")),
]


@pytest.mark.parametrize(("what", "label", "hot", "tamper", "guard"), LABEL_TAMPERS, ids=[t[0] for t in LABEL_TAMPERS])
def test_a_one_hot_that_is_not_the_committed_label_has_no_proof(what, label, hot, tamper, guard, tmp_path):
    honest = gadget_source(LABEL_MAIN, softmax_templates(3, SCALE))
    assert _proves(tmp_path, "honest", honest, {"label": label}, [int(k * 4096 == label) for k in range(3)] + [label])
    tampered = _tamper(honest, *tamper)
    assert not _proves(tmp_path, "tampered", tampered, {"label": label}, hot + [label]), what
    assert _proves(tmp_path, "weakened", _tamper(tampered, *guard), {"label": label}, hot + [label])


def test_a_label_off_the_class_grid_has_no_proof(tmp_path):
    source = gadget_source(LABEL_MAIN, softmax_templates(3, SCALE))
    assert not any(_proves(tmp_path, "off_grid", source, {"label": 4097}, hot + [4097]) for hot in ([1, 0, 0], [0, 1, 0], [0, 0, 0]))
