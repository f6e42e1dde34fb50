"""The commitments the ``zk-halo2`` circuit exposes, computed natively for every step.

A tensor is encoded at the spec's ``scale`` (:func:`pot_zk.kinds.encoding.to_fixed_point`,
range-checked against the spec's ``value_bound``) and committed as ezkl's Poseidon hash of the
sequence of integers as BN254 field elements (negative q as p - |q|) -- the value the circuit
exposes for its hashed inputs, so commitments recorded for unproven steps chain with proven
ones.

Poseidon commitments are binding, not hiding: there is no blinding randomness, so anyone
holding a candidate W can test whether it matches a commitment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from pot_zk.backends.ezkl import adapter as ezkl_adapter
from pot_zk.kinds.encoding import from_fixed_point, to_fixed_point


@dataclass(frozen=True)
class PoseidonPerValue:
    """One Poseidon hash over the fixed-point values of a tensor, at ``scale`` bits, every
    value within ``bound``."""

    scale: int
    bound: float

    def tensor(self, name: str) -> "PoseidonPerValue":
        """Every tensor on the one grid."""
        return self

    def snap(self, values: torch.Tensor, what: str) -> torch.Tensor:
        return from_fixed_point(to_fixed_point(values, self.scale, self.bound, what), self.scale)

    def commit(self, values: torch.Tensor, what: str) -> str:
        return ezkl_adapter.poseidon_commit(to_fixed_point(values, self.scale, self.bound, what))

    @staticmethod
    def is_commitment(text: object) -> bool:
        """``text`` is a commitment as :meth:`commit` writes it: a field element in ezkl's
        form, 64 lowercase hex digits of its 32 little-endian bytes."""
        if not isinstance(text, str) or re.fullmatch("[0-9a-f]{64}", text) is None:
            return False
        return int.from_bytes(bytes.fromhex(text), "little") < ezkl_adapter._FIELD_MODULUS
