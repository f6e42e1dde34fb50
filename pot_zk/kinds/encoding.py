"""Canonical fixed-point encoding of a step's tensors, and the record of their commitments.

Encoding (docs/proofs.md): a float tensor is flattened in its step kind's canonical order
(:meth:`~pot_zk.kinds.base.StepKind.encode`: parameters layer by layer, weight row-major then
bias; a batch as X row-major then Y row-major) and each value v becomes the integer
``q = sign(v) * floor(|v| * 2**scale + 1/2)`` (round half away from zero). How the integers are
committed is the prover backend's (:meth:`pot_zk.backends.base.ProverBackend.commitments`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from pot_zk.exceptions import WitnessBuilderError


@dataclass(frozen=True)
class StepCommitment:
    """Commitments of W_t, batch_t and W_t+1 (hex field elements), and of what else the step's
    statement hashes.

    For a LoRA step W_t and W_t+1 are the adapters and ``base`` commits to the frozen base
    weights; a momentum step also commits to the velocity V_t (``v_before``) and V_t+1
    (``v_after``), an Adam step to its first moments (``m_before``, ``m_after``), second moments
    (``v_before``, ``v_after``) and step counts (``t_before``, ``t_after``). A step of a scheduled
    run (a statement whose rate is public) has its ``learning_rate``, a public value of its proof.
    Fields a statement does not have are None and absent from ``to_dict()``.
    """

    w_before: str
    batch: str
    w_after: str
    scale: int
    base: str | None = None
    v_before: str | None = None
    v_after: str | None = None
    m_before: str | None = None
    m_after: str | None = None
    t_before: str | None = None
    t_after: str | None = None
    learning_rate: float | None = None

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict) -> "StepCommitment":
        optional = {key: None if data.get(key) is None else str(data[key]) for key in OPTIONAL_FIELDS}
        rate = None if data.get("learning_rate") is None else float(data["learning_rate"])
        return cls(
            w_before=str(data["w_before"]), batch=str(data["batch"]), w_after=str(data["w_after"]), scale=int(data["scale"]),
            learning_rate=rate, **optional,
        )


OPTIONAL_FIELDS = ("base", "v_before", "v_after", "m_before", "m_after", "t_before", "t_after")


def to_fixed_point(values: torch.Tensor, scale: int, bound: float | None = None, what: str = "values") -> list[int]:
    """Quantise ``values`` (round half away from zero) after checking they fit ``bound``."""
    flat = values.detach().reshape(-1).to(torch.float64)
    if flat.numel() and not bool(torch.isfinite(flat).all()):  # NaN compares as in range; its int64 is garbage
        raise WitnessBuilderError(f"{what} are not finite (NaN or inf): no fixed-point value", expected="finite values", actual="NaN or inf")
    if bound is not None and flat.numel() and float(flat.abs().max()) > bound:
        worst = float(flat.abs().max())
        raise WitnessBuilderError(
            f"{what} exceed the fixed-point range: max |value| {worst:.6g} > {bound:.6g}",
            expected=f"|value| <= {bound:.6g}",
            actual=worst,
        )
    scaled = flat * (2.0**scale)
    return [int(v) for v in (torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)).to(torch.int64).tolist()]


def from_fixed_point(values: list[int], scale: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64) / (2.0**scale)
