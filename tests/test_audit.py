"""The hash-chained audit trail and `pot-zk audit verify`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pot_zk.core.audit import GENESIS_HASH, AuditLog, canonical_bytes, sha256_hex
from pot_zk.core.audit_verify import verify_audit
from pot_zk.cli.main import main
from pot_zk.exceptions import AuditTrailError


def write_trail(path: Path, records: int = 5) -> Path:
    with AuditLog(path, run_id="r1") as audit:
        audit.event("run.start", config_sha256="abc")
        for step in range(records - 2):
            audit.bind(step=step).event("attempt", outcome="ok", duration_s=0.1)
        audit.event("run.end", stats={"attempts": records - 2})
    return path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def rewrite(path: Path, new_lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in new_lines))


def test_records_are_chained_by_seq_and_hash_over_the_bytes_written(tmp_path):
    path = write_trail(tmp_path / "audit.jsonl")
    previous = GENESIS_HASH
    for seq, line in enumerate(lines(path)):
        record = json.loads(line)
        assert record["seq"] == seq
        assert record["prev_hash"] == previous
        assert record["run_id"] == "r1"
        body = dict(record)
        digest = body.pop("hash")
        assert sha256_hex(canonical_bytes(body)) == digest
        assert line == canonical_bytes(body)[:-1] + b',"hash":"' + digest.encode() + b'"}'
        previous = digest
    assert json.loads(lines(path)[1])["step"] == 0


def test_an_intact_trail_verifies_and_is_closed(tmp_path):
    report = verify_audit(write_trail(tmp_path / "audit.jsonl"))
    assert report.ok and report.closed and report.records == 5
    assert report.summary().startswith("OK")


def test_an_edited_record_is_pinpointed(tmp_path):
    path = write_trail(tmp_path / "audit.jsonl")
    edited = lines(path)
    edited[2] = edited[2].replace(b'"outcome":"ok"', b'"outcome":"no"')
    rewrite(path, edited)
    report = verify_audit(path)
    assert (report.ok, report.problem, report.line) == (False, "edited", 3)
    assert "hash" in report.reason


def test_an_edited_and_rehashed_record_breaks_the_chain_at_the_next_record(tmp_path):
    path = write_trail(tmp_path / "audit.jsonl")
    edited = lines(path)
    record = json.loads(edited[1])
    record.pop("hash")
    record["outcome"] = "forged"
    body = canonical_bytes(record)
    edited[1] = body[:-1] + b',"hash":"' + sha256_hex(body).encode() + b'"}'
    rewrite(path, edited)
    report = verify_audit(path)
    assert (report.problem, report.line) == ("edited", 3)
    assert "prev_hash" in report.reason


def test_a_dropped_record_is_pinpointed(tmp_path):
    path = write_trail(tmp_path / "audit.jsonl")
    rewrite(path, [line for index, line in enumerate(lines(path)) if index != 2])
    report = verify_audit(path)
    assert (report.problem, report.line) == ("dropped", 3)
    assert "seq 2 missing" in report.reason


def test_reordered_records_are_pinpointed(tmp_path):
    path = write_trail(tmp_path / "audit.jsonl")
    swapped = lines(path)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    rewrite(path, swapped)
    report = verify_audit(path)
    assert (report.problem, report.line) == ("reordered", 2)


def test_a_truncated_last_record_is_pinpointed(tmp_path):
    path = write_trail(tmp_path / "audit.jsonl")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])
    report = verify_audit(path)
    assert (report.problem, report.line) == ("truncated", 5)


def test_a_trail_cut_after_a_whole_record_verifies_but_is_not_closed(tmp_path):
    path = write_trail(tmp_path / "audit.jsonl")
    rewrite(path, lines(path)[:-1])
    report = verify_audit(path)
    assert report.ok and not report.closed
    assert "does not end with run.end" in report.summary()


def test_reopening_a_trail_resumes_its_chain(tmp_path):
    path = write_trail(tmp_path / "audit.jsonl")
    with AuditLog(path) as audit:
        audit.event("run.start", resumed=True)
        audit.event("run.end")
    report = verify_audit(path)
    assert report.ok and report.records == 7
    assert json.loads(lines(path)[5])["seq"] == 5


def test_reopening_a_trail_with_an_incomplete_last_record_is_refused(tmp_path):
    path = write_trail(tmp_path / "audit.jsonl")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(AuditTrailError, match="incomplete"):
        AuditLog(path)


@pytest.mark.parametrize("when", ["after the line reached the file", "before it did"])
def test_a_record_interrupted_by_ctrl_c_keeps_the_chain_where_the_file_is(tmp_path, monkeypatch, when):
    """Ctrl-C while a record is written: a record that reached the file stays counted (the next
    one follows it), one that did not is not; either way the trail verifies. (Before, the chain
    was always rolled back, so an interrupt between the write and its fsync gave the next record
    the same seq: `reordered`, seen in a Ctrl-C during a groth16 run.)"""
    import os as os_module

    from pot_zk.core import audit as audit_module

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.event("run.start")
    real_fsync, real_write = os_module.fsync, audit_module._AppendOnlyFile._write
    calls = []

    def interrupted_fsync(fd):
        calls.append(fd)
        raise KeyboardInterrupt

    def interrupted_write(self, line):
        raise KeyboardInterrupt

    if when == "after the line reached the file":
        monkeypatch.setattr(audit_module.os, "fsync", interrupted_fsync)
    else:
        monkeypatch.setattr(audit_module._AppendOnlyFile, "_write", interrupted_write)
        monkeypatch.setattr(audit_module._AppendOnlyFile, "info", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        log.event("attempt", step=0)
    monkeypatch.setattr(audit_module.os, "fsync", real_fsync)
    monkeypatch.setattr(audit_module._AppendOnlyFile, "_write", real_write)
    monkeypatch.setattr(audit_module._AppendOnlyFile, "info", real_write)
    log.event("run.end", status="interrupted")
    log.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert [r["event"] for r in records] == (["run.start", "attempt", "run.end"] if when.startswith("after") else ["run.start", "run.end"])
    assert verify_audit(path).ok, verify_audit(path).summary()


def test_two_trails_in_one_process_do_not_interfere(tmp_path):
    first, second = AuditLog(tmp_path / "a.jsonl", run_id="a"), AuditLog(tmp_path / "b.jsonl", run_id="b")
    first.event("one")
    second.event("two")
    first.event("three")
    first.close()
    second.close()
    assert [json.loads(x)["event"] for x in lines(tmp_path / "a.jsonl")] == ["one", "three"]
    assert [json.loads(x)["run_id"] for x in lines(tmp_path / "b.jsonl")] == ["b"]
    assert verify_audit(tmp_path / "a.jsonl").ok and verify_audit(tmp_path / "b.jsonl").ok


def _a_run_with_trouble(audit: AuditLog) -> None:
    audit.event("run.start", config={"model": {"dims": [4, 3, 2]}}, config_sha256="abc")
    audit.event("commitment", step=0, w_before="0x1", batch="0x2", w_after="0x3", scheduled=True)
    audit.event("commitment", step=1, w_before="0x3", batch="0x4", w_after="0x5", scheduled=False)
    failed = {"error_class": "ProverCrashError", "retryable": True, "message": "prover exited with code 1"}
    audit.bind(step=0, strategy="zk-halo2").event("attempt", attempt=1, outcome="failed", duration_s=0.1, error=failed)
    audit.bind(step=0, strategy="zk-halo2").event("retry.sleep", attempt=1, planned_sleep_s=1.0, error_class="ProverCrashError")
    audit.bind(step=0, strategy="zk-halo2").event("attempt", attempt=2, outcome="ok", duration_s=0.1, proof_type="zk-halo2")
    audit.event("proof.result", step=0, status="proved", proof_type="zk-halo2", handler="continue")
    audit.event("proof.result", step=2, status="failed", proof_type=None, handler="continue", error=failed)
    audit.event("run.end", status="completed", stats={"attempts": 2})


def test_the_console_shows_only_warnings_and_errors_by_default(tmp_path):
    console = io.StringIO()
    with AuditLog(tmp_path / "audit.jsonl", console_stream=console) as audit:
        _a_run_with_trouble(audit)
    assert console.getvalue().splitlines() == [
        "pot-zk warning: step 0: zk-halo2 attempt 1 failed: ProverCrashError: prover exited with code 1",
        "pot-zk error: step 2: no proof (the step stays commitment-only): ProverCrashError: prover exited with code 1",
    ]


def test_console_records_renders_every_record_but_unproven_commitments_for_people(tmp_path):
    console = io.StringIO()
    with AuditLog(tmp_path / "audit.jsonl", console_records=True, console_stream=console) as audit:
        _a_run_with_trouble(audit)
    shown = console.getvalue().splitlines()
    assert [line.split()[2] for line in shown] == [
        "run.start", "commitment", "attempt", "retry.sleep", "attempt", "proof.result", "proof.result", "run.end"
    ]
    assert "step=0" in shown[2] and "outcome=failed" in shown[2]
    assert not any(line.lstrip().startswith("{") for line in shown)


def test_the_audit_file_keeps_every_record_whatever_the_console_shows(tmp_path):
    def records(path: Path) -> list[dict]:
        return [{k: v for k, v in json.loads(line).items() if k not in ("ts", "hash", "prev_hash")} for line in lines(path)]

    for records_on in (False, True):
        with AuditLog(tmp_path / f"audit-{records_on}.jsonl", console_records=records_on, console_stream=io.StringIO()) as audit:
            _a_run_with_trouble(audit)
    quiet, loud = records(tmp_path / "audit-False.jsonl"), records(tmp_path / "audit-True.jsonl")
    assert quiet == loud and len(quiet) == 9
    assert quiet[0]["config"] == {"model": {"dims": [4, 3, 2]}}  # whole, not the console's elided copy


def test_cli_audit_verify_prints_ok_or_the_first_bad_record(tmp_path, capsys):
    path = write_trail(tmp_path / "audit.jsonl")
    assert main(["audit", "verify", str(path)]) == 0
    assert capsys.readouterr().out.startswith("OK")
    rewrite(path, [line for index, line in enumerate(lines(path)) if index != 1])
    assert main(["audit", "verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("BAD") and "line 2: dropped" in out
