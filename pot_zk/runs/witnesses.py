"""Which step witnesses a run keeps, so that an auditor can challenge any committed step later.

Size rule (``witness.retain=auto``, the default): every step's witness stays in the bundle's
``witness/`` directory when one step's witness is at most ``witness.max_step_bytes`` (default
1 MiB), estimated as 8 bytes per value of the statement's inputs (W_t, batch, W_t+1 and, for
LoRA, the frozen base: ``Statement.input_sizes``). Otherwise only the policy's steps keep
theirs, until their proof is final, and the unproven steps cannot be answered when
challenged (``pot-zk challenge`` and ``pot-zk respond`` say so). The manifest declares the
choice (``witnesses``), so the auditor knows before challenging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from pot_zk.exceptions import ConfigurationError

if TYPE_CHECKING:  # imports torch: `pot-zk challenge` reads a run's retention without it
    from pot_zk.backends.base import Statement

RETAIN_SETTINGS = ("auto", "all", "scheduled")
BYTES_PER_VALUE = 8


@dataclass(frozen=True)
class WitnessRetention:
    retained: str
    """``all`` (every step's witness is kept) or ``scheduled`` (only the policy's, until proven)."""
    step_bytes: int
    """Estimated size of one step's witness."""
    rule: str
    """How the choice was made, for people."""

    @property
    def keeps_all(self) -> bool:
        return self.retained == "all"

    def to_dict(self) -> dict[str, Any]:
        return {"retained": self.retained, "step_bytes": self.step_bytes, "rule": self.rule}


def step_witness_bytes(spec: Statement) -> int:
    return BYTES_PER_VALUE * sum(spec.input_sizes().values())


def witness_retention(spec: Statement, retain: str, max_step_bytes: int) -> WitnessRetention:
    """Apply the size rule to ``spec`` under the ``witness.retain`` setting."""
    if retain not in RETAIN_SETTINGS:
        raise ConfigurationError(f"witness.retain must be one of {list(RETAIN_SETTINGS)}, got {retain!r}", key="witness.retain")
    size = step_witness_bytes(spec)
    if retain != "auto":
        return WitnessRetention(retain, size, f"witness.retain={retain}")
    keeps = size <= max_step_bytes
    relation = "<=" if keeps else ">"
    return WitnessRetention("all" if keeps else "scheduled", size, f"auto: one step's witness {size} B {relation} witness.max_step_bytes={max_step_bytes} B")


def declared_retention(manifest: Mapping[str, Any]) -> WitnessRetention:
    """What a run's manifest declares (bundles written before the field kept scheduled ones only)."""
    declared = manifest.get("witnesses") or {}
    return WitnessRetention(
        str(declared.get("retained", "scheduled")),
        int(declared.get("step_bytes", 0)),
        str(declared.get("rule", "not declared (a bundle from before witness retention)")),
    )
