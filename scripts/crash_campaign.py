#!/usr/bin/env python
"""Crash-and-resume campaign: SIGKILL ``pot-zk train`` at seeded random moments, then
``pot-zk resume`` the run; every resumed run must verify, with every scheduled step proven
exactly once and no proof made before the kill redone.

    python scripts/crash_campaign.py --trials 20 --seed 1

Each trial trains the tiny 4-3-2 MLP (batch 2, 4 steps, steps 0 and 2 proven with the real
ezkl prover) as a subprocess and kills it (SIGKILL, no cleanup) after a delay drawn from
the seeded generator over the run's whole duration, so kills land before the bundle exists,
during commitments, during proofs, in audit writes, or after the run ended. A trial killed
before the manifest exists (nothing to resume) starts ``pot-zk train`` again: into a directory
holding the files of the run that never started that is refused, naming them as such
(docs/runs.md), so the trial then removes the directory, as the message says, and trains again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "zk"))

from pot_zk.bundle.layout import training_ends  # noqa: E402
from pot_zk.runs.bundle import RunBundle  # noqa: E402
from pot_zk.verify.run import verify_run  # noqa: E402

POT_ZK = Path(sys.executable).parent / "pot-zk"


def overrides(run: Path, cache: Path, steps: int) -> list[str]:
    from run_support import tiny_overrides

    return tiny_overrides(run, cache, f"train.max_steps={steps}")


def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([str(POT_ZK), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _events(run: Path) -> list[dict]:
    path = run / "audit.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().split(b"\n"):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def _partial(run: Path) -> list[str]:
    names = []
    for name in ("audit.jsonl", "commitments.jsonl", "proofs.jsonl"):
        path = run / name
        if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            names.append(name)
    return names


def phase_at_kill(run: Path, returncode: int | None) -> str:
    if returncode is not None and returncode >= 0:
        return "finished before the kill"
    if not (run / "manifest.json").exists():
        return "before the manifest (preparing)"
    partial = _partial(run)
    if partial:
        return "mid-write of " + ",".join(partial)
    events = _events(run)
    if not events:
        return "after the manifest, before run.start"
    last = events[-1]["event"]
    if last == "commitment" and events[-1].get("scheduled"):
        return "proving (after a scheduled step's commitment)"
    if last in ("attempt", "proof.result"):
        return f"after {last} (recording the proof / next step)"
    return f"after {last}"


def _proof_digests(run: Path) -> dict[int, str]:
    digests = {}
    if (run / "proofs.jsonl").exists():
        for record in RunBundle(run).proofs():
            if record["status"] == "proved":
                digests[record["step"]] = hashlib.sha256((run / record["proof"]).read_bytes()).hexdigest()
    return digests


def trial(run: Path, cache: Path, delay_s: float, *, steps: int = 4, scheduled=(0, 2), timeout_s: float = 900,
          kill_when=None) -> dict:
    """Train, SIGKILL after ``delay_s`` (or as soon as ``kill_when(run)`` holds), resume,
    verify. Returns what happened and what held."""
    argv = overrides(run, cache, steps)
    run.parent.mkdir(parents=True, exist_ok=True)
    trainer = _cli("train", *argv, cwd=run.parent)
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline and trainer.poll() is None:
        if kill_when is not None and kill_when(run):
            break
        time.sleep(0.02)
    if trainer.poll() is None:
        os.kill(trainer.pid, signal.SIGKILL)
    trainer.wait()
    trainer.stdout.close()
    phase = phase_at_kill(run, trainer.returncode)
    before = _proof_digests(run)
    attempts_before = sum(1 for e in _events(run) if e.get("event") == "attempt")
    problems: list[str] = []
    if trainer.returncode is not None and trainer.returncode >= 0:
        action = "none"
        if trainer.returncode != 0:
            problems.append(f"train exited {trainer.returncode} without being killed")
    elif any(e.get("status") == "completed" for e in training_ends(_events(run))):
        action = "resume refused"  # killed after run.end: the run completed, and resume says so (it never extends one)
        process = _cli("resume", str(run), cwd=run.parent)
        output, _ = process.communicate(timeout=timeout_s)
        if process.returncode != 2 or "holds a completed run" not in output:
            problems.append(f"resume of the completed run exited {process.returncode}: {output[-800:]}")
    elif (run / "manifest.json").exists():
        action = "resume"
        process = _cli("resume", str(run), cwd=run.parent)
        output, _ = process.communicate(timeout=timeout_s)
        if process.returncode != 0:
            problems.append(f"resume exited {process.returncode}: {output[-800:]}")
    else:
        action = "train again"
        process = _cli("train", *argv, cwd=run.parent)
        output, _ = process.communicate(timeout=timeout_s)
        if process.returncode == 2 and "holds the files of a run that never started" in output:
            shutil.rmtree(run)  # the refusal's advice: remove them
            process = _cli("train", *argv, cwd=run.parent)
            output, _ = process.communicate(timeout=timeout_s)
        if process.returncode != 0:
            problems.append(f"train again exited {process.returncode}: {output[-800:]}")
    report = verify_run(run, cache_dir=cache)
    if not report.ok:
        problems.append("verify: " + "; ".join(f"{f.check}/{f.reason} step {f.step}: {f.message}" for f in report.findings))
    records = RunBundle(run).proofs() if (run / "manifest.json").exists() else []
    proved = Counter(r["step"] for r in records if r["status"] == "proved")
    if sorted(proved) != sorted(scheduled):
        problems.append(f"proved steps {sorted(proved)}, scheduled {sorted(scheduled)} (a proven step was lost)")
    twice = sorted(s for s, n in proved.items() if n > 1)
    if twice:
        problems.append(f"steps proven twice: {twice}")
    after = _proof_digests(run)
    redone = sorted(s for s, digest in before.items() if after.get(s) != digest)
    if redone:
        problems.append(f"proofs made before the kill were replaced: steps {redone}")
    events = _events(run)
    resumed_at = next((i for i, e in enumerate(events) if e.get("event") == "run.resume"), None)
    if resumed_at is not None:
        again = sorted({e["step"] for e in events[resumed_at:] if e.get("event") == "attempt" and e["step"] in before})
        if again:
            problems.append(f"steps proven before the kill were attempted again after resume: {again}")
    return {"delay_s": round(delay_s, 2), "phase": phase, "action": action, "proved_before_kill": sorted(before),
            "attempts_before_kill": attempts_before, "verified": report.ok, "problems": problems}


def campaign(trials: int, seed: int, workdir: Path, cache: Path, *, max_delay_s: float | None = None) -> dict:
    started = time.monotonic()
    if max_delay_s is None:  # one uninterrupted run sets the span the kills are drawn from
        warm = workdir / "uninterrupted"
        shutil.rmtree(warm, ignore_errors=True)
        clock = time.monotonic()
        process = _cli("train", *overrides(warm, cache, 4), cwd=workdir)
        output, _ = process.communicate(timeout=900)
        assert process.returncode == 0, output
        max_delay_s = time.monotonic() - clock
    rng = random.Random(seed)
    results = []
    for index in range(trials):
        run = workdir / f"trial-{index:03d}"
        shutil.rmtree(run, ignore_errors=True)
        delay = rng.uniform(0.5, max_delay_s * 1.05)
        result = trial(run, cache, delay)
        results.append(result)
        print(f"trial {index}: kill at {result['delay_s']} s, {result['phase']}, {result['action']}: "
              f"{'OK' if not result['problems'] else result['problems']}", file=sys.stderr, flush=True)
        shutil.rmtree(run, ignore_errors=True)
    return {
        "seed": seed,
        "trials": trials,
        "kill_window_s": round(max_delay_s * 1.05, 1),
        "killed": sum(1 for r in results if r["action"] != "none"),
        "resumed": sum(1 for r in results if r["action"] == "resume"),
        "completed_before_kill": sum(1 for r in results if r["action"] == "resume refused"),
        "trained_again": sum(1 for r in results if r["action"] == "train again"),
        "verified": sum(1 for r in results if r["verified"]),
        "with_problems": sum(1 for r in results if r["problems"]),
        "phases": dict(Counter(r["phase"] for r in results).most_common()),
        "trials_detail": results,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=None, help="key cache (default: a temporary one)")
    parser.add_argument("--max-delay", type=float, default=None, help="kill window in s (default: one uninterrupted run's time)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pot-zk-crash-"))
    try:
        result = campaign(args.trials, args.seed, workdir, args.cache_dir or workdir / "cache", max_delay_s=args.max_delay)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    holds = result["with_problems"] == 0 and result["verified"] == result["trials"]
    print(f"trials: {result['trials']} ({result['killed']} killed: {result['resumed']} resumed, "
          f"{result['trained_again']} started again, {result['completed_before_kill']} after the run completed), verified: {result['verified']}, with problems: {result['with_problems']}"
          f" -> {'HOLDS' if holds else 'FAILS'}")
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
