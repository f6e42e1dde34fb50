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
from pot_zk.data.datasets import BUILT_IN
from pot_zk.runs import bundle as files

Named = tuple[str, str, int | None]
"""A finding as verify names it: ``(check, reason, step)``; step None for the run as a whole."""


@dataclass(frozen=True)
class Finding:
    """A finding ``pot-zk verify`` must name for a tampering: its check and reason, and the step
    it is about (None: the run as a whole). ``or_reasons``, only where one check names one fault
    in more than one way (a flipped bit of a Groth16 proof may leave a point off the curve or on
    it), are the other reasons that check may give instead. ``("verdict", "unproven")`` stands
    for the UNPROVEN verdict."""

    check: str
    reason: str
    step: int | None = None
    or_reasons: frozenset[str] = frozenset()

    def named_in(self, named: set[Named]) -> bool:
        return any(check == self.check and step == self.step and reason in {self.reason, *self.or_reasons} for check, reason, step in named)

    def __str__(self) -> str:
        reasons = "|".join(sorted({self.reason, *self.or_reasons}))
        return f"{self.check}/{reasons}" + ("" if self.step is None else f"@{self.step}")


UNPROVEN = Finding("verdict", "unproven")
CERTIFICATE_TYPES = ("freivalds", "reexec")
"""Proof types whose proof is a revealed witness the verifier recommits and recomputes."""


@dataclass(frozen=True)
class Tampering:
    """One alteration: what was done, every finding ``pot-zk verify`` must name for it (all of
    ``expected``; others may come with them), and the auditor's options that make verify name
    them (keywords of ``verify_run``; empty when the bundle alone gives it away). Each kind
    names the findings its alteration must produce, by step where it is about one, so a check
    that goes quiet fails its tamperings even while another check still rejects the bundle."""

    kind: str
    detail: str
    expected: frozenset[Finding]
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.expected:
            raise ValueError(f"tampering {self.kind} ({self.detail}) names no finding verify must produce")


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
    """Another field element, written as ``felt`` is: a zk-groth16 commitment as 0x and 64 hex
    digits, an ezkl one as its 32 little-endian bytes in hex."""
    while True:
        value = rng.getrandbits(250)
        candidate = f"0x{value:064x}" if felt.startswith("0x") else value.to_bytes(32, "little").hex()
        if candidate != felt:
            return candidate


def expect(*findings: Finding) -> frozenset[Finding]:
    return frozenset(findings)


def is_binary(bundle: Path) -> bool:
    """A zk-groth16 run: its proofs are bare 256-byte proofs whose public inputs the verifier
    supplies from the records, so a proof of other commitments fails the pairing check
    (``invalid-proof``) rather than a comparison of public inputs (``commitment-mismatch``)."""
    return read_json(bundle / files.MANIFEST).get("backend") == "groth16"


def recomputed_data(bundle: Path) -> bool:
    """Whether verify recomputes the run's batches (a built-in data set in a seeded order), so
    that any other leaf is a ``dataset-root-mismatch`` too."""
    manifest = read_json(bundle / files.MANIFEST)
    return manifest["dataset"].get("name") in BUILT_IN and manifest["training"].get("batch_order", "seeded") == "seeded"


def proof_mismatch(bundle: Path, step: int) -> Finding:
    """What verify names for a proof that shows other commitments than the step's records."""
    return Finding("proofs", "invalid-proof" if is_binary(bundle) else "commitment-mismatch", step)


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
    scores = sorted(jsonl(bundle / files.EVALUATIONS), key=lambda r: r["after_step"]) if (bundle / files.EVALUATIONS).exists() else []
    events = []
    for event in audit_records(bundle):
        step, name = event.get("step"), event.get("event")
        if name == "evaluation" or step is not None and (step not in commitments or (name != "commitment" and step not in outcomes)):
            continue
        if name == "run.end":
            events += [{"event": "evaluation", **score} for score in scores]
            scores = []
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
