"""Reliability and security suites with the real prover (reduced sizes; the full campaigns are
scripts/{fault,tamper,crash}_campaign.py): tampered bundles are rejected with the right named
reason, a corrupt proof file is caught by verify, a SIGKILLed run resumes, the process
executor keeps the audit trail intact, and two processes can build one key cache at once."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pot_zk.core.audit_verify import verify_audit
from pot_zk.runs.bundle import RunBundle
from pot_zk.testing.tamper import KINDS, judge, tampered_copy
from pot_zk.verify.run import verify_run

from run_support import run_tiny

pytestmark = pytest.mark.prover

ROOT = Path(__file__).resolve().parents[2]
FAKE_PROVER = ROOT / "tests" / "fake_provers" / "fake_prover.py"


def _wrapper(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fake-prover"
    path.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(FAKE_PROVER)!r}, run_name='__main__')\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def honest(honest_runs) -> tuple[Path, Path]:
    """One honest bundle with real proofs of steps 0 and 2, and another run's (step 0)."""
    return honest_runs.run, honest_runs.other


def test_the_honest_bundle_and_its_copy_verify(honest, zk_cache, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(honest[0], copy)
    report = verify_run(copy, cache_dir=zk_cache)
    assert report.ok, report.summary()


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_tampering_is_rejected_with_its_named_reason(kind, seed, honest, zk_cache, tmp_path):
    tampering = tampered_copy(honest[0], tmp_path / "tampered", kind, random.Random(f"{kind}-{seed}"), honest[1])
    report = verify_run(tmp_path / "tampered", cache_dir=zk_cache, **tampering.options)
    right, why = judge(report, tampering)
    assert right, f"{tampering.detail}: {why}"


def test_a_manifest_edited_after_the_run_started_is_named(honest, zk_cache, tmp_path):
    """e.g. a production run relabelled development to dodge the dev-SRS refusal."""
    run = tmp_path / "run"
    shutil.copytree(honest[0], run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["mode"] = "research"
    (run / "manifest.json").write_text(json.dumps(manifest))
    report = verify_run(run, cache_dir=zk_cache)
    assert [(f.check, f.reason) for f in report.findings] == [("statement", "manifest-mismatch")]


def test_a_prover_writing_a_corrupt_proof_file_gets_the_run_rejected_by_verify(tmp_path, zk_cache):
    run = tmp_path / "run"
    summary = run_tiny(run, zk_cache, f"prover.binary={_wrapper(tmp_path / 'bin')}", "prover.args=[corrupt-proof,zk-halo2]")
    assert summary.progress["proof_types"] == {"zk-halo2": 2}  # the prover claimed success
    report = verify_run(run, cache_dir=zk_cache)
    assert {(f.check, f.reason, f.step) for f in report.findings} == {
        ("proofs", "malformed-proof", 0), ("proofs", "malformed-proof", 2), ("proofs", "too-few-proven", None),
    }


def test_a_run_killed_while_proving_its_first_step_resumes_and_verifies(tmp_path, zk_cache):
    sys.path.insert(0, str(ROOT / "scripts"))
    from crash_campaign import trial

    def proving_step_0(run: Path) -> bool:
        return (run / "witness" / "step-00000000.safetensors").exists() and not (run / "proofs.jsonl").exists()

    result = trial(tmp_path / "run", zk_cache, 600, kill_when=proving_step_0)
    assert result["action"] == "resume" and result["proved_before_kill"] == []
    assert result["problems"] == [] and result["verified"]


def test_process_executor_with_retries_keeps_one_intact_audit_record_per_attempt(tmp_path, zk_cache):
    run = tmp_path / "run"
    summary = run_tiny(
        run, zk_cache, "executor=process", "executor.workers=3", "policy=every_step", "train.max_steps=8",
        "handler=retry", "retry=aggressive", "prover.timeout_s=3",
        f"prover.binary={_wrapper(tmp_path / 'bin')}", f"prover.args=[random,concurrency-3,{tmp_path / 'state'}]",
    )
    trail = run / "audit.jsonl"
    assert verify_audit(trail).ok and verify_audit(trail).closed
    events = [json.loads(line) for line in trail.read_text().splitlines()]
    attempts: dict[int, list[int]] = {}
    for event in events:
        if event["event"] == "attempt":
            attempts.setdefault(event["step"], []).append(event["attempt"])
    records = RunBundle.open(run).proofs()
    assert sorted(r["step"] for r in records) == list(range(8)) == sorted(attempts)
    for record in records:
        assert attempts[record["step"]] == list(range(1, record["attempts"] + 1)), record
    assert sum(len(a) for a in attempts.values()) > 8, "the campaign seed should make some attempts retry"
    assert summary.progress["outcomes"].get("parked", 0) == len(list((run / "pending").glob("*.json")))


def test_two_processes_building_the_same_keys_into_one_fresh_cache_both_succeed(tmp_path):
    cache = tmp_path / "fresh-cache"
    code = (
        "import hashlib, sys; sys.path.insert(0, %r)\n"
        "from pathlib import Path\n"
        "from zk_support import tiny_spec\n"
        "from pot_zk.backends.ezkl import halo2, adapter as ezkl_adapter\n"
        "cache = Path(%r)\n"
        "circuit = halo2.compiled_circuit(tiny_spec(), cache)\n"
        "srs = ezkl_adapter.dev_srs(cache, circuit.logrows)\n"
        "keys = ezkl_adapter.ensure_keys(circuit, srs)\n"
        "print(hashlib.sha256(keys.vk.read_bytes()).hexdigest(), circuit.circuit_id)\n"
    ) % (str(ROOT / "tests" / "zk"), str(cache))
    processes = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [o[1][-2000:] for o in outputs]
    assert outputs[0][0] == outputs[1][0]  # one verifying key, one circuit
    circuit_dirs = list((cache / "circuits").iterdir())
    assert [d.name for d in circuit_dirs if not d.name.startswith(".")] == [outputs[0][0].split()[1]]
    assert not list(cache.rglob(".staging-*"))
    assert len(list((cache / "srs").glob("*.srs"))) == 1
