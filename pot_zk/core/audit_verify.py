"""Check an audit trail written by :class:`pot_zk.core.audit.AuditLog` and name its first bad record."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pot_zk.core.audit import GENESIS_HASH, ParsedRecord, parse_line


@dataclass(frozen=True)
class AuditReport:
    """The verdict on one trail. ``problem`` is one of ``edited``, ``dropped``, ``reordered``,
    ``truncated`` (or None when ``ok``); ``line`` is 1-based."""

    path: str
    ok: bool
    records: int
    closed: bool
    """The last record is a ``run.end``: nothing was cut after the run ended."""
    problem: str | None = None
    line: int | None = None
    reason: str = ""

    def summary(self) -> str:
        if self.ok:
            tail = "ends with run.end" if self.closed else "does not end with run.end (run still open, or cut after a whole record)"
            return f"OK: {self.path}: {self.records} records, chain intact, {tail}"
        return f"BAD: {self.path}: line {self.line}: {self.problem}: {self.reason}"


def verify_audit(path: str | os.PathLike[str]) -> AuditReport:
    data = open(path, "rb").read()
    lines = data.split(b"\n")
    complete, partial = lines[:-1], lines[-1]
    parsed: list[ParsedRecord | ValueError] = []
    for raw in complete:
        try:
            parsed.append(parse_line(raw))
        except ValueError as error:
            parsed.append(error)
    expected_seq, prev_hash = 0, GENESIS_HASH
    for index, record in enumerate(parsed):
        line = index + 1

        def bad(problem: str, reason: str) -> AuditReport:
            return AuditReport(str(path), False, index, False, problem, line, reason)

        if isinstance(record, ValueError):
            return bad("edited", f"record is not intact: {record}")
        if record.seq < expected_seq:
            return bad("reordered", f"seq {record.seq} appears where seq {expected_seq} was expected (after a later record)")
        if record.seq > expected_seq:
            later = any(isinstance(r, ParsedRecord) and r.seq == expected_seq for r in parsed[index + 1 :])
            if later:
                return bad("reordered", f"seq {record.seq} appears before seq {expected_seq}")
            missing = f"seq {expected_seq}" if record.seq == expected_seq + 1 else f"seq {expected_seq}..{record.seq - 1}"
            return bad("dropped", f"{missing} missing: found seq {record.seq} after seq {expected_seq - 1}")
        if record.prev_hash != prev_hash:
            return bad("edited", "prev_hash does not match the hash of the record before it (that record was edited and re-hashed, or this one replaced)")
        expected_seq, prev_hash = record.seq + 1, record.hash
    count = len(parsed)
    if partial:
        return AuditReport(str(path), False, count, False, "truncated", count + 1, f"last record is incomplete ({len(partial)} bytes, no newline)")
    closed = count > 0 and isinstance(parsed[-1], ParsedRecord) and parsed[-1].record.get("event") == "run.end"
    return AuditReport(str(path), True, count, closed)
