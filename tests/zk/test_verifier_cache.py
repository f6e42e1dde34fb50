"""`pot-zk verify` of a zk-halo2 run keeps the circuit and verifying key it derived in its own
cache (CACHE/verifier/ezkl/<circuit id>/...): a second verify, in a new process, runs none of
ezkl's compilation or setup; an entry whose files or record do not match, or that sits in a
directory others can write, is derived afresh, never used; --no-verifier-cache derives afresh;
and what the trainer keeps in the same cache (CACHE/circuits/) is never read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pot_zk.backends.registry import spec_from_dict
from pot_zk.runs.bundle import MANIFEST
from pot_zk.testing.bundle_edit import read_json, sync_audit, write_json
from pot_zk.verify.run import verify_run

from run_support import UNSHARED

pytestmark = pytest.mark.prover

DERIVATION = ("gen_settings", "calibrate_settings", "compile_circuit", "setup")
VERIFY = """
import sys, ezkl
def refused(*args, **kwargs):
    raise RuntimeError("ezkl derivation called")
for name in sys.argv[1].split(","):
    if name:
        setattr(ezkl, name, refused)
from pot_zk.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _verify(run: Path, cache: Path, *options: str, refuse: tuple[str, ...] = ()) -> dict:
    """``pot-zk verify --json -`` in a process of its own, with ezkl's ``refuse`` functions raising."""
    argv = [sys.executable, "-c", VERIFY, ",".join(refuse), "verify", str(run), "--cache-dir", str(cache), "--json", "-", *options]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert done.stdout.startswith("{"), f"exit {done.returncode}: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def _verifier_entry(report: dict) -> Path:
    return Path(report["verifier_keys"]["zk-halo2"]["verifying_key"]["directory"])


@pytest.fixture(scope="module")
def first_verify(honest_runs, tmp_path_factory, zk_cache: Path) -> tuple[dict, Path]:
    """The first verify of the honest run with a cache holding only the dev SRS it was proven
    with: its report and that cache, now holding the key entry it derived (each test works on a
    copy: :func:`auditor_cache`)."""
    cache = tmp_path_factory.mktemp("first-verify") / "auditor-cache"
    shutil.copytree(zk_cache / "srs", cache / "srs", ignore=UNSHARED)
    first = _verify(honest_runs.run, cache)
    assert first["verdict"] == "VERIFIED", first
    key = first["verifier_keys"]["zk-halo2"]["verifying_key"]
    assert key["source"] == "derived" and key["derive_s"] > 0
    assert _verifier_entry(first).parent.parent == cache / "verifier" / "ezkl"
    return first, cache


@pytest.fixture()
def auditor_cache(tmp_path: Path, first_verify) -> Path:
    """A copy of the auditor's cache after its first verify (modes kept: the entry's are 0700)."""
    return Path(shutil.copytree(first_verify[1], tmp_path / "auditor-cache"))


@pytest.fixture()
def derived(first_verify, auditor_cache: Path) -> tuple[dict, Path]:
    """The first verify's report and the key entry it derived, in this test's copy of the cache."""
    first, template = first_verify
    return first, auditor_cache / _verifier_entry(first).relative_to(template)


def test_a_second_verify_runs_no_compilation_or_setup(honest_runs, auditor_cache, derived):
    first, entry = derived
    second = _verify(honest_runs.run, auditor_cache, refuse=DERIVATION)
    assert second["verdict"] == "VERIFIED" and second["coverage"] == first["coverage"], second
    key = second["verifier_keys"]["zk-halo2"]["verifying_key"]
    assert key == {**first["verifier_keys"]["zk-halo2"]["verifying_key"], "source": "verifier-cache", "derive_s": 0.0, "directory": str(entry)}
    for directory in (auditor_cache / "verifier", entry, entry.parent / "circuit"):
        assert directory.stat().st_mode & 0o777 == 0o700, directory


