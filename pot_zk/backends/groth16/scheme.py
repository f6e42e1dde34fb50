"""The ``zk-groth16`` commitment scheme on torch tensors: what a run records for every step.

A tensor is put on the statement's grid (each value rounded half away from zero at ``scale``
bits, :func:`~pot_zk.backends.groth16.integers.quantise_batch`), range-checked to the signed
``value_bits`` range and committed with :func:`~pot_zk.backends.groth16.commit.commit_values`
(Poseidon(2) chain over packed limbs): exactly the public outputs of the circuit for the same
integers, so commitments of unproven steps chain with proven ones. Weights of an exact-mode
run are on the grid already (rounding leaves them unchanged); batch values are rounded, as the
prover rounds them. A statement may keep some state on a grid of its own (AdamW's moments
and step count: :attr:`~pot_zk.backends.groth16.statement.Groth16Statement.tensor_grids`):
:meth:`PackedPoseidon.tensor` is the scheme of such a tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from pot_zk.backends.groth16.commit import commit_values, parse_field
from pot_zk.backends.groth16.integers import dequantise, quantise_batch
from pot_zk.exceptions import ProofVerificationError


@dataclass(frozen=True)
class PackedPoseidon:
    """Commitments of values on the 2**-``scale`` grid, each within ``value_bits`` signed bits."""

    scale: int
    value_bits: int
    grids: tuple[tuple[str, tuple[int, int]], ...] = ()
    """(name, (scale, value_bits)) of the tensors committed on another grid."""

    def tensor(self, name: str) -> "PackedPoseidon":
        grid = dict(self.grids).get(name)
        return self if grid is None else replace(self, scale=grid[0], value_bits=grid[1], grids=())

    def integers(self, values: torch.Tensor, what: str) -> np.ndarray:
        """The flat integers a commitment binds (WitnessBuilderError naming ``what`` when a
        value is not finite or does not fit)."""
        return quantise_batch(values.detach().to(torch.float64).reshape(-1).numpy(), self.scale, self.value_bits, what)

    def snap(self, values: torch.Tensor, what: str) -> torch.Tensor:
        """``values`` rounded onto the grid, float64, same shape."""
        return torch.from_numpy(dequantise(self.integers(values, what), self.scale)).reshape(values.shape)

    def commit(self, values: torch.Tensor, what: str) -> str:
        return commit_values(self.integers(values, what), self.value_bits, what)

    @staticmethod
    def is_commitment(text: object) -> bool:
        """``text`` is a commitment as :meth:`commit` writes it: ``0x``, 64 lowercase hex digits,
        a field element."""
        try:
            parse_field(text)  # type: ignore[arg-type]
        except ProofVerificationError:
            return False
        return True
