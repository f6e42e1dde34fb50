"""`pot-zk export` (pot_zk/runs/export.py): the auditor's copy of a real run holds what `pot-zk
verify` reads and nothing else (no witness, checkpoint, config.yaml, stats.json, logs or lock; the
audit trail carries the configuration and statistics, and the export says so), verify
accepts the archive and its unpacked directory (and still rejects an edited proof in it), the
same run always gives the same bytes, a revealed-witness certificate keeps its witness,
`pot-zk respond` refuses an export in one line, and the copy a SIGKILLed verify unpacked is
removed by the next."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.runs.export import export_run
from pot_zk.runs.train import train

from process_support import POT_ZK, holder_pid, kill, run, stderr_lines, tiny_run, wait_for


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A finished zk-groth16 run of 6 steps, steps 0, 2 and 4 proven: (run, cache, head)."""
    root = tmp_path_factory.mktemp("export")
    run_dir, cache = root / "run", root / "cache"
    done = run("train", *tiny_run(run_dir, cache), cwd=root)
    kill(holder_pid(cache, run_dir))
    assert done.returncode == 0, done.stderr
    head = re.search(r"^commitment head: ([0-9a-f]{64})", done.stdout, re.MULTILINE).group(1)
    assert f"pot-zk export {run_dir} --out run.tar.gz" in done.stdout
    assert ("your keys are dev keys: on another machine the auditor checks these proofs only with --srs (your dev key directory, "
            "CACHE/groth16/<circuit id>), on your word") in done.stdout  # review23: the command above fails there without it
    return run_dir, cache, head


def _members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as opened:
        return {member.name: member for member in opened.getmembers()}


