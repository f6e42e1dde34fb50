"""Freivalds' check of matrix products, and the per-kind product checks of ``freivalds``.

A step kind that ``freivalds`` certifies has a :class:`ProductChecks` registered here under its
kind name: which products its certificate reveals, how the verifier checks them, and the update
they imply.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from pot_zk.core.registry import Registry
from pot_zk.exceptions import ProofVerificationError

Term = tuple[float, torch.Tensor, torch.Tensor]


class ProductChecks(Protocol):
    def expected_shapes(self, spec: Any) -> dict[str, tuple[int, ...]]:
        """The revealed products by name (the step kind's ``backprop`` names) and shape."""

    def check_products(self, spec: Any, tensors: dict[str, torch.Tensor], generator: torch.Generator, roundoff: float) -> None:
        """Verifier side: every revealed product, projected on fresh Gaussian vectors."""

    def update_residual(self, spec: Any, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """W_t+1 minus the update the (checked) products imply."""


PRODUCT_CHECKS: Registry[ProductChecks] = Registry(
    "freivalds product check",
    "circuit.kind",
    {
        "sgd": "pot_zk.backends.certificates.sgd_freivalds:SGD_PRODUCTS",
        "lora": "pot_zk.backends.certificates.lora_freivalds:LORA_PRODUCTS",
        "momentum": "pot_zk.backends.certificates.sgd_freivalds:MOMENTUM_PRODUCTS",
    },
)


def check_projection(name: str, lhs: torch.Tensor, terms: list[Term], r: torch.Tensor, roundoff: float) -> None:
    """Is lhs == sum(coef * left @ right), seen through r? Up to float64 round-off: ``2 roundoff``
    times the terms' products taken in absolute value, the verifier's side (an honest lhs is at
    most that in absolute value, so its own rounding is covered too). Never a bound from lhs, the
    revealed side: a review forged certificates with one revealed row near the largest float64,
    whose absolute products overflowed such a bound to inf and blinded every check the row
    touched. got, want and the bound must be finite (a term overflowing is refused too); a
    constant offset such as a bias is one more term (``ones @ bias``), so its rounding is in the
    bound."""
    got = lhs @ r
    want = sum(coef * (left @ (right @ r)) for coef, left, right in terms)
    size = sum(abs(coef) * (left.abs() @ (right.abs() @ r.abs())) for coef, left, right in terms)
    bound = 2 * roundoff * size + 1e-300
    if not (bool(torch.isfinite(got).all()) and bool(torch.isfinite(want).all()) and bool(torch.isfinite(bound).all())):
        raise ProofVerificationError(f"freivalds: product {name} is not finite in float64", reason="product-check-failed", product=name)
    if not bool(((got - want).abs() <= bound).all()):
        raise ProofVerificationError(f"freivalds: product {name} does not hold", reason="product-check-failed", product=name)


def offset(bias: torch.Tensor, rows: int) -> Term:
    """``bias`` added to each of ``rows`` rows, as a term of :func:`check_projection`."""
    return (1.0, torch.ones(rows, 1, dtype=bias.dtype), bias.reshape(1, -1))
