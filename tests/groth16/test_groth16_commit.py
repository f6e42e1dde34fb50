"""Native commitments of the zk-groth16 circuit (the circuit side is in test_groth16_proofs)."""

from __future__ import annotations

import numpy as np
import pytest

from pot_zk.backends.groth16 import commit
from pot_zk.backends.groth16.integers import FIELD_MODULUS
from pot_zk.exceptions import ProofVerificationError, WitnessBuilderError


def test_light_poseidon_is_circomlibs_poseidon():
    # circomlib / circomlibjs test vectors for Poseidon with 2 inputs
    assert commit.poseidon2(1, 2) == 7853200120776062878684798364095072458815029376092732009249414926327459813530
    assert commit.poseidon2(0, 0) == 14744269619966411208579211824598458697587494354926760081771325075741142829156


def test_poseidon_refuses_values_light_poseidon_would_reduce_silently():
    with pytest.raises(ValueError):
        commit.poseidon2(FIELD_MODULUS, 0)


def test_packing_is_little_endian_and_offset():
    assert commit.packing_width(16) == 14
    elements = commit.pack(np.array([-(2**15), 0, 1] + [0] * 12), 16)
    assert elements[0] == 0 + (2**15 << 16) + ((2**15 + 1) << 32) + sum(2**15 << (16 * j) for j in range(3, 14))
    assert elements[1] == 2**15
    assert all(e < 2**253 for e in commit.pack(np.full(30, 2**15 - 1), 16))


def test_commitment_is_the_poseidon_chain_over_length_and_elements():
    values = np.arange(-20, 10)
    elements = commit.pack(values, 16)
    state = len(values)
    for element in elements:
        state = commit.poseidon2(state, element)
    assert commit.commit_values(values, 16) == f"0x{state:064x}"


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

