"""Files of a bundle or an export that are not what they should be (review31, a cheating trainer
against `pot-zk verify`'s bundle layer; review33, its fixes reviewed; review32, hand-over): a
certificate's revealed witness that is a named pipe or a link out of the bundle, certificate
files larger than any certificate, an export archive holding files an export does not, a `..`,
a second run, or far more bytes than its size; `challenge` and `report` on records that are
pipes or links; a run in use. No prover runs: the bundle is test_verify_each_check.py's (steps
0 and 2 certified by freivalds)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from pot_zk.exceptions import ConfigurationError
from pot_zk.runs import bundle as files
from pot_zk.runs import export as export_module
from pot_zk.runs.export import export_run, unpack_export
from pot_zk.testing.bundle_edit import jsonl
from pot_zk.verify.run import verify_run

from process_support import run as process_run
from test_verify_each_check import honest  # noqa: F401 -- that module's fixture


def _witness(run: Path, step: int) -> Path:
    record = next(r for r in jsonl(run / files.PROOFS) if r["step"] == step and r["status"] == "proved")
    return (run / record["proof"]).parent / "witness.safetensors"


def _findings(report) -> set[tuple[str, str, int | None]]:
    return {(f.check, f.reason, f.step) for f in report.findings}


def test_a_certificate_witness_that_is_a_named_pipe_is_malformed_and_verify_does_not_block(honest, tmp_path):
    """It blocked `pot-zk verify` in open() for ever (safetensors opens it holding the GIL, so
    the command runs in its own process, killed after two minutes should it block again)."""
    run = Path(shutil.copytree(honest, tmp_path / "run"))
    witness = _witness(run, 0)
    witness.unlink()
    os.mkfifo(witness)
    try:
        done = process_run("verify", "run", "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("pot-zk verify blocked opening the named pipe")
    assert done.returncode == 1, done.stderr
    assert "FAILED proofs (malformed-proof) step 0:" in done.stdout and "not a regular file of the bundle" in done.stdout, done.stdout


def test_a_certificate_witness_linked_out_of_the_bundle_is_not_read(honest, tmp_path):
    """The link points to the step's true witness, kept outside: it was followed and the step
    passed; a bundle holds its own files."""
    run = Path(shutil.copytree(honest, tmp_path / "run"))
    witness = _witness(run, 0)
    outside = tmp_path / "outside.safetensors"
    shutil.move(witness, outside)
    witness.symlink_to(outside)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("proofs", "malformed-proof", 0) in _findings(report), report.summary()
    assert report.verdict == "FAILED"


def _with_member(archive: Path, name: str, data: bytes, out: Path, *, under_run: bool = True) -> Path:
    """``archive`` with one more file, ``name`` under its run directory (or at the top)."""
    with tarfile.open(archive) as source, tarfile.open(out, "w:gz") as target:
        top = source.getmembers()[0].name.split("/")[0]
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
        extra = tarfile.TarInfo(f"{top}/{name}" if under_run else name)
        extra.size = len(data)
        target.addfile(extra, io.BytesIO(data))
    return out


@pytest.mark.parametrize("name", ["notes/big.bin", "witness/step-00000000.safetensors", "checkpoint.safetensors", "proofs/../config.yaml",
                                  "proofs/../witness/step-00000000.safetensors"])
def test_an_export_holding_a_file_an_export_does_not_is_refused_before_unpacking(honest, tmp_path, name):
    """Every member was unpacked, those verify never reads too (a 1.5 MB archive wrote 1.5 GB);
    review33: `..` took a file past the check."""
    archive = export_run(honest, tmp_path / "run.tar.gz").archive
    (tmp_path / "plain").mkdir()
    assert unpack_export(archive, tmp_path / "plain").name == honest.name
    crafted = _with_member(archive, name, b"\0" * 1024, tmp_path / "crafted.tar.gz")
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(ConfigurationError, match=f"is not a pot-zk export: it holds {honest.name}/{name}, which an export does not"):
        unpack_export(crafted, into)
    assert list(into.iterdir()) == []


def test_an_export_larger_than_the_free_disk_is_refused_before_a_byte_is_written(honest, tmp_path, monkeypatch):
    archive = export_run(honest, tmp_path / "run.tar.gz").archive
    real = shutil.disk_usage

    def little_free(path):
        usage = real(path)
        return usage._replace(free=1000)

    monkeypatch.setattr(export_module.shutil, "disk_usage", little_free)
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(ConfigurationError, match=r"run.tar.gz unpacks to .* MiB, more than the 0 MiB free in .*into: unpack it where there is room"):
        unpack_export(archive, into)
    assert list(into.iterdir()) == []


def test_an_export_of_two_runs_is_refused_before_unpacking(honest, tmp_path):
    """A second run directory beside the run (its manifest a record an export holds) was unpacked
    before the run count refused the archive."""
    archive = export_run(honest, tmp_path / "run.tar.gz").archive
    crafted = _with_member(archive, "other-run/manifest.json", b"{}", tmp_path / "crafted.tar.gz", under_run=False)
    (tmp_path / "into").mkdir()
    with pytest.raises(ConfigurationError, match="is not a pot-zk export: it holds"):
        unpack_export(crafted, tmp_path / "into")
    assert list((tmp_path / "into").iterdir()) == []


def test_an_export_that_unpacks_to_over_a_hundred_times_its_size_is_refused(honest, tmp_path):
    """review33: 70 MiB of zeros under proofs/ (a file an export may hold) from a 70 kB archive."""
    archive = export_run(honest, tmp_path / "run.tar.gz").archive
    crafted = _with_member(archive, "proofs/pad.bin", bytes(70 << 20), tmp_path / "crafted.tar.gz")
    assert crafted.stat().st_size < 1 << 20
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(ConfigurationError, match=r"is not a pot-zk export: it unpacks to 70 MiB, over 100 times its size \(64 MiB\)"):
        unpack_export(crafted, into)
    assert list(into.iterdir()) == []


@pytest.mark.parametrize("name, size", [("certificate.json", 2 << 20), ("witness.safetensors", 300 << 20)])
def test_a_certificate_file_too_large_for_what_it_holds_is_malformed_before_it_is_read(honest, tmp_path, name, size):
    """review33: a 1 GiB certificate.json was read whole (2.3 GB of verify's memory)."""
    run = Path(shutil.copytree(honest, tmp_path / "run"))
    with open(_witness(run, 0).parent / name, "r+b") as grown:
        grown.truncate(size)  # sparse
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert ("proofs", "malformed-proof", 0) in _findings(report), report.summary()
    assert f"the freivalds certificate's {name} has {size:,} bytes, above the" in report.summary()


@pytest.mark.parametrize("command, name, how", [
    ("challenge", "commitments.jsonl", "fifo"), ("challenge", "commitments.jsonl", "link"),
    ("report", "evaluations.jsonl", "fifo"), ("report", "audit.jsonl", "fifo"),
])
def test_challenge_and_report_refuse_a_record_that_is_not_a_file_of_the_bundle_at_once(honest, tmp_path, command, name, how):
    """review33: verify refused these (unreadable-bundle); `challenge` blocked on a named pipe
    (and read /dev/zero until memory ran out, or a file outside the bundle, through a link) and
    `report` blocked too."""
    run = Path(shutil.copytree(honest, tmp_path / "run"))
    record = run / name
    if how == "fifo":
        record.unlink()
        os.mkfifo(record)
    else:
        outside = tmp_path / name
        shutil.move(record, outside)
        record.symlink_to(outside)
    options = ["--count", "1", "--nonce", "ab" * 16, "--out", "challenge.json"] if command == "challenge" else ["--out", "report"]
    try:
        done = process_run(command, "run", *options, "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pot-zk {command} blocked on the named pipe")
    assert done.returncode == 2, done.stdout + done.stderr
    kind = "is not a regular file" if how == "fifo" else "is a symbolic link"
    assert done.stderr.strip().splitlines() == [f"pot-zk {command}: run: {name} {kind}" + ("" if how == "fifo" else f" (to {record.readlink()}): a bundle holds its own files (unpack an export with pot-zk verify ARCHIVE)")], done.stderr
    assert not (tmp_path / "challenge.json").exists() and not (tmp_path / "report").exists()


def test_verify_of_a_run_in_use_notes_who_holds_it(honest, tmp_path):
    """review32: verify of a run still training listed missing proofs and never said the run was
    in use. Here the lock record names this test's own process (alive)."""
    import json as _json
    import socket
    import time

    from pot_zk.runs.lock import HOLDER_FILE

    run = Path(shutil.copytree(honest, tmp_path / "run"))
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": "pot-zk train", "since": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    (run / HOLDER_FILE).write_text(_json.dumps(record))
    notes = verify_run(run, cache_dir=tmp_path / "cache").notes
    assert any(note.startswith(f"the run is in use by pid {os.getpid()} on host {socket.gethostname()} (pot-zk train, since ") for note in notes), notes
    (run / HOLDER_FILE).write_text(_json.dumps({**record, "pid": 2**22 + 1}))  # a pid no process has: the holder is gone
    assert not any("is in use by" in note for note in verify_run(run, cache_dir=tmp_path / "cache").notes)


@pytest.mark.parametrize("kind", ["directories", "empty-files"])
def test_an_export_of_many_empty_members_is_refused_before_they_are_listed_or_unpacked(honest, tmp_path, kind, monkeypatch):
    """review49: 200,000 directories under proofs/ in a 1 MB archive unpacked to 771 MB (and
    200,000 inodes) and verified; a million empty members of one name took minutes to list.
    Each member counts at least a block, and the headers are read one at a time: refused after
    16,385 of the 24,000 (64 MiB), none unpacked."""
    archive = export_run(honest, tmp_path / "run.tar.gz").archive
    crafted = tmp_path / "crafted.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(crafted, "w:gz") as target:
        top = source.getmembers()[0].name.split("/")[0]
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
        for number in range(24_000):
            extra = tarfile.TarInfo(f"{top}/proofs/{number:x}" if kind == "directories" else f"{top}/proofs/junk")
            extra.type = tarfile.DIRTYPE if kind == "directories" else tarfile.REGTYPE
            target.addfile(extra, None if kind == "directories" else io.BytesIO(b""))
    assert crafted.stat().st_size < 1 << 20
    listed = []
    real = tarfile.TarFile.next
    monkeypatch.setattr(tarfile.TarFile, "next", lambda self: listed.append(1) or real(self))
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(ConfigurationError, match=r"is not a pot-zk export: it unpacks to 64 MiB, over 100 times its size \(64 MiB\)"):
        unpack_export(crafted, into)
    assert list(into.iterdir()) == [] and len(listed) < 20_000, len(listed)