@pytest.mark.parametrize("edit", ["vk-byte-flipped", "vk-of-another-circuit", "settings-edited", "record-removed"])
def test_an_edited_or_planted_entry_is_derived_afresh_never_used(honest_runs, auditor_cache, derived, tmp_path, edit):
    first, entry = derived
    vk, circuit = entry / "vk.key", entry.parent / "circuit"
    honest_vk = vk.read_bytes()
    if edit == "vk-byte-flipped":
        data = bytearray(honest_vk)
        data[len(data) // 2] ^= 1
        vk.write_bytes(bytes(data))
    elif edit == "vk-of-another-circuit":
        other = _verify(_other_statement(honest_runs.run, tmp_path / "other"), auditor_cache)
        shutil.copyfile(_verifier_entry(other) / "vk.key", vk)
    elif edit == "settings-edited":
        settings = json.loads((circuit / "settings.json").read_text())
        settings["model_output_scales"] = [settings["model_output_scales"][0] + 2]  # would let a 4x larger residual pass
        (circuit / "settings.json").write_text(json.dumps(settings))
    else:
        (entry / "derived.json").unlink()
    second = _verify(honest_runs.run, auditor_cache)
    assert second["verdict"] == "VERIFIED", second
    assert second["verifier_keys"]["zk-halo2"]["verifying_key"]["source"] == "derived"
    assert any("was not used" in note and "derived afresh" in note for note in second["notes"]), second["notes"]
    assert vk.read_bytes() == honest_vk, "the rejected entry is replaced by what verify derived"


def _other_statement(run: Path, copy: Path) -> Path:
    """The run with its learning rate changed (audit trail rewritten): another circuit."""
    shutil.copytree(run, copy)
    manifest = read_json(copy / MANIFEST)
    manifest["circuit"]["learning_rate"] = 0.1
    manifest["circuit_id"] = spec_from_dict(manifest["circuit"]).circuit_id()
    write_json(copy / MANIFEST, manifest)
    sync_audit(copy)
    return copy


def test_another_statements_entry_under_this_circuit_id_is_not_used(honest_runs, auditor_cache, derived, tmp_path):
    """A whole, self-consistent entry (record included) of the honest statement, planted under
    the circuit id of a run whose learning rate was changed: its record names another statement."""
    _, entry = derived
    edited = _other_statement(honest_runs.run, tmp_path / "edited")
    shutil.copytree(entry.parent, auditor_cache / "verifier" / "ezkl" / read_json(edited / MANIFEST)["circuit_id"])
    report = _verify(edited, auditor_cache)
    assert report["verdict"] == "FAILED", report
    assert {f["reason"] for f in report["findings"] if f["check"] == "proofs"} <= {"invalid-proof", "wrong-circuit", "update-out-of-tolerance", "too-few-proven"}
    assert {f["step"] for f in report["findings"] if f["check"] == "proofs" and f["reason"] != "too-few-proven"} == {0, 2}
    assert any("records another circuit_id" in note for note in report["notes"]), report["notes"]


def test_a_verifier_cache_others_can_write_to_is_not_used(honest_runs, auditor_cache, derived):
    _, entry = derived
    (auditor_cache / "verifier").chmod(0o777)
    report = _verify(honest_runs.run, auditor_cache)
    assert report["verdict"] == "VERIFIED", report
    key = report["verifier_keys"]["zk-halo2"]["verifying_key"]
    assert key["source"] == "derived" and auditor_cache not in _verifier_entry(report).parents
    assert any("verifier cache was not used" in note and "writable by others" in note for note in report["notes"]), report["notes"]


def test_no_verifier_cache_derives_afresh_and_leaves_the_cache_alone(honest_runs, auditor_cache, derived):
    _, entry = derived
    before = {path: path.stat().st_mtime_ns for path in entry.parent.rglob("*")}
    report = _verify(honest_runs.run, auditor_cache, "--no-verifier-cache")
    assert report["verdict"] == "VERIFIED", report
    key = report["verifier_keys"]["zk-halo2"]["verifying_key"]
    assert key["source"] == "derived" and key["derive_s"] > 0 and auditor_cache not in _verifier_entry(report).parents
    assert {path: path.stat().st_mtime_ns for path in entry.parent.rglob("*")} == before


def test_verify_never_reads_what_the_trainer_cached(honest_runs, zk_cache, tmp_path):
    """One cache for trainer and verifier: the trainer's compiled circuit and keys replaced by
    garbage and made unreadable; verify derives its own and the trainer's files stay as they are."""
    cache = tmp_path / "shared-cache"
    shutil.copytree(zk_cache / "srs", cache / "srs", ignore=UNSHARED)
    circuit_id = read_json(honest_runs.run / MANIFEST)["circuit_id"]
    trainers = cache / "circuits" / circuit_id
    shutil.copytree(zk_cache / "circuits" / circuit_id, trainers, ignore=UNSHARED)
    for path in [p for p in trainers.rglob("*") if p.is_file()]:
        path.write_bytes(b"planted by the trainer")
    trainers.chmod(0)
    try:
        report = verify_run(honest_runs.run, cache_dir=cache)
        assert report.verdict == "VERIFIED", report.summary()
        assert _verifier_entry(report.to_dict()).parent.parent == cache / "verifier" / "ezkl"
    finally:
        trainers.chmod(0o700)
    assert all(p.read_bytes() == b"planted by the trainer" for p in trainers.rglob("*") if p.is_file())
    assert set(os.listdir(cache)) == {"srs", "circuits", "verifier"}
