"""What ``pot-zk verify`` found: the findings, the checks passed, what the proofs covered, and
the verdict (docs/runs.md; ``--json`` writes :meth:`RunReport.to_dict`, whose shape
docs/verify.schema.json publishes).

"Proven" counts only the steps whose proof this process verified (:attr:`RunReport.verified_steps`);
a status, a label or a key file the trainer wrote is never evidence.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPORT_FORMAT = "pot-zk-verify/1"
EXIT_CODES = {"VERIFIED": 0, "FAILED": 1, "UNPROVEN": 3}
FINDINGS_LISTED = 20
"""Findings listed per check and reason; the rest are counted (review49: two million ``{}``
records made one finding each, 2.9 GB and 688 MB of output)."""


@dataclass(frozen=True)
class Finding:
    check: str
    reason: str
    message: str
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "reason": self.reason, "message": self.message, "step": self.step}


@dataclass
class RunReport:
    run: Path | None
    findings: list[Finding] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    coverage: dict[str, int] = field(default_factory=dict)
    """Steps by what they carry: a proof type (its proof verified here), or ``rejected`` (a
    ``proved`` outcome whose proof did not verify), ``failed``, ``parked``, ``unknown-status``,
    ``commitment-only`` (no outcome)."""
    statement: dict[str, Any] = field(default_factory=dict)
    verifier_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The key material each proof type was verified with (e.g. the SRS of zk-halo2)."""
    notes: list[str] = field(default_factory=list)
    keys: dict[str, Any] | None = None
    """The auditor's own key material (``--keys``), when given, and whether its trust store knows it."""
    verified_steps: set[int] = field(default_factory=set)
    """Steps whose proof the ``proofs`` check verified: the only ones counted as proven."""
    selected_steps: list[int] = field(default_factory=list)
    """The steps the declared policy selects (none when proving was disabled)."""
    state_unbound_steps: list[int] = field(default_factory=list)
    """Verified steps of a kind with optimizer state (momentum, Adam) whose step before has no
    verified proof: each shows the update from state the trainer chose (review57: counted in
    ``proven`` and ``coverage`` with nothing in the JSON to tell them apart)."""
    references: dict[str, Any] = field(default_factory=dict)
    """What the auditor's references found: dataset root, commitment head, plan, ..."""
    challenge: dict[str, Any] | None = None
    """The challenge checked (``--challenge``): its steps, head, nonce and whose it is."""
    step_count: int = 0
    """The run's committed steps (numbered 0..n-1): the verdict line says how many are proven."""
    omitted: dict[tuple[str, str], int] = field(default_factory=dict)
    """Findings not listed, per check and reason: past the first :data:`FINDINGS_LISTED` of each."""
    _listed: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    @property
    def failures(self) -> int:
        """Findings so far, listed or not: a check compares it before and after it ran."""
        return len(self.findings) + sum(self.omitted.values())

    @property
    def ok(self) -> bool:
        """No check failed (see :attr:`verdict` for whether anything was proven)."""
        return not self.findings

    @property
    def proven(self) -> int:
        """Steps whose proof this process verified."""
        return len(self.verified_steps)

    @property
    def selected_without_proof(self) -> list[int]:
        """Selected steps without a proof that verified here."""
        return sorted(set(self.selected_steps) - self.verified_steps)

    @property
    def verdict(self) -> str:
        if self.findings:
            return "FAILED"
        return "VERIFIED" if self.proven else "UNPROVEN"

    @property
    def verdict_line(self) -> str:
        """The verdict, how many of the run's steps are proven when not all are (review50: one
        proof of 25 steps read as a bare VERIFIED; the policy that selected it is the trainer's),
        and how many selected steps have no proof: never a bare VERIFIED over steps that are not
        proven."""
        parts = []
        if self.verdict == "VERIFIED" and self.proven < self.step_count:
            parts.append(f"{self.proven} of {self.step_count} steps proven")
        missing = self.selected_without_proof
        if missing and self.selected_steps:
            listed = ", ".join(str(s) for s in missing[:10]) + (" ..." if len(missing) > 10 else "")
            parts.append(f"{len(missing)} of {len(self.selected_steps)} selected steps {'has' if len(missing) == 1 else 'have'} no proof (steps {listed})")
        return f"{self.verdict}: {'; '.join(parts)}" if parts else self.verdict

    def fail(self, check: str, reason: str, message: str, step: int | None = None) -> None:
        kind = (check, reason)
        if self._listed.get(kind, 0) >= FINDINGS_LISTED:
            self.omitted[kind] = self.omitted.get(kind, 0) + 1
            return
        self._listed[kind] = self._listed.get(kind, 0) + 1
        self.findings.append(Finding(check, reason, message, step if type(step) is int and step >= 0 else None))  # review51: step -1 broke the schema

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values in the shape docs/verify.schema.json publishes, whatever the
        bundle held (review51: a list as the dataset root, a NaN in the statement)."""
        return _json_safe({
            "format": REPORT_FORMAT,
            "run": None if self.run is None else str(self.run),
            "ok": self.ok,
            "verdict": self.verdict,
            "verdict_line": self.verdict_line,
            "proven": self.proven,
            "verified_steps": sorted(self.verified_steps),
            "selected_steps": list(self.selected_steps),
            "selected_without_proof": self.selected_without_proof,
            "state_unbound_steps": list(self.state_unbound_steps),
            "references": {name: _reference(name, value) for name, value in self.references.items()},
            "passed": self.passed,
            "findings": [f.to_dict() for f in self.findings],
            "omitted_findings": [{"check": check, "reason": reason, "count": count} for (check, reason), count in self.omitted.items()],
            "coverage": self.coverage,
            "statement": self.statement,
            "verifier_keys": self.verifier_keys,
            "keys": self.keys,
            "challenge": self.challenge,
            "notes": self.notes,
        })

    def summary(self) -> str:
        lines = [f"run: {self.run}", f"result: {self.verdict_line}"]
        if self.verdict == "UNPROVEN":
            lines.append("no step carries a verified proof: the bundle shows commitments only, not that any update was computed correctly")
        if self.statement:
            lines.append(f"statement: {self.statement}")
        if self.keys:
            lines.append(f"keys: {self.keys['said']}")
        lines += [f"key provenance ({proof_type}): {record['provenance']}{' (the key directory says so, not checked)' if record.get('provenance_checked') is False else ''}"
                  for proof_type, record in self.verifier_keys.items() if "provenance" in record]
        lines += [f"{name.replace('_', ' ')}: {value}" for name, value in self.references.items()]
        if self.coverage:
            lines.append("coverage: " + ", ".join(f"{k}={v}" for k, v in self.coverage.items()))
        lines += [f"passed: {name}" for name in self.passed]
        lines += [f"FAILED {f.check} ({f.reason}){'' if f.step is None else f' step {f.step}'}: {f.message}" for f in self.findings]
        lines += [f"FAILED {check} ({reason}): {count:,} more such findings, not listed (the first {FINDINGS_LISTED} are)"
                  for (check, reason), count in self.omitted.items()]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _reference(name: str, value: Any) -> Any:
    """A reference as the schema types it; a trainer's value of another type as its JSON text."""
    if isinstance(value, str) or (name == "base_commitment" and value is None) or (name == "max_tolerance_ulps" and type(value) is int):
        return value
    return json.dumps(value, default=str)[:80]


def _json_safe(value: Any) -> Any:
    """``value`` with every float that JSON cannot hold (NaN, infinities) written as its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value
