"""Native commitments of the zk-groth16 circuit, and (real engine) that the circuit's
PackedCommitment outputs exactly them for every Poseidon call width the chain uses."""

from __future__ import annotations

import numpy as np
import pytest

from pot_zk.backends.groth16 import adapter, commit
from pot_zk.backends.groth16.circuit_writer import gadget_source
from pot_zk.backends.groth16.integers import FIELD_MODULUS
from pot_zk.exceptions import ProofVerificationError, WitnessBuilderError


CIRCOMLIBJS = {
    (1, 2): 7853200120776062878684798364095072458815029376092732009249414926327459813530,
    (0, 0): 14744269619966411208579211824598458697587494354926760081771325075741142829156,
    (1, 2, 3, 4, 5): 6183221330272524995739186171720101788151706631170188140075976616310159254464,
    tuple(range(1, 13)): 2501997477381648492950318384533644783248002172679259592360114615426357826485,
    (2**200, 3): 14729514581746019545001751897547242947825852417646835725652345253970364459799,
}
"""Poseidon of circomlibjs (poseidon-lite 0.3.0, run with node), for 2, 5 and 12 inputs and
an input wider than 64 bits."""


@pytest.mark.parametrize("inputs", list(CIRCOMLIBJS), ids=lambda inputs: f"{len(inputs)} inputs")
def test_light_poseidon_is_circomlibs_poseidon(inputs):
    assert commit.poseidon(list(inputs)) == CIRCOMLIBJS[inputs]


@pytest.mark.parametrize("inputs", [[FIELD_MODULUS, 0], [], list(range(13))])
def test_poseidon_refuses_non_field_elements_and_widths_it_does_not_have(inputs):
    with pytest.raises(ValueError):
        commit.poseidon(inputs)


def test_packing_is_little_endian_and_offset():
    assert commit.packing_width(16) == 14
    elements = commit.pack(np.array([-(2**15), 0, 1] + [0] * 12), 16)
    assert elements[0] == 0 + (2**15 << 16) + ((2**15 + 1) << 32) + sum(2**15 << (16 * j) for j in range(3, 14))
    assert elements[1] == 2**15
    assert all(e < 2**253 for e in commit.pack(np.full(30, 2**15 - 1), 16))


def test_commitment_is_the_poseidon_chain_over_length_and_eleven_elements_per_call():
    values = np.arange(-200, 150)  # 350 values, 25 elements: calls of 11, 11 and 3
    elements = commit.pack(values, 16)
    assert len(elements) == 25
    state = commit.poseidon([len(values), *elements[:11]])
    state = commit.poseidon([state, *elements[11:22]])
    state = commit.poseidon([state, *elements[22:]])
    assert commit.commit_values(values, 16) == f"0x{state:064x}"


@pytest.mark.prover
def test_light_poseidon_equals_circomlib_s_template_at_every_width_a_chain_call_can_have(tmp_path):
    """Poseidon(n) for n = 1..12 in one circuit, with inputs up to p - 1: the proof verifies with
    light-poseidon's outputs as its public values, and not with one of them moved."""
    widths = range(1, commit.ABSORB + 2)
    rng = np.random.default_rng(12)
    inputs = [[int(v) for v in rng.integers(0, 2**62, n)] for n in widths]
    inputs[-1][-1] = FIELD_MODULUS - 1
    main = "\n".join(
        ["template Widths() {"]
        + [f"    signal input in{n}[{n}]; signal output out{n}; component h{n} = Poseidon({n}); "
           f"for (var i = 0; i < {n}; i++) {{ h{n}.inputs[i] <== in{n}[i]; }} out{n} <== h{n}.out;" for n in widths]
        + ["}", "component main = Widths();"]
    )
    (tmp_path / "widths.circom").write_text(gadget_source(main))
    pk, vk, _ = adapter.setup(tmp_path / "widths.circom")
    proof = adapter.prove(pk, {f"in{n}": values for n, values in zip(widths, inputs)})
    native = [commit.poseidon(values) for values in inputs]
    assert adapter.verify(vk, proof, native) == (True, None)
    assert adapter.verify(vk, proof, native[:-1] + [(native[-1] + 1) % FIELD_MODULUS])[0] is False


@pytest.mark.prover
@pytest.mark.parametrize("count", [1, 14 * 11, 350], ids=["one value", "one full call", "three calls"])
def test_the_circuit_commits_exactly_as_the_native_code(count, tmp_path):
    """PackedCommitment (one Poseidon(2); one Poseidon(12); Poseidon(12) twice then Poseidon(4))
    proves with the native commitment as its public output, and not with that output + 1."""
    values = np.random.default_rng(count).integers(-(2**15), 2**15, count)
    main = f"component main = PackedCommitment({count}, 16, {commit.packing_width(16)});"
    (tmp_path / "commit.circom").write_text(gadget_source(main))
    pk, vk, _ = adapter.setup(tmp_path / "commit.circom")
    proof = adapter.prove(pk, {"in": values.tolist()})
    native = commit.parse_field(commit.commit_values(values, 16))
    assert adapter.verify(vk, proof, [native]) == (True, None)
    assert adapter.verify(vk, proof, [(native + 1) % FIELD_MODULUS])[0] is False


def test_commitments_differ_for_different_values_lengths_and_widths():
    base = np.zeros(14, dtype=np.int64)
    moved = base.copy()
    moved[13] = 1
    commitments = {
        commit.commit_values(base, 16),
        commit.commit_values(moved, 16),
        commit.commit_values(base[:13], 16),
        commit.commit_values(np.zeros(15, dtype=np.int64), 16),
        commit.commit_values(base, 17),
    }
    assert len(commitments) == 5


def test_values_outside_the_range_are_not_committed():
    with pytest.raises(WitnessBuilderError):
        commit.commit_values(np.array([2**15]), 16, "weights after the step")


@pytest.mark.parametrize("text", ["0x" + "0" * 63, "0X" + "0" * 64, "0x" + "A" * 64, f"0x{FIELD_MODULUS:064x}", 5])
def test_only_canonical_field_elements_parse(text):
    with pytest.raises(ProofVerificationError) as caught:
        commit.parse_field(text)
    assert caught.value.reason == "malformed-commitment"

