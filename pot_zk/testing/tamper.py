"""A generator of altered run bundles, for the tampering suites (tests/test_tamper_expectations.py,
tests/zk/test_reliability.py, tests/zk/test_momentum_run.py, tests/groth16/test_groth16_run.py)
and scripts/tamper_campaign.py.

Each tamper kind takes a *copy* of an honest bundle, alters it the way a cheating trainer
could, and returns a :class:`~pot_zk.testing.bundle_edit.Tampering`: what was done, every
finding ``pot-zk verify`` must name for it (all of ``expected``: check, reason and, where the
finding is about one, the step; :func:`judge` accepts others besides) and the auditor's options
it takes. The kinds here leave some record inconsistent; most of those in
:mod:`pot_zk.testing.record_rewrites` rewrite every record to agree, so only the auditor's own
references (recomputed data set and initial model, ``--expect-head``, the tolerance limit,
``--min-proven``) or the commitment chain can catch them. Random choices (which step, which byte,
which audit line, whether the tamperer also rewrites the audit trail's hash chain to match)
come from the ``random.Random`` passed in, so a campaign is seeded.

Attacker model: the tamperer has the whole bundle and may rewrite any file, including
recomputing the audit trail's hash chain (``rehash``: the chain is unkeyed, it shows
accidental or partial edits, not a full rewrite). What it cannot do is make a proof for a
statement that is false, or find other weights or data with the same Poseidon commitment.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Callable

from pot_zk.backends.registry import BACKENDS, spec_from_dict
from pot_zk.core.merkle import dataset_root
from pot_zk.runs import bundle as files
from pot_zk.core.audit import canonical_bytes, sha256_hex
from pot_zk.core.challenge import STATE_FIELDS
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.testing.bundle_edit import (
    CERTIFICATE_TYPES,
    UNPROVEN,
    Finding,
    Tampering,
    audit_records,
    chain_lines,
    expect,
    head_of,
    is_binary,
    jsonl,
    other_felt,
    proof_file,
    proof_mismatch,
    proved_steps,
    read_json,
    recomputed_data,
    rewrite_audit,
    write_jsonl,
)
from pot_zk.testing.record_rewrites import REWRITE_KINDS
from pot_zk.testing.verdict_rewrites import VERDICT_KINDS

__all__ = ["KINDS", "Finding", "Tampering", "chain_lines", "judge", "tampered_copy"]

# ---------------------------------------------------------------- tamper kinds


def flip_proof_byte(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    step = rng.choice(proved_steps(bundle))
    path = proof_file(bundle, step)
    if is_binary(bundle):  # a zk-groth16 proof: 256 bytes, nothing else; the flipped point may be off the curve or on it
        data = bytearray(path.read_bytes())
        index = rng.randrange(len(data))
        data[index] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        return Tampering("flip-proof-byte", f"step {step}: bit flipped in proof byte {index}",
                         expect(Finding("proofs", "invalid-proof", step, frozenset({"malformed-proof"}))))
    proof = json.loads(path.read_text())
    field = rng.choice(["proof", "proof", "proof", "hex_proof"])
    if field == "proof" or "hex_proof" not in proof:
        index = rng.randrange(len(proof["proof"]))
        proof["proof"][index] ^= 1 << rng.randrange(8)
        if "hex_proof" in proof:  # keep the redundant hex encoding consistent: only ezkl can tell
            proof["hex_proof"] = "0x" + bytes(proof["proof"]).hex()
        detail, expected = f"step {step}: bit flipped in proof byte {index}", expect(Finding("proofs", "invalid-proof", step))
    else:
        digits = proof["hex_proof"]
        index = rng.randrange(2, len(digits))
        digits = digits[:index] + rng.choice([d for d in "0123456789abcdef" if d != digits[index]]) + digits[index + 1:]
        proof["hex_proof"] = digits
        detail, expected = f"step {step}: hex digit {index} of hex_proof changed", expect(Finding("proofs", "malformed-proof", step))
    path.write_text(json.dumps(proof))
    return Tampering("flip-proof-byte", detail, expected)


def alter_public_commitment(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    step = rng.choice(proved_steps(bundle))
    path = proof_file(bundle, step)
    proof = json.loads(path.read_text())
    hashed = spec_from_dict(json.loads((bundle / files.MANIFEST).read_text())["circuit"]).input_names
    index = rng.randrange(len(hashed))  # the hashed public inputs: w_before, batch, w_after (+ base, velocity)
    proof["instances"][0][index] = other_felt(rng, proof["instances"][0][index])
    path.write_text(json.dumps(proof))
    return Tampering("alter-public-commitment", f"step {step}: public input {index} of the proof replaced",
                     expect(Finding("proofs", "commitment-mismatch", step)))


def alter_commitment_record(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """Change one committed hash in commitments.jsonl (and, when rehashing, in the audit trail):
    W_t, the batch, W_t+1 or optimizer state (a momentum step's velocity, an Adam step's moments
    and step count). The last step's optimizer state after it (unproven) is in no chain and no
    model file: only the commitment head the auditor holds tells that edit (or, for a step count,
    verify's own count)."""
    head = head_of(bundle)
    records = jsonl(bundle / files.COMMITMENTS)
    record = rng.choice(records)
    step, last = record["step"], records[-1]["step"]
    key = rng.choice([k for k in ("w_before", "batch", "w_after", *STATE_FIELDS) if k in record])
    record[key] = other_felt(rng, record[key])
    write_jsonl(bundle / files.COMMITMENTS, records)
    rehash = rng.random() < 0.5
    if rehash:
        events = audit_records(bundle)
        for event in events:
            if event.get("event") == "commitment" and event.get("step") == step:
                event[key] = record[key]
        rewrite_audit(bundle, events)
    counted = STEP_KINDS.get(spec_from_dict(json.loads((bundle / files.MANIFEST).read_text())["circuit"]).kind).step_count_input
    expected, options = set(_edited_commitment(key, step, last, counted)), {}
    if key in STATE_FIELDS and key.endswith("_after") and key != counted and step == last:
        options = {"expect_head": head}
    if step in proved_steps(bundle):
        expected.add(proof_mismatch(bundle, step))
    if not rehash:
        expected.add(Finding("steps", "audit-mismatch", step))
    return Tampering("alter-commitment-record", f"step {step}: {key} replaced{' (audit rewritten)' if rehash else ''}",
                     frozenset(expected), options)


def _edited_commitment(key: str, step: int, last: int, counted: str | None) -> tuple[Finding, ...]:
    """What the run's own checks name for one committed value of ``step`` edited: the link of the
    chain it is in, the model file or the data set it must match, the zero optimizer state of
    step 0, verify's own step count (``counted``: the kind's step count tensor), or (the last
    step's optimizer state after it) the commitment head."""
    if key == "batch":
        return (Finding("steps", "batch-not-in-dataset", step),)
    if key == "w_before" and step == 0:
        return Finding("initial-model", "model-mismatch"), Finding("initial-model", "initial-model-mismatch", 0)
    if key.endswith("_before") and step == 0:
        return (Finding("commitment-chain", "state-not-zero", 0),)
    if key.endswith("_before"):
        return (Finding("commitment-chain", "chain-broken", step),)
    count = (Finding("commitment-chain", "optimizer-step-count", step),) if key == counted else ()
    if step < last:
        return (*count, Finding("commitment-chain", "chain-broken", step + 1))
    if count:
        return count
    if key == "w_after":
        return (Finding("final-model", "model-mismatch"),)
    return (Finding("commitment-head", "unexpected-head"),)


def swap_proofs(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    a, b = rng.sample(proved_steps(bundle), 2)
    pa, pb = proof_file(bundle, a), proof_file(bundle, b)
    da, db = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(db)
    pb.write_bytes(da)
    return Tampering("swap-proofs", f"proofs of steps {a} and {b} swapped", expect(proof_mismatch(bundle, a), proof_mismatch(bundle, b)))


def replay_proof(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    assert other is not None, "replay needs another run's bundle"
    step = rng.choice(sorted(set(proved_steps(bundle)) & set(proved_steps(other))))
    shutil.copyfile(proof_file(other, step), proof_file(bundle, step))
    return Tampering("replay-proof", f"step {step}: proof replayed from {other.name}", expect(proof_mismatch(bundle, step)))


def drop_step(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    records = jsonl(bundle / files.COMMITMENTS)
    last = records[-1]["step"]
    dropped = records.pop(rng.randrange(len(records)))
    write_jsonl(bundle / files.COMMITMENTS, records)
    rehash = rng.random() < 0.5
    if rehash:
        rewrite_audit(bundle, [e for e in audit_records(bundle) if not (e.get("event") == "commitment" and e.get("step") == dropped["step"])])
    gap = Finding("steps", "step-count") if dropped["step"] == last else Finding("steps", "missing-step")  # the last: still 0..n-2
    return Tampering("drop-step", f"step {dropped['step']} removed{' (audit rewritten)' if rehash else ''}", expect(gap))


def duplicate_step(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    if rng.random() < 0.5:
        records = jsonl(bundle / files.COMMITMENTS)
        index = rng.randrange(len(records))
        records.insert(index + 1, dict(records[index]))
        write_jsonl(bundle / files.COMMITMENTS, records)
        step = records[index]["step"]
        return Tampering("duplicate-step", f"commitment record of step {step} duplicated", expect(Finding("steps", "duplicate-step", step)))
    records = jsonl(bundle / files.PROOFS)
    proved = [r for r in records if r["status"] == "proved"]
    record = rng.choice(proved)
    records.append(dict(record))
    write_jsonl(bundle / files.PROOFS, records)
    return Tampering("duplicate-step", f"proof record of step {record['step']} duplicated", expect(Finding("proofs", "duplicate-proof", record["step"])))


def tamper_audit_line(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    path = bundle / files.AUDIT
    lines = path.read_bytes().split(b"\n")[:-1]
    how = rng.choice(["reorder", "edit", "delete"])
    if how == "reorder":
        i = rng.randrange(len(lines) - 1)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        expected = expect(Finding("audit-chain", "reordered"))
        detail = f"audit lines {i + 1} and {i + 2} swapped"
    elif how == "edit":
        i = rng.randrange(len(lines) - 1)  # re-hashing the last record would be a full rewrite
        record = json.loads(lines[i])
        key = rng.choice(sorted(k for k in record if k not in ("hash", "seq", "prev_hash")))
        record[key] = ["tampered", record[key]]
        if rng.random() < 0.5:  # re-hash this one record: the next record's prev_hash no longer matches
            body = {k: v for k, v in record.items() if k != "hash"}
            raw = canonical_bytes(body)
            lines[i] = raw[:-1] + b',"hash":"' + sha256_hex(raw).encode() + b'"}'
            detail = f"audit line {i + 1} field {key} edited and the line re-hashed"
        else:
            lines[i] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
            detail = f"audit line {i + 1} field {key} edited"
        expected = expect(Finding("audit-chain", "edited"))
    else:
        i = rng.randrange(len(lines))
        del lines[i]
        detail = f"audit line {i + 1} of {len(lines) + 1} deleted"
        expected = expect(Finding("audit-chain", "not-closed" if i == len(lines) else "dropped"))  # the last line: run.end
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return Tampering("audit-line", detail, expected)


def _other_circuit_finding(bundle: Path, record: dict) -> Finding:
    """What verify names for a proof checked against another declared circuit: a certificate
    names its circuit (``wrong-circuit``); a zk-halo2 proof fails under the verifier's key of that
    circuit, its size (the SRS) or its output scale; for zk-groth16 the verifier holds no key."""
    if record["proof_type"] in CERTIFICATE_TYPES:
        return Finding("proofs", "wrong-circuit", record["step"])
    if is_binary(bundle):
        return Finding("proofs", "keys-unavailable")
    return Finding("proofs", "invalid-proof", record["step"], frozenset({"srs-mismatch", "update-out-of-tolerance"}))


def other_circuit(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    """Declare another statement (learning rate, and its circuit id) in the manifest: the
    verifier derives another circuit and key, which the proofs do not verify against (or which
    needs a larger SRS than the run's; for zk-groth16, for which it holds no key)."""
    manifest = json.loads((bundle / files.MANIFEST).read_text())
    old = manifest["circuit"]["learning_rate"]
    new = rng.choice([v for v in (0.025, 0.1) if v != old])
    manifest["circuit"]["learning_rate"] = new
    manifest["circuit_id"] = spec_from_dict(manifest["circuit"]).circuit_id()
    (bundle / files.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    rehash = rng.random() < 0.5
    expected = {_other_circuit_finding(bundle, record) for record in jsonl(bundle / files.PROOFS) if record["status"] == "proved"}
    if rehash:
        events = audit_records(bundle)
        for event in events:
            if event.get("event") == "run.start" and "manifest" in event:
                event["manifest"] = manifest
        rewrite_audit(bundle, events)
    else:
        expected.add(Finding("statement", "manifest-mismatch"))
    return Tampering("other-circuit", f"declared learning rate {old} -> {new}{' (audit rewritten)' if rehash else ''}", frozenset(expected))


def alter_model(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    from pot_zk.runs.bundle import load_model, save_model

    name = rng.choice([files.FINAL_MODEL, files.FINAL_MODEL, files.INITIAL_MODEL])
    state, metadata = load_model(bundle / name)
    key = rng.choice(sorted(state))
    tensor = state[key].clone()
    flat = tensor.view(-1)
    flat[rng.randrange(flat.numel())] += rng.choice([-1, 1]) * 2.0 ** -rng.randrange(0, 10)
    state[key] = tensor
    save_model(state, bundle / name, metadata or None)
    check = "final-model" if name == files.FINAL_MODEL else "initial-model"
    return Tampering("alter-model", f"{name}: one weight of {key} changed", expect(Finding(check, "model-mismatch")))


def alter_dataset_root(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    how = rng.choice(["manifest-root", "leaf", "leaf-and-root"])
    dataset = json.loads((bundle / files.DATASET).read_text())
    manifest = json.loads((bundle / files.MANIFEST).read_text())
    expected = {Finding("dataset-root", "root-mismatch")}
    if recomputed_data(bundle):
        expected.add(Finding("dataset-root", "dataset-root-mismatch"))
    if how == "manifest-root":
        manifest["dataset"]["root"] = other_felt(rng, manifest["dataset"]["root"])
        expected.add(Finding("statement", "manifest-mismatch"))
    else:
        commitments = jsonl(bundle / files.COMMITMENTS)
        index = rng.choice(sorted({r["batch_index"] for r in commitments}))
        dataset["leaves"][index] = other_felt(rng, dataset["leaves"][index])
        expected.add(Finding("steps", "batch-not-in-dataset", min(r["step"] for r in commitments if r["batch_index"] == index)))
        if how == "leaf-and-root":  # a consistent new dataset declaration, audit rewritten to match
            dataset["root"] = dataset_root(dataset["leaves"], (dataset.get("holdout") or {}).get("commitment"))
            manifest["dataset"]["root"] = dataset["root"]
            expected.discard(Finding("dataset-root", "root-mismatch"))
            events = audit_records(bundle)
            for event in events:
                if event.get("event") == "run.start" and "manifest" in event:
                    event["manifest"] = manifest
            rewrite_audit(bundle, events)
    (bundle / files.DATASET).write_text(json.dumps(dataset, indent=2, sort_keys=True))
    (bundle / files.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return Tampering("alter-dataset-root", how, frozenset(expected))


def downgrade_label(bundle: Path, rng: random.Random, other: Path | None) -> Tampering:
    records = jsonl(bundle / files.PROOFS)
    record = rng.choice([r for r in records if r["status"] == "proved"])
    step, old = record["step"], record["proof_type"]
    new = rng.choice([t for t in (*CERTIFICATE_TYPES, "commitment-only", "zk-halo2") if t != old and (t != "zk-halo2" or is_binary(bundle))])
    record["proof_type"] = new
    write_jsonl(bundle / files.PROOFS, records)
    rehash = rng.random() < 0.5
    stated = BACKENDS.get(str(read_json(bundle / files.MANIFEST).get("backend", "ezkl"))).stated_proof_types()
    if new not in stated:  # commitment-only, or zk-halo2 / freivalds in a zk-groth16 run: verify checks no such proof
        expected = {Finding("proofs", "proof-type-mismatch", step)}
    elif old in CERTIFICATE_TYPES:  # the certificate names its own type
        expected = {Finding("proofs", "proof-type-mismatch", step)}
    else:  # the zk proof file is no certificate
        expected = {Finding("proofs", "malformed-proof", step)}
    if rehash:
        events = audit_records(bundle)
        for event in events:
            if event.get("event") == "proof.result" and event.get("step") == step:
                event["proof_type"] = new
        rewrite_audit(bundle, events)
    else:
        expected |= {Finding("proofs", "label-mismatch", step), Finding("proofs", "record-mismatch", step)}
    return Tampering("relabel-proof-type", f"step {step}: {old} -> {new}{' (audit rewritten)' if rehash else ''}", frozenset(expected))


KINDS: dict[str, Callable[[Path, random.Random, Path | None], Tampering]] = {
    "flip-proof-byte": flip_proof_byte,
    "alter-public-commitment": alter_public_commitment,
    "alter-commitment-record": alter_commitment_record,
    "swap-proofs": swap_proofs,
    "replay-proof": replay_proof,
    "drop-step": drop_step,
    "duplicate-step": duplicate_step,
    "audit-line": tamper_audit_line,
    "other-circuit": other_circuit,
    "alter-model": alter_model,
    "alter-dataset-root": alter_dataset_root,
    "relabel-proof-type": downgrade_label,
    **REWRITE_KINDS,
    **VERDICT_KINDS,
}


def tampered_copy(honest: Path, destination: Path, kind: str, rng: random.Random, other: Path | None = None) -> Tampering:
    """Copy ``honest`` to ``destination`` and apply one tampering of ``kind``."""
    shutil.copytree(honest, destination)
    return KINDS[kind](destination, rng, other)


def judge(report, tampering: Tampering) -> tuple[bool, str]:
    """Was the tampered bundle rejected naming every finding its tampering must produce (the
    UNPROVEN verdict counting as :data:`~pot_zk.testing.bundle_edit.UNPROVEN`, a finding of a
    check and reason the report counts past those it lists as named)? Other findings may come
    with them."""
    named = {(f.check, f.reason, f.step) for f in report.findings}
    if report.verdict == "UNPROVEN":
        named.add((UNPROVEN.check, UNPROVEN.reason, UNPROVEN.step))
    if not named:
        return False, "ACCEPTED"
    counted = set(report.omitted)  # past the findings listed per reason, verify counts the rest of that reason without their steps
    missing = sorted(
        str(finding) for finding in tampering.expected
        if not finding.named_in(named) and not any((finding.check, reason) in counted for reason in {finding.reason, *finding.or_reasons})
    )
    if missing:
        found = sorted(f"{check}/{reason}" + ("" if step is None else f"@{step}") for check, reason, step in named)
        return False, f"did not name {missing}; named {found}"
    return True, ""
