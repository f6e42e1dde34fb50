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
    """Is lhs == sum(coef * left @ right), seen through r? Up to float64 round-off: ``roundoff``
    times the same products taken in absolute value."""
    got = lhs @ r
    want = sum(coef * (left @ (right @ r)) for coef, left, right in terms)
    size = sum(abs(coef) * (left.abs() @ (right.abs() @ r.abs())) for coef, left, right in terms)
    bound = roundoff * (size + lhs.abs() @ r.abs()) + 1e-300
    if not bool(((got - want).abs() <= bound).all()):
        raise ProofVerificationError(f"freivalds: product {name} does not hold", reason="product-check-failed", product=name)
