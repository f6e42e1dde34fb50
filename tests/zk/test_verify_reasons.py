"""`pot-zk verify` names each way a bundle's proofs can be missing, misplaced or unusable:
missing-proof, missing-proof-file (also a proof path that leaves the bundle), policy-mismatch,
dev-srs-refused, srs-unavailable, unknown-step. Each test alters a copy of one real bundle
(2 steps, step 0 proven with zk-halo2) and expects exactly the findings the alteration
explains, so a check that stops firing, or fires for another reason, turns the test red."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from pot_zk.backends.ezkl import adapter as ezkl_adapter
from pot_zk.testing.tamper import chain_lines
from pot_zk.verify.run import verify_run

from run_support import run_tiny

pytestmark = pytest.mark.prover

POT_ZK = str(Path(sys.executable).parent / "pot-zk")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, zk_cache: Path) -> Path:
    """One honest run: steps 0 and 1 committed, step 0 proven (every_k, k=2)."""
    run = tmp_path_factory.mktemp("verify-reasons") / "run"
    run_tiny(run, zk_cache, "train.max_steps=2")
    return run


@pytest.fixture
def copy(bundle: Path, tmp_path: Path) -> Path:
    destination = tmp_path / "run"
    shutil.copytree(bundle, destination)
    return destination


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_records(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def _change_proof_records(run: Path, change: Callable[[list[dict]], None]) -> None:
    records = _records(run / "proofs.jsonl")
    change(records)
    _write_records(run / "proofs.jsonl", records)


def _restate(run: Path, change: Callable[[dict], None]) -> None:
    """Change the manifest and the run.start record that fixed it, re-chaining the audit trail
    (what a trainer rewriting its whole bundle can do), so only the changed statement differs."""
    manifest = json.loads((run / "manifest.json").read_text())
    change(manifest)
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    events = _records(run / "audit.jsonl")
    for event in events:
        if event.get("event") == "run.start":
            event["manifest"] = manifest
    (run / "audit.jsonl").write_bytes(chain_lines(events))


def _findings(run: Path, cache_dir: Path, **options) -> set[tuple[str, str, int | None]]:
    """What verify names, besides the selected steps left without a proof (too-few-proven)."""
    return {(f.check, f.reason, f.step) for f in verify_run(run, cache_dir=cache_dir, **options).findings if f.reason != "too-few-proven"}


def _proof_of_step_0(run: Path) -> Path:
    record = next(r for r in _records(run / "proofs.jsonl") if r["step"] == 0)
    return run / record["proof"]


def test_the_unaltered_copy_verifies(copy, zk_cache):
    report = verify_run(copy, cache_dir=zk_cache)
    assert report.ok, report.summary()
    assert report.coverage == {"zk-halo2": 1, "commitment-only": 1}


def test_a_deleted_proof_record_is_a_missing_proof(copy, zk_cache):
    _change_proof_records(copy, lambda records: records.clear())
    # the audit trail, untouched, still records step 0 as proved
    assert _findings(copy, zk_cache) == {("proofs", "missing-proof", 0), ("proofs", "record-mismatch", 0)}


def test_a_deleted_proof_file_is_a_missing_proof_file(copy, zk_cache):
    _proof_of_step_0(copy).unlink()
    assert _findings(copy, zk_cache) == {("proofs", "missing-proof-file", 0)}


def test_a_proof_file_of_a_gibibyte_is_malformed_before_it_is_read(copy, zk_cache):
    """review31 (a 512 MiB Groth16 proof file was read whole): a zk-halo2 proof file of 1 GiB,
    the run's valid proof followed by zeros (sparse), is refused by its size."""
    with open(_proof_of_step_0(copy), "r+b") as grown:
        grown.truncate(1 << 30)
    report = verify_run(copy, cache_dir=zk_cache)
    assert {(f.check, f.reason, f.step) for f in report.findings if f.reason != "too-few-proven"} == {("proofs", "malformed-proof", 0)}
    assert "the proof file has 1,073,741,824 bytes" in report.summary()


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink"])
def test_a_proof_outside_the_bundle_is_a_missing_proof_file(copy, zk_cache, tmp_path, how):
    """The proof outside is the run's own valid proof: only where it lies is wrong."""
    outside = tmp_path / "outside" / "proof.json"
    outside.parent.mkdir()
    shutil.copyfile(_proof_of_step_0(copy), outside)
    if how == "symlink":
        _proof_of_step_0(copy).unlink()
        _proof_of_step_0(copy).symlink_to(outside)
    else:
        path = "../outside/proof.json" if how == "relative" else str(outside)
        _change_proof_records(copy, lambda records: records[0].update(proof=path))
    assert _findings(copy, zk_cache) == {("proofs", "missing-proof-file", 0)}