def _write_archive(path: Path, files: dict[str, bytes]) -> None:
    """A gzip'd tar of ``files`` (member name -> bytes), as an edited export."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _verify(target: str, cache: Path, head: str, cwd: Path):
    return run("verify", target, "--cache-dir", str(cache), "--expect-head", head, cwd=cwd)


def test_the_export_holds_what_verify_reads_and_verifies_as_archive_and_unpacked(trained, tmp_path):
    run_dir, cache, head = trained
    assert (run_dir / "witness").is_dir() and (run_dir / "checkpoint.safetensors").is_file()
    done = run("export", str(run_dir), "--out", "run.tar.gz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"they check it with: pot-zk verify run.tar.gz --expect-head {head}" in done.stdout
    members = _members(tmp_path / "run.tar.gz")
    assert sorted(members) == [f"run/{name}" for name in (
        "EXPORT.json", "audit.jsonl", "commitments.jsonl", "dataset.json", "evaluations.jsonl", "manifest.json",
        "model_final.safetensors", "model_initial.safetensors", "proofs.jsonl",
        "proofs/step-00000000/proof.bin", "proofs/step-00000002/proof.bin", "proofs/step-00000004/proof.bin",
    )]
    with tarfile.open(tmp_path / "run.tar.gz") as opened:
        inventory = json.loads(opened.extractfile("run/EXPORT.json").read())
        for name, digest in inventory["files"].items():
            assert hashlib.sha256(opened.extractfile(f"run/{name}").read()).hexdigest() == digest
    assert inventory["commitment_head"] == head and len(inventory["files"]) == len(members) - 1
    # review24: it said "no ... config" while the audit trail's run.start carries config.yaml's content
    import yaml

    with tarfile.open(tmp_path / "run.tar.gz") as opened:
        trail = [json.loads(line) for line in opened.extractfile("run/audit.jsonl").read().splitlines()]
    [start] = [e for e in trail if e["event"] == "run.start"]
    assert start["config"] == yaml.safe_load((run_dir / "config.yaml").read_text()) and start["config"]["cache_dir"] == str(cache)
    assert "its audit trail carries the run's configuration and statistics" in done.stdout
    assert "audit.jsonl's run.start and run.end carry the configuration and statistics" in inventory["not_exported"]

    verified = _verify("run.tar.gz", cache, head, tmp_path)
    assert verified.returncode == 0 and "result: VERIFIED" in verified.stdout, verified.stdout
    with tarfile.open(tmp_path / "run.tar.gz") as opened:
        opened.extractall(tmp_path / "unpacked", filter="data")
    verified = _verify("unpacked/run", cache, head, tmp_path)
    assert verified.returncode == 0 and "result: VERIFIED" in verified.stdout, verified.stdout


def test_the_copy_a_killed_verify_unpacked_is_removed_by_the_next_one(trained, tmp_path):
    """A SIGKILLed `pot-zk verify ARCHIVE` cannot remove the copy it unpacked into TMPDIR. The
    copy's directory names its process; the next verify removes those whose process is gone,
    and leaves one whose process runs (here: this test's)."""
    run_dir, cache, head = trained
    assert run("export", str(run_dir), "--out", "run.tar.gz", cwd=tmp_path).returncode == 0
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary)}
    verifying = subprocess.Popen(
        [str(POT_ZK), "verify", "run.tar.gz", "--cache-dir", str(cache)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    unpacked = wait_for(lambda: list(temporary.glob(f"pot-zk-export-{verifying.pid}-*/run/manifest.json")), "the unpacked copy", timeout=120, every=0.002)
    os.kill(verifying.pid, signal.SIGKILL)
    verifying.wait(timeout=60)
    copy = unpacked[0].parent.parent
    assert copy.is_dir(), "SIGKILL leaves the copy"
    live = temporary / f"pot-zk-export-{os.getpid()}-kept"
    live.mkdir()
    verified = run("verify", "run.tar.gz", "--cache-dir", str(cache), "--expect-head", head, cwd=tmp_path, env=env)
    assert verified.returncode == 0 and "result: VERIFIED" in verified.stdout, verified.stdout + verified.stderr
    assert not copy.exists()
    assert sorted(entry.name for entry in temporary.iterdir() if entry.name.startswith("pot-zk-export-")) == [live.name]


def test_verify_still_checks_what_is_in_the_archive(trained, tmp_path):
    run_dir, cache, head = trained
    archive = export_run(run_dir, tmp_path / "run.tar.gz").archive
    with tarfile.open(archive) as opened:
        files = {m.name: opened.extractfile(m).read() for m in opened.getmembers()}
    original = files["run/proofs/step-00000002/proof.bin"]
    proof = bytearray(original)
    proof[40] ^= 1
    files["run/proofs/step-00000002/proof.bin"] = bytes(proof)
    _write_archive(tmp_path / "edited.tar.gz", files)
    rejected = _verify("edited.tar.gz", cache, head, tmp_path)
    assert rejected.returncode == 1 and "result: FAILED" in rejected.stdout, rejected.stdout
    # review24: EXPORT.json naming another head was never read; verify notes it (the records decide)
    files["run/proofs/step-00000002/proof.bin"] = original
    inventory = json.loads(files["run/EXPORT.json"])
    files["run/EXPORT.json"] = json.dumps({**inventory, "commitment_head": "ab" * 32}).encode()
    _write_archive(tmp_path / "relabelled.tar.gz", files)
    noted = _verify("relabelled.tar.gz", cache, head, tmp_path)
    assert noted.returncode == 0 and "result: VERIFIED" in noted.stdout, noted.stdout
    assert f"note: EXPORT.json names commitment head {'ab' * 32}, the records give {head}: the inventory is not evidence" in noted.stdout


def test_the_same_run_exports_to_the_same_bytes(trained, tmp_path):
    run_dir, _, head = trained
    first = export_run(run_dir, tmp_path / "a.tar.gz")
    time.sleep(1.1)
    second = export_run(run_dir, tmp_path / "b.tar.gz")
    assert first.archive.read_bytes() == second.archive.read_bytes()
    assert gzip.open(first.archive).read()  # a plain gzip'd tar
    for member in _members(first.archive).values():
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname, member.mode) == (0, 0, 0, "", "", 0o644)
    default = export_run(run_dir)
    try:
        assert default.archive == Path(f"run-{head[:16]}.tar.gz")
    finally:
        default.archive.unlink()


def test_export_never_overwrites_another_file_but_repeats_itself(trained, tmp_path):
    """A review: `--out` onto an existing file replaced it (a previous export of another head, or
    any file). Now only the identical archive may be written again."""
    run_dir, _, _ = trained
    kept = tmp_path / "notes.tar.gz"
    kept.write_bytes(b"the auditor's earlier archive")
    refused = run("export", str(run_dir), "--out", str(kept), cwd=tmp_path)
    assert refused.returncode == 2
    assert stderr_lines(refused.stderr) == [
        f"pot-zk export: --out {kept} exists and is not this export (another file, or an export of another head); remove it or name another archive"
    ]
    assert kept.read_bytes() == b"the auditor's earlier archive"
    first = run("export", str(run_dir), "--out", "again.tar.gz", cwd=tmp_path)
    again = run("export", str(run_dir), "--out", "again.tar.gz", cwd=tmp_path)
    assert (first.returncode, again.returncode) == (0, 0), again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.tar.gz", "notes.tar.gz"]
    # review24: after respond the records grow, the head does not: the earlier export is named as such
    with tarfile.open(tmp_path / "again.tar.gz") as opened:
        files = {m.name: opened.extractfile(m).read() for m in opened.getmembers()}
    files["run/audit.jsonl"] += b"{}\n"
    _write_archive(tmp_path / "earlier.tar.gz", files)
    refused = run("export", str(run_dir), "--out", "earlier.tar.gz", cwd=tmp_path)
    assert refused.returncode == 2 and stderr_lines(refused.stderr) == [
        "pot-zk export: --out earlier.tar.gz holds an export with this run's commitment head and other records (an earlier export of "
        "this run, before respond or prove-pending added to it, or of a run trained the same way): name another archive, or remove it"
    ]


def test_a_certificate_that_reveals_its_witness_keeps_it_and_verifies(tmp_path):
    """Steps whose prover fails fall back to freivalds certificates: the verifier reads the step's
    witness beside each, by design of that proof type."""
    overrides = [
        "prover=ezkl", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=4", "policy=every_k", "policy.k=2",
        "handler=fallback", "retry=none", "prover.binary=/bin/false", "train.progress=false",
        f"cache_dir={tmp_path / 'cache'}", f"run_dir={tmp_path / 'run'}",
    ]
    summary = train(compose_config(overrides), sleep=lambda seconds: None)
    assert summary.progress["proof_types"] == {"freivalds": 2}
    archive = export_run(tmp_path / "run", tmp_path / "run.tar.gz").archive
    names = set(_members(archive))
    assert {"run/proofs/step-00000000/witness.safetensors", "run/proofs/step-00000002/witness.safetensors"} <= names
    assert not any(name.startswith("run/witness/") for name in names)
    verified = run("verify", "run.tar.gz", "--cache-dir", str(tmp_path / "cache"), "--expect-head", summary.head, cwd=tmp_path)
    assert verified.returncode == 0 and "result: VERIFIED" in verified.stdout, verified.stdout


def test_a_proof_record_naming_a_link_exports_no_file_for_it_as_verify_finds_none(trained, tmp_path):
    """review39: export followed a proof record's link (archiving the target under its own name)
    where verify now refuses the link; both now read a record's file the same way."""
    import shutil

    from pot_zk.runs.export import exported_files
    from pot_zk.runs.bundle import RunBundle
    from pot_zk.testing.bundle_edit import jsonl, write_jsonl

    run_dir = Path(shutil.copytree(trained[0], tmp_path / "run"))
    records = jsonl(run_dir / "proofs.jsonl")
    proved = next(r for r in records if r.get("proof"))
    real = proved["proof"]
    (run_dir / "proofs" / "linked").symlink_to(Path(real).relative_to("proofs"))
    proved["proof"] = "proofs/linked"
    write_jsonl(run_dir / "proofs.jsonl", records)
    listed = exported_files(RunBundle.open(run_dir))
    assert real not in listed and "proofs/linked" not in listed
    assert [r["proof"] for r in records if r.get("proof") and r is not proved] == [f for f in listed if f.startswith("proofs/")]


def test_respond_refuses_an_export_in_one_line(trained, tmp_path):
    run_dir, _, _ = trained
    export_run(run_dir, tmp_path / "run.tar.gz")
    with tarfile.open(tmp_path / "run.tar.gz") as opened:
        opened.extractall(tmp_path / "unpacked", filter="data")
    (tmp_path / "c.json").write_text("{}")
    for target in ("run.tar.gz", "unpacked/run"):
        refused = run("respond", target, "c.json", cwd=tmp_path)
        assert refused.returncode == 2
        assert stderr_lines(refused.stderr) == [
            f"pot-zk respond: {target} is an export (pot-zk export): respond needs the trainer's own run directory, which keeps the "
            "witnesses and checkpoint that proving a step takes"
        ]


def test_an_export_unpacked_by_hand_with_a_link_is_refused_not_read(trained, tmp_path):
    """review24: tar keeps symbolic links, so a hand-unpacked export could hold audit.jsonl ->
    /dev/zero, which verify read until memory ran out. verify reads only the bundle's own files."""
    run_dir, cache, head = trained
    archive = export_run(run_dir, tmp_path / "run.tar.gz").archive
    with tarfile.open(archive) as opened:
        opened.extractall(tmp_path / "by-hand", filter="data")
    unpacked = tmp_path / "by-hand" / "run"
    (unpacked / "audit.jsonl").rename(tmp_path / "audit.jsonl")
    for target in (tmp_path / "audit.jsonl", Path("/dev/zero")):  # the same trail outside the bundle, then the endless one
        (unpacked / "audit.jsonl").unlink(missing_ok=True)
        (unpacked / "audit.jsonl").symlink_to(target)
        refused = _verify("by-hand/run", cache, head, tmp_path)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert (f"FAILED statement (unreadable-bundle): audit.jsonl is a symbolic link (to {target}): a bundle holds its own files "
                "(unpack an export with pot-zk verify ARCHIVE)") in refused.stdout.splitlines()


@pytest.mark.parametrize("end", ["none", "interrupted"])
def test_an_export_of_a_run_that_did_not_complete_says_so_instead_of_the_auditors_command(trained, tmp_path, end):
    """review32: a run whose trainer was killed (no run.end) exported with "hand the auditor
    ... pot-zk verify ...", which then failed it. The archive is still written (exit 0)."""
    import shutil

    from pot_zk.testing.bundle_edit import audit_records, rewrite_audit

    run_dir = Path(shutil.copytree(trained[0], tmp_path / "run", ignore=shutil.ignore_patterns(".pot-zk.lock*")))
    events = audit_records(run_dir)
    if end == "none":
        events = events[:-1]
    else:
        events[-1]["status"] = "interrupted"
    rewrite_audit(run_dir, events)
    done = run("export", "run", "--out", "run.tar.gz", cwd=tmp_path)
    assert done.returncode == 0 and (tmp_path / "run.tar.gz").is_file(), done.stderr
    how = "has no end recorded (it is training, or was stopped)" if end == "none" else "ended interrupted"
    assert stderr_lines(done.stderr) == [
        f"pot-zk export: warning: the run {how}: verify fails it (run-not-completed); complete it with pot-zk resume run and export it again"
    ]
    assert "hand the auditor" not in done.stdout


@pytest.mark.parametrize("command, event, again", [
    ("respond", "challenge.start", "pot-zk respond run CHALLENGE.json"), ("prove-pending", "pending.start", "pot-zk prove-pending run"),
])
def test_an_export_of_a_run_whose_respond_or_prove_pending_was_killed_says_so_instead_of_the_auditors_command(
    trained, tmp_path, command, event, again,
):
    """review53: `respond` SIGKILLed mid-proof left the trail ending in its `challenge.start`;
    export looked only at the training's run.end, said "hand the auditor ...", and every verify
    of the archive failed it (audit-chain/not-closed)."""
    import shutil

    from pot_zk.testing.bundle_edit import audit_records, rewrite_audit

    run_dir = Path(shutil.copytree(trained[0], tmp_path / "run", ignore=shutil.ignore_patterns(".pot-zk.lock*")))
    rewrite_audit(run_dir, [*audit_records(run_dir), {"event": event, "run": "run", "command": command}])
    done = run("export", "run", "--out", "run.tar.gz", cwd=tmp_path)
    assert done.returncode == 0 and (tmp_path / "run.tar.gz").is_file(), done.stderr
    assert stderr_lines(done.stderr) == [
        f"pot-zk export: warning: the audit trail ends in an unfinished {command} (killed, or still running): verify fails it "
        f"(not-closed); run {again} again to finish it, and export it again"
    ]
    assert "hand the auditor" not in done.stdout
    checked = _verify("run.tar.gz", trained[1], trained[2], tmp_path)
    assert checked.returncode == 1 and "FAILED audit-chain (not-closed): the audit trail does not end with run.end" in checked.stdout, checked.stdout
    resumed = run("resume", "run", cwd=tmp_path)  # and resume's refusal names what finishes it
    assert resumed.returncode == 2, resumed.stdout + resumed.stderr
    assert f"its audit trail ends in an unfinished {command}: run {again.replace(' run', ' ' + str(run_dir), 1)} again to finish it" in resumed.stderr, resumed.stderr
