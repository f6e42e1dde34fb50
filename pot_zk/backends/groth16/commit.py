"""Commitments the ``zk-groth16`` circuit exposes, computed natively (docs/groth16.md).

A tensor of n signed values v (each in the signed ``value_bits`` range, which the circuit
range-checks) is committed as follows:

1. shift: ``u = v + 2**(value_bits-1)``, so ``0 <= u < 2**value_bits``;
2. pack ``k = floor(253 / value_bits) - 1`` values per field element, little-endian:
   ``e_i = sum_j u[i*k + j] * 2**(value_bits*j)``; the last element holds the remainder
   (missing slots are 0). Each ``e_i < 2**(k*value_bits) <= 2**253 < p``, so the packing is
   injective on range-checked values (k is one below the most that fits: a spare slot);
3. hash chain with circomlib's Poseidon, up to :data:`ABSORB` elements per call:
   ``h_0 = n``, ``h_{i+1} = Poseidon(h_i, e_{11 i}, ..., e_{11 i + 10})`` (the last call takes
   the elements left, so it is ``Poseidon(m + 1)`` for its m elements); the commitment is the
   last h, written as ``0x`` followed by 64 lowercase hex digits.

The length n in h_0 fixes the number of elements and calls, so the chain is unambiguous and
separates tensors of different sizes. The commitment is binding, not hiding: there is no
blinding value, so anyone holding a candidate tensor can test it. Natively, Poseidon is
light-poseidon's (the audited Rust crate, circomlib's constants for 1 to 12 inputs; tests prove
the circuit's output equals it for every call width used).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from light_poseidon_python import Hasher

from pot_zk.backends.groth16.integers import FIELD_MODULUS, check_range
from pot_zk.exceptions import ProofVerificationError

ABSORB = 11
"""Packed elements per Poseidon call besides the chain value: Poseidon(12), the widest
light-poseidon computes (circomlib's template costs 504 constraints for 12 inputs, 240 for 2)."""


def packing_width(value_bits: int) -> int:
    """Values per field element: one below the most that fit in 253 bits."""
    return 253 // value_bits - 1


def pack(values: np.ndarray, value_bits: int) -> list[int]:
    """Range-checked signed values -> field elements (step 1 and 2 above)."""
    width = packing_width(value_bits)
    shifted = [int(v) + 2 ** (value_bits - 1) for v in np.asarray(values, dtype=np.int64).reshape(-1)]
    elements = []
    for start in range(0, len(shifted), width):
        element = 0
        for slot, u in enumerate(shifted[start : start + width]):
            element |= u << (value_bits * slot)
        elements.append(element)
    return elements


def poseidon(inputs: list[int]) -> int:
    """circomlib's Poseidon(len(inputs)), 1 to 12 field elements in [0, p)."""
    if not 1 <= len(inputs) <= ABSORB + 1 or not all(0 <= v < FIELD_MODULUS for v in inputs):
        raise ValueError(f"Poseidon takes 1 to {ABSORB + 1} field elements in [0, p)")
    return int(Hasher(len(inputs)).hash_bytes_be([v.to_bytes(32, "big") for v in inputs]), 16)


def chain(count: int, elements: list[int]) -> int:
    """h_0 = count, then one Poseidon call per :data:`ABSORB` elements (step 3 above)."""
    state = count
    for start in range(0, len(elements), ABSORB):
        state = poseidon([state, *elements[start : start + ABSORB]])
    return state


def commit_values(values: np.ndarray, value_bits: int, what: str = "values") -> str:
    """The commitment of a flat tensor of signed integers (range-checked first)."""
    flat = np.asarray(values, dtype=np.int64).reshape(-1)
    check_range(flat, value_bits, what)
    return format_field(chain(flat.size, pack(flat, value_bits)))


def format_field(value: int) -> str:
    return f"0x{value:064x}"


def parse_field(text: str, what: str = "commitment") -> int:
    """A canonical commitment string (``0x`` + 64 lowercase hex digits, value < p) as an int."""
    digits = text[2:] if isinstance(text, str) and text.startswith("0x") else None
    if digits is None or len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise ProofVerificationError(f"{what} is not 0x followed by 64 lowercase hex digits: {text!r}", reason="malformed-commitment")
    value = int(digits, 16)
    if value >= FIELD_MODULUS:
        raise ProofVerificationError(f"{what} is not a field element (>= p)", reason="malformed-commitment")
    return value


@dataclass(frozen=True)
class StepCommitments:
    """The public values of a ``zk-groth16`` proof by name, in the statement's public-input
    order (``public_names``: ``w_before``, ``batch``, ``w_after``, then e.g. LoRA's ``base`` --
    for a LoRA step ``w_before``/``w_after`` commit to the adapters)."""

    values: Mapping[str, str]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.values)

    def public_inputs(self) -> list[int]:
        return [parse_field(value, name) for name, value in self.values.items()]

    def to_dict(self) -> dict[str, str]:
        return dict(self.values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], names: tuple[str, ...]) -> "StepCommitments":
        """The commitments ``names`` (in that order) of a record; KeyError when one is missing."""
        return cls({name: str(data[name]) for name in names})
