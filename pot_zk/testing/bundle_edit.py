"""Reading and rewriting run bundles the way a tamperer would (dev-only; the tamper kinds in
:mod:`pot_zk.testing.tamper` and :mod:`pot_zk.testing.record_rewrites` use it)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pot_zk.core.audit import GENESIS_HASH, canonical_bytes, sha256_hex
from pot_zk.core.challenge import commitment_head
from pot_zk.runs import bundle as files

Finding = tuple[str, str]


@dataclass(frozen=True)
class Tampering:
    """One alteration: what was done, the findings ``pot-zk verify`` must name for it (any one of
    ``expected``, as ``(check, reason)``; ``("verdict", "unproven")`` for the UNPROVEN verdict),
    and the auditor's options that make verify name them (keywords of ``verify_run``; empty
    when the bundle alone gives it away)."""

    kind: str
    detail: str
    expected: frozenset[Finding]
    options: Mapping[str, Any] = field(default_factory=dict)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def audit_records(bundle: Path) -> list[dict]:
    return jsonl(bundle / files.AUDIT)


def chain_lines(records: list[dict]) -> bytes:
    """Audit records written as a fresh, valid hash chain (what a full rewrite produces)."""
    out, prev = [], GENESIS_HASH
    for seq, record in enumerate(records):
        body = {k: v for k, v in record.items() if k != "hash"}
        body.update(seq=seq, prev_hash=prev)
        raw = canonical_bytes(body)
        prev = sha256_hex(raw)
        out.append(raw[:-1] + b',"hash":"' + prev.encode() + b'"}\n')
    return b"".join(out)


def rewrite_audit(bundle: Path, records: list[dict]) -> None:
    (bundle / files.AUDIT).write_bytes(chain_lines(records))


def proved_steps(bundle: Path) -> list[int]:
    return sorted({r["step"] for r in jsonl(bundle / files.PROOFS) if r["status"] == "proved"})


def proof_file(bundle: Path, step: int) -> Path:
    record = next(r for r in jsonl(bundle / files.PROOFS) if r["step"] == step and r["status"] == "proved")
    return bundle / record["proof"]


def other_felt(rng: random.Random, felt: str) -> str:
    while True:
        candidate = (rng.getrandbits(250)).to_bytes(32, "little").hex()
        if candidate != felt:
            return candidate


def expect(*findings: Finding) -> frozenset[Finding]:
    return frozenset(findings)


def head_of(bundle: Path) -> str:
    return commitment_head(read_json(bundle / files.MANIFEST), jsonl(bundle / files.COMMITMENTS))


def sync_audit(bundle: Path) -> None:
    """Rewrite the audit trail to agree with the bundle's current records, as a tamperer who
    recomputes the whole hash chain would: the run.start manifest, every step's commitment
    event, the outcome (status, proof type, strategy) of each ``proof.result``, the held-out
    scores of evaluations.jsonl (written again before the first run.end); every event of a
    step that no longer exists, and every proof event of a step without a proof record, is
    dropped; run.end carries the new commitment head."""
    manifest = read_json(bundle / files.MANIFEST)
    commitments = {r["step"]: r for r in jsonl(bundle / files.COMMITMENTS)}
    outcomes = {r["step"]: r for r in jsonl(bundle / files.PROOFS)} if (bundle / files.PROOFS).exists() else {}
    scores = {r["after_step"]: r for r in jsonl(bundle / files.EVALUATIONS)} if (bundle / files.EVALUATIONS).exists() else {}
    events = []
    for event in audit_records(bundle):
        step, name = event.get("step"), event.get("event")
        if name == "evaluation" or step is not None and (step not in commitments or (name != "commitment" and step not in outcomes)):
            continue
        if name == "run.end":
            events += [{"event": "evaluation", **scores[after_step]} for after_step in sorted(scores)]
            scores = {}
        if name == "run.start" and "manifest" in event:
            event["manifest"] = manifest
        elif name == "commitment":
            event.update(commitments[step])
        elif name == "proof.result":
            event.update({key: outcomes[step].get(key) for key in ("status", "proof_type", "strategy")})
        elif name == "run.end" and "head" in event:
            event["head"] = head_of(bundle)
        events.append(event)
    rewrite_audit(bundle, events)
