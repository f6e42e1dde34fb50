"""`pot-zk train` end to end with the real prover (zk-halo2; the kill-and-resume and sweep
tests with zk-groth16, the default): runs verify; modes decide what a failing prover does to a
run; resumed and swept runs verify too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pot_zk.runs.bundle import RunBundle, load_model, save_model
from pot_zk.cli.commands import prove_pending_in_run
from pot_zk.exceptions import ConfigurationError, PotZkError
from pot_zk.verify.run import verify_run

from process_support import holder_pid, kill, tiny_run
from run_support import run_tiny

pytestmark = pytest.mark.prover


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]


def test_tiny_run_proves_and_verifies(tmp_path, zk_cache):
    run = tmp_path / "run"
    summary = run_tiny(run, zk_cache)
    assert summary.status == "completed"
    assert summary.progress["proof_types"] == {"zk-halo2": 2}
    report = verify_run(run, cache_dir=zk_cache)
    assert report.ok, report.summary()
    assert report.coverage == {"zk-halo2": 2, "commitment-only": 2}
    assert {"audit-chain", "dataset-root", "steps", "commitment-chain", "policy", "initial-model", "final-model", "proofs"} <= set(report.passed)
    kept = sorted(p.name for p in (run / "witness").glob("*"))
    assert kept == [f"step-{s:08d}.safetensors" for s in range(4)], "a small run keeps every witness, for challenges"


def test_a_run_that_keeps_only_scheduled_witnesses_drops_them_once_proven(tmp_path, zk_cache):
    run = tmp_path / "run"
    assert run_tiny(run, zk_cache, "witness.retain=scheduled").progress["proof_types"] == {"zk-halo2": 2}
    assert RunBundle.open(run).manifest()["witnesses"]["retained"] == "scheduled"
    assert not list((run / "witness").glob("*")), "witnesses of proven steps must not stay in the bundle"
    assert verify_run(run, cache_dir=zk_cache).ok


def test_fail_fast_halts_training_at_the_first_failed_proof(tmp_path, zk_cache, make_prover):
    run = tmp_path / "run"
    crash = make_prover("crash")
    with pytest.raises(PotZkError):
        run_tiny(run, zk_cache, "mode=production", "srs.allow_dev_srs=true", f"prover.binary={crash}")
    assert len(RunBundle.open(run).commitments()) == 1
    events = _events(run)
    assert [e["event"] for e in events if e["event"] in ("halt", "run.end")] == ["halt", "run.end"]
    assert events[-1]["status"] == "halted"
    assert not (run / "model_final.safetensors").exists()


def test_continue_finishes_the_run_with_the_gap_recorded(tmp_path, zk_cache, make_prover):
    run = tmp_path / "run"
    crash = make_prover("crash")
    summary = run_tiny(run, zk_cache, "mode=development", f"prover.binary={crash}")
    assert summary.status == "completed" and summary.progress["outcomes"] == {"failed": 2}
    failed = [r for r in RunBundle.open(run).proofs() if r["status"] == "failed"]
    assert [r["step"] for r in failed] == [0, 2] and all(r["attempts"] == 4 for r in failed)
    attempts = [e for e in _events(run) if e["event"] == "attempt"]
    assert len(attempts) == 8 and all(e["outcome"] == "failed" for e in attempts)
    report = verify_run(run, cache_dir=zk_cache, min_proven=0)  # the auditor accepts a run whose proofs all failed
    assert report.ok and report.verdict_line == "UNPROVEN: 2 of 2 selected steps have no proof (steps 0, 2)", report.summary()
    assert report.coverage == {"failed": 2, "commitment-only": 2}
    assert "too-few-proven" in {f.reason for f in verify_run(run, cache_dir=zk_cache).findings}


def test_retry_parks_failed_steps_and_prove_pending_completes_them(tmp_path, zk_cache, make_prover):
    run = tmp_path / "run"
    flaky = make_prover("crash", name="prover")
    summary = run_tiny(run, zk_cache, "handler=retry", "retry=none", f"prover.binary={flaky}")
    assert summary.progress["outcomes"] == {"parked": 2}
    assert sorted(p.name for p in (run / "pending").iterdir()) == ["step-00000000.json", "step-00000002.json"]
    assert len(list((run / "witness").glob("*.safetensors"))) == 4
    # the prover is repaired: the same program now runs the real ezkl prover
    flaky.write_text(f"#!/bin/sh\nexec {Path(sys.executable).parent / 'pot-zk-ezkl-prover'}\n")
    assert prove_pending_in_run(run, [f"cache_dir={zk_cache}"]) == 0
    assert not list((run / "pending").iterdir())
    report = verify_run(run, cache_dir=zk_cache)
    assert report.ok, report.summary()
    assert report.coverage == {"zk-halo2": 2, "commitment-only": 2}


def _prover_crashing_at(path: Path, steps: set[int]) -> Path:
    """A prover program that crashes on the given steps and runs the real ezkl prover otherwise."""
    real = Path(sys.executable).parent / "pot-zk-ezkl-prover"
    path.write_text(
        f"#!{sys.executable}\nimport json, subprocess, sys\nrequest = sys.stdin.read()\n"
        f"if json.loads(request)['step'] in {sorted(steps)!r}:\n    sys.exit(3)\n"
        f"sys.exit(subprocess.run([{str(real)!r}], input=request, text=True).returncode)\n"
    )
    path.chmod(0o755)
    return path


def test_prove_pending_proves_a_moved_runs_own_steps_records_each_outcome_and_skips_answered_ones(tmp_path, zk_cache, make_prover):
    """Found by a review: a parked job kept absolute paths (a moved run's jobs failed forever, a
    copy's proved into the original), `prove-pending RUN/pending` recorded nothing, a swapped
    witness was proven and its job thrown away, and a step `respond` proved stayed parked and was
    proven twice (duplicate-proof)."""
    from pot_zk.cli.main import main
    from pot_zk.core.challenge import choose_steps, commitment_head
    from pot_zk.testing.bundle_edit import jsonl

    first = tmp_path / "first"
    summary = run_tiny(first, zk_cache, "handler=retry", "retry=none", f"prover.binary={make_prover('crash', name='prover')}")
    assert summary.progress["outcomes"] == {"parked": 2}
    run = tmp_path / "moved"
    first.rename(run)  # the parked jobs name the old directory
    prover = _prover_crashing_at(tmp_path / "bin" / "prover", {2})
    assert main(["prove-pending", str(run / "pending"), f"cache_dir={zk_cache}", "retry=none", f"prover.binary={prover}"]) == 1  # the park directory: the run's outcomes
    assert [(r["step"], r["status"]) for r in jsonl(run / "proofs.jsonl")] == [(0, "parked"), (2, "parked"), (0, "proved"), (2, "parked")]
    assert next(r for r in jsonl(run / "proofs.jsonl") if r["status"] == "proved")["proof"].startswith("proofs/step-00000000/")
    assert sorted(p.name for p in (run / "pending").iterdir()) == ["step-00000002.json"]

    witness = run / "witness" / "step-00000002.safetensors"
    saved = witness.read_bytes()
    witness.write_bytes((run / "witness" / "step-00000003.safetensors").read_bytes())
    assert main(["prove-pending", str(run), f"cache_dir={zk_cache}", "retry=none", f"prover.binary={prover}"]) == 2  # refused before proving
    assert len(jsonl(run / "proofs.jsonl")) == 4 and (run / "pending" / "step-00000002.json").is_file()
    witness.write_bytes(saved)

    bundle = RunBundle.open(run)
    head = commitment_head(bundle.manifest(), bundle.commitments())
    nonce = next(f"{n:04x}" for n in range(1000) if 2 in choose_steps(head, f"{n:04x}", 1, 4))
    assert main(["challenge", str(run), "--count", "1", "--nonce", nonce, "--out", str(tmp_path / "C.json"), "--cache-dir", str(zk_cache)]) == 0
    assert main(["respond", str(run), str(tmp_path / "C.json"), f"prover.binary={Path(sys.executable).parent / 'pot-zk-ezkl-prover'}"]) == 0
    assert not list((run / "pending").iterdir()), "respond proved the parked step: its job is gone"
    assert main(["prove-pending", str(run), f"cache_dir={zk_cache}"]) == 0
    report = verify_run(run, cache_dir=zk_cache)
    assert report.ok and report.coverage == {"zk-halo2": 2, "commitment-only": 2}, report.summary()


def test_an_outcome_is_recorded_before_its_parked_job_is_removed(tmp_path, make_strategy):
    """prove_pending records each outcome, then removes the job: an interruption in between
    leaves the job parked (proving it again is harmless), never a proven step without a record."""
    from pot_zk.core.audit import AuditLog
    from pot_zk.core.protocol import ProverRequest
    from pot_zk.proving.parking import ParkForLater, parked_path, prove_pending
    from pot_zk.proving.pipeline import ProofFailure, ProvingPipeline
    from pot_zk.proving.retry import RetrySchedule
    from pot_zk.proving.stats import ProvingStats
    from pot_zk.proving.strategies import StrategyRegistry

    park = tmp_path / "pending"
    strategy = make_strategy("succeed")
    job = ProverRequest(step=4, kind="sgd", circuit={}, witness_path=str(tmp_path / "w"), cache_dir=str(tmp_path), output_dir=str(tmp_path / "out"))
    audit = AuditLog(tmp_path / "audit.jsonl")
    pipeline = ProvingPipeline(strategy, RetrySchedule(max_attempts=1), ParkForLater(park), audit, ProvingStats())
    failure = ProofFailure(job, strategy, PotZkError("down"), 1)
    ParkForLater(park)(failure, pipeline)

    def interrupted(result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prove_pending(park, schedule=RetrySchedule(max_attempts=1), audit=audit, stats=ProvingStats(), registry=StrategyRegistry(), record=interrupted)
    assert parked_path(park, 4).is_file()


def test_fallback_labels_each_step_with_the_proof_type_it_got(tmp_path, zk_cache, make_prover):
    run = tmp_path / "run"
    crash = make_prover("crash")
    summary = run_tiny(run, zk_cache, "handler=fallback", "retry=none", f"prover.binary={crash}")
    assert summary.progress["proof_types"] == {"freivalds": 2}
    assert any(e["event"] == "fallback" for e in _events(run))
    report = verify_run(run, cache_dir=zk_cache)
    assert report.ok, report.summary()
    assert report.coverage == {"freivalds": 2, "commitment-only": 2}


def test_production_refuses_a_dev_srs_before_doing_anything(tmp_path, zk_cache):
    run = tmp_path / "run"
    with pytest.raises(ConfigurationError, match="srs.path"):
        run_tiny(run, zk_cache, "mode=production")
    assert not (run / "manifest.json").exists()
    assert not (run / "commitments.jsonl").exists()


def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    binary = Path(sys.executable).parent / "pot-zk"
    return subprocess.Popen([str(binary), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_run_killed_mid_way_resumes_without_losing_or_redoing_proofs(tmp_path):
    """(zk-groth16, the default backend: the lifecycle is the backend's business only through
    the prover program; tests/zk/test_reliability.py kills a zk-halo2 run while it proves.)"""
    run, cache = tmp_path / "run", tmp_path / "cache"
    trainer = _cli("train", *tiny_run(run, cache, steps=10, k=2), cwd=tmp_path)
    proofs = run / "proofs.jsonl"
    deadline = time.monotonic() + 300
    try:
        while not (proofs.exists() and proofs.read_text().count("\n") >= 1):
            assert trainer.poll() is None, trainer.stdout.read()
            assert time.monotonic() < deadline, "no proof within 300 s"
            time.sleep(0.05)
        os.kill(trainer.pid, signal.SIGKILL)
        trainer.wait()
        first = RunBundle.open(run).proofs()  # two provers: whichever proof landed first
        assert first and len(first) < 5, "the kill came after every proof"
        proof_mtime = (run / first[0]["proof"]).stat().st_mtime_ns
        resumed = _cli("resume", str(run), cwd=tmp_path)
        output, _ = resumed.communicate(timeout=600)
        assert resumed.returncode == 0, output
    finally:
        kill(holder_pid(cache, run))
    records = RunBundle.open(run).proofs()
    assert sorted(r["step"] for r in records) == [0, 2, 4, 6, 8] and {r["proof_type"] for r in records} == {"zk-groth16"}
    assert (run / first[0]["proof"]).stat().st_mtime_ns == proof_mtime
    assert any(e["event"] == "run.resume" for e in _events(run))
    report = verify_run(run, cache_dir=cache)
    assert report.ok, report.summary()


def test_multirun_over_two_modes_gives_two_verifiable_bundles(tmp_path):
    """(zk-groth16: as above.)"""
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    overrides = [o for o in tiny_run(tmp_path / "unused", cache, steps=2) if not o.startswith("run_dir=")]
    process = _cli("train", "--multirun", "mode=development,research", f"hydra.sweep.dir={sweep}", *overrides, cwd=tmp_path)
    output, _ = process.communicate(timeout=600)
    runs = sorted(p.parent for p in sweep.glob("*/manifest.json"))
    for run in runs:
        kill(holder_pid(cache, run))
    assert process.returncode == 0, output
    assert len(runs) == 2
    assert [RunBundle.open(r).manifest()["mode"] for r in runs] == ["development", "research"]
    for run in runs:
        report = verify_run(run, cache_dir=cache)
        assert report.ok and report.coverage == {"zk-groth16": 1, "commitment-only": 1}, report.summary()


def test_disabled_mode_commits_every_step_and_proves_none(tmp_path, zk_cache):
    run = tmp_path / "run"
    summary = run_tiny(run, zk_cache, "mode=disabled")
    assert summary.status == "completed" and summary.progress["scheduled"] == 0
    assert len(RunBundle.open(run).commitments()) == 4
    assert not (run / "proofs").exists()
    report = verify_run(run, cache_dir=zk_cache)
    assert report.ok, report.summary()
    assert report.coverage == {"commitment-only": 4}
    assert report.references["plan"].endswith("policy every_k k=2 (proving disabled: the policy selected no step); mode disabled"), report.references["plan"]


def test_resume_writes_the_audit_event_a_kill_cut_off(tmp_path, zk_cache):
    """Killed after a step's commitment record was written but before its audit event: the
    resumed run writes the missing event, and the bundle verifies. (The cut also drops the
    final model's score from the trail; the resumed run writes that record too.)"""
    run, shorter = tmp_path / "run", tmp_path / "two-steps"
    run_tiny(run, zk_cache, "mode=disabled", "train.max_steps=3")
    run_tiny(shorter, zk_cache, "mode=disabled", "train.max_steps=2")
    events = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    cut = next(i for i, e in enumerate(events) if e["event"] == "commitment" and e["step"] == 2)
    (run / "audit.jsonl").write_text("".join(line + "\n" for line in (run / "audit.jsonl").read_text().splitlines()[:cut]))
    after_step_1, _ = load_model(shorter / "model_final.safetensors")
    save_model(after_step_1, run / "checkpoint.safetensors", {"next_step": "2"})
    (run / "model_final.safetensors").unlink()
    resumed = _cli("resume", str(run), cwd=tmp_path)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    report = verify_run(run, cache_dir=zk_cache)
    assert report.ok, report.summary()