def test_a_proof_record_for_a_step_without_a_commitment_is_an_unknown_step(copy, zk_cache):
    _change_proof_records(copy, lambda records: records.append({**records[0], "step": 99}))
    # and no proof.result in the audit trail records that outcome
    assert _findings(copy, zk_cache) == {("proofs", "unknown-step", 99), ("proofs", "record-mismatch", 99)}


def test_steps_marked_for_proving_against_the_declared_policy_are_a_policy_mismatch(copy, zk_cache):
    """Declared every_step afterwards: step 1 was not marked for proving, so it disagrees."""
    _restate(copy, lambda manifest: manifest.update(policy={"name": "every_step"}))
    assert _findings(copy, zk_cache) == {("policy", "policy-mismatch", 1)}


def test_a_production_run_proven_with_a_dev_srs_is_refused_unless_allowed(copy, zk_cache):
    _restate(copy, lambda manifest: manifest.update(mode="production"))
    assert _findings(copy, zk_cache) == {("proofs", "dev-srs-refused", None)}
    assert _findings(copy, zk_cache, allow_dev_srs=True) == set()


def test_no_srs_given_and_none_cached_is_srs_unavailable(copy, tmp_path):
    assert _findings(copy, tmp_path / "empty-cache") == {("proofs", "srs-unavailable", None)}


def test_a_cached_dev_srs_other_than_the_runs_is_srs_unavailable(copy, zk_cache, tmp_path):
    """Another dev SRS of the same size in the verifier's cache: its hash is not the run's."""
    logrows = json.loads((copy / "manifest.json").read_text())["srs"]["logrows"]
    other = ezkl_adapter.dev_srs(tmp_path / "other-cache", logrows)
    assert other.sha256 != ezkl_adapter.dev_srs(zk_cache, logrows).sha256
    assert _findings(copy, tmp_path / "other-cache") == {("proofs", "srs-unavailable", None)}


def test_pot_zk_verify_prints_the_reason_and_exits_non_zero(copy, zk_cache):
    _change_proof_records(copy, lambda records: records.clear())
    result = subprocess.run([POT_ZK, "verify", str(copy), "--cache-dir", str(zk_cache)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED proofs (missing-proof) step 0: the policy selected this step but it has no proof outcome" in result.stdout


@pytest.mark.parametrize("srs", ["given", "cached-dev"])
def test_a_declared_circuit_too_large_for_the_srs_is_not_compiled(copy, zk_cache, tmp_path, srs):
    """review49: verify compiled the circuit of whatever architecture the manifest declared
    before it compared the circuit's rows with the SRS ([4, 512, 512, 2]: 4 min 39 s, an entry
    left in the verifier's cache). The run's SRS (2^12 rows) cannot hold the forward pass of
    [4, 30, 30, 2] at batch 2 (2,160 products, at least 4 rows each; review51: a bound of half a
    row per product compiled it first): srs-mismatch, and nothing is compiled, whether the
    auditor names the SRS (--srs) or verify finds the run's dev SRS in its cache."""
    logrows = json.loads((copy / "manifest.json").read_text())["srs"]["logrows"]
    assert logrows == 12
    _restate(copy, lambda manifest: manifest["circuit"]["architecture"].update(dims=[4, 30, 30, 2]))
    cache = tmp_path / "auditor-cache"
    (cache / "srs").mkdir(parents=True)
    shutil.copyfile(ezkl_adapter.dev_srs_path(zk_cache, logrows), cache / "srs" / f"dev-kzg{logrows}.srs")
    options = {"srs_path": cache / "srs" / f"dev-kzg{logrows}.srs"} if srs == "given" else {}
    report = verify_run(copy, cache_dir=cache, **options)
    [finding] = [f for f in report.findings if f.check == "proofs" and f.reason != "too-few-proven"]
    assert finding.reason == "srs-mismatch" and "2,160 products" in finding.message and "2^12 rows" in finding.message, report.summary()
    assert not report.verified_steps
    assert not [path for path in (cache / "verifier").rglob("*") if path.is_file()], sorted((cache / "verifier").rglob("*"))
