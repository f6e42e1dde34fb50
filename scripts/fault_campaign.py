#!/usr/bin/env python
"""Fault-injection campaign: real prover programs that fail at random (seeded), run through the
proving pipeline of every mode x failure action; prints the figures of docs/reliability.md.

    python scripts/fault_campaign.py --faults 200 --seed 1

Each job's prover is ``tests/fake_provers/fake_prover.py random SEED STATE``: its n-th run does
``choose(SEED, n)`` -- crash, SIGKILL (also mid-write of its response), hang until the timeout,
garbage, truncated JSON, wrong protocol, a proof file it never wrote, a documented exit code,
or ok. A few jobs get a prover program that does not exist. The campaign predicts, from the
same seeded choice, the mode's retry schedule and the seed's rule (every ProofGenerationError is
retried, nothing else is), every attempt, its error class, every retry sleep, and the handler's
action, and compares them with what the pipeline did and what
the audit trail recorded.

Figures: faults injected, misclassified (an attempt or final outcome whose class, retry or
action differs from the prediction), audit attempt records lost / duplicated, chain intact.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKE_PROVER = ROOT / "tests" / "fake_provers" / "fake_prover.py"

from pot_zk.core.audit import AuditLog  # noqa: E402
from pot_zk.core.audit_verify import verify_audit  # noqa: E402
from pot_zk.config import build, compose_config  # noqa: E402
from pot_zk.exceptions import PotZkError  # noqa: E402
from pot_zk.proving.handlers import FallbackChain  # noqa: E402
from pot_zk.proving.parking import parked_path  # noqa: E402
from pot_zk.proving.pipeline import ProvingPipeline  # noqa: E402
from pot_zk.proving.stats import ProvingStats  # noqa: E402
from pot_zk.proving.strategies import ProgramStrategy  # noqa: E402
from pot_zk.core.protocol import ProverRequest  # noqa: E402


def _fake_module():
    spec = importlib.util.spec_from_file_location("fake_prover", FAKE_PROVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake = _fake_module()

# behaviour -> (error class the runner must raise, retryable: whether the class is transient)
EXPECTED_CLASS = {
    "crash": ("ProverCrashError", True),
    "signal": ("ProverCrashError", True),
    "partial-kill": ("ProverCrashError", True),
    "hang": ("ProverTimeoutError", True),
    "garbage": ("ProverProtocolError", False),
    "truncated": ("ProverProtocolError", False),
    "wrong-protocol": ("ProverProtocolError", False),
    "missing-proof": ("ProverProtocolError", False),
    "exit 64": ("ConfigurationError", False),
    "exit 65": ("WitnessBuilderError", False),
    "exit 70": ("ProofGenerationError", False),
    "exit 75": ("ProofGenerationError", True),
    "missing": ("ProverNotFoundError", False),
}
assert set(EXPECTED_CLASS) - {"missing"} == set(fake.FAULTS) - {"ok"}

RETRIED = {"ProverCrashError", "ProverTimeoutError", "ProverProtocolError", "ProofGenerationError"}
"""The seed's flow: the ProofGenerationError classes are retried on the schedule, transient or
not; the others end the attempts and surface as themselves."""

MODES = ("development", "production", "research")
HANDLERS = ("fail_fast", "continue", "retry", "fallback")


@dataclass
class Prediction:
    behaviours: list[str]
    final: str | None
    """None: proved; else the error class the handler sees (RetryExhaustedError when the
    schedule's last attempt failed with a retried class)."""


def predict(seed: str, max_attempts: int, missing: bool = False) -> Prediction:
    if missing:
        return Prediction(["missing"], "ProverNotFoundError")
    behaviours: list[str] = []
    for run in range(max_attempts):
        behaviour = fake.choose(seed, run)
        behaviours.append(behaviour)
        if behaviour == "ok":
            return Prediction(behaviours, None)
        error_class = EXPECTED_CLASS[behaviour][0]
        if error_class not in RETRIED:
            return Prediction(behaviours, error_class)
    return Prediction(behaviours, "RetryExhaustedError")


@dataclass
class Figures:
    jobs: int = 0
    attempts: int = 0
    faults: int = 0
    misclassified: int = 0
    audit_lost: int = 0
    audit_duplicated: int = 0
    chains: int = 0
    chains_intact: int = 0
    by_fault: Counter = field(default_factory=Counter)
    by_action: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def wrong(self, what: str) -> None:
        self.misclassified += 1
        if len(self.problems) < 50:
            self.problems.append(what)

    def to_dict(self) -> dict:
        return {
            "jobs": self.jobs, "attempts": self.attempts, "faults_injected": self.faults,
            "misclassified": self.misclassified, "audit_records_lost": self.audit_lost,
            "audit_records_duplicated": self.audit_duplicated,
            "audit_chains_intact": f"{self.chains_intact}/{self.chains}",
            "faults_by_kind": dict(sorted(self.by_fault.items())),
            "actions": dict(sorted(self.by_action.items())), "problems": self.problems,
        }


def write_wrapper(directory: Path) -> Path:
    """One executable prover program: the fake prover, behaviour given as arguments."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fake-prover"
    path.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(FAKE_PROVER)!r}, run_name='__main__')\n")
    path.chmod(0o755)
    return path


def _strategy(name: str, wrapper: Path, seed: str, state: Path, timeout_s: float, missing: bool = False) -> ProgramStrategy:
    binary = str(wrapper.parent / "no-such-prover") if missing else str(wrapper)
    return ProgramStrategy(name=name, binary=binary, timeout_s=timeout_s, args=("random", seed, str(state), name))


def run_config(mode: str, handler: str, jobs: int, workdir: Path, wrapper: Path, rng: random.Random,
               figures: Figures, timeout_s: float, target: int) -> None:
    run_dir = workdir / f"{mode}-{handler}"
    cfg = compose_config([f"mode={mode}", f"handler={handler}", f"prover.binary={wrapper}", f"prover.timeout_s={timeout_s}"], run_dir=run_dir)
    runtime = build(cfg)
    assert runtime.proving_enabled and runtime.handler.name == handler and runtime.mode == mode
    schedule = runtime.schedule
    audit = AuditLog(run_dir / "audit.jsonl", run=run_dir.name, mode=mode)
    audit.event("run.start", campaign="faults")
    expected_attempts: dict[tuple[int, str], list[str]] = {}
    for step in range(jobs):
        if figures.faults >= target:
            break
        seed = f"{rng.getrandbits(32):08x}"
        missing = rng.random() < 0.04
        primary = _strategy("zk-halo2", wrapper, seed, run_dir / "state" / f"{step}-primary", timeout_s, missing)
        chain_names = ("freivalds", "reexec")
        chain = tuple(_strategy(n, wrapper, f"{seed}-{n}", run_dir / "state" / f"{step}-{n}", timeout_s) for n in chain_names)
        handler_obj = FallbackChain(chain) if handler == "fallback" else runtime.handler
        slept: list[float] = []
        pipeline = ProvingPipeline(primary, schedule, handler_obj, audit, ProvingStats(), sleep=slept.append)
        (run_dir / "state").mkdir(parents=True, exist_ok=True)
        job = ProverRequest(step=step, kind="sgd", circuit={}, witness_path=str(run_dir / "w"), cache_dir=str(run_dir / "cache"),
                       output_dir=str(run_dir / "proofs" / f"step-{step:08d}"))
        first = predict(seed, schedule.max_attempts, missing)
        predictions = [("zk-halo2", first)]
        if handler == "fallback" and first.final is not None:
            for name in chain_names:
                later = predict(f"{seed}-{name}", schedule.max_attempts)
                predictions.append((name, later))
                if later.final is None:
                    break
        for name, p in predictions:
            expected_attempts[(step, name)] = p.behaviours
            figures.attempts += len(p.behaviours)
            faults = [b for b in p.behaviours if b != "ok"]
            figures.faults += len(faults)
            figures.by_fault.update(faults)
        figures.jobs += 1
        raised: PotZkError | None = None
        result = None
        try:
            result = pipeline.prove(job)
        except PotZkError as error:
            raised = error
        _check_outcome(mode, handler, step, predictions, result, raised, run_dir, figures)
        _check_sleeps(mode, handler, step, predictions, slept, schedule, figures)
    audit.event("run.end", status="completed")
    audit.close()
    _check_audit(run_dir, mode, handler, expected_attempts, figures)


def _check_outcome(mode, handler, step, predictions, result, raised, run_dir: Path, figures: Figures) -> None:
    where = f"{mode}/{handler} step {step}"
    first = predictions[0][1]
    proved_by = next((name for name, p in predictions if p.final is None), None)
    if proved_by is not None:
        action = f"proved ({proved_by})"
        ok = raised is None and result.status == "proved" and result.proof_type == proved_by
    elif handler == "fail_fast":
        action = "halt"
        ok = raised is not None and raised.error_class == first.final
    elif handler == "continue":
        action = "failed, training continues"
        ok = raised is None and result.status == "failed" and result.error["error_class"] == first.final
    elif handler == "retry":
        action = "parked"
        parked = parked_path(run_dir / "pending", step)
        ok = (raised is None and result.status == "parked" and parked.is_file()
              and json.loads(parked.read_text())["attempts"] == len(first.behaviours))
    else:
        action = "failed after the whole fallback chain"
        ok = raised is None and result.status == "failed" and [e["strategy"] for e in result.error["chain"]] == [n for n, _ in predictions]
    if ok and result is not None:
        ok = result.attempts == sum(len(p.behaviours) for _, p in predictions)
    figures.by_action[action] += 1
    if not ok:
        got = repr(raised) if raised is not None else (result.status, result.proof_type, result.attempts, (result.error or {}).get("error_class"))
        figures.wrong(f"{where}: expected {action} after {[p.behaviours for _, p in predictions]}, got {got}")


def _check_sleeps(mode, handler, step, predictions, slept, schedule, figures: Figures) -> None:
    wanted = []
    for _, p in predictions:
        retried = len(p.behaviours) - 1
        wanted += [schedule.base_delay(n) for n in range(1, retried + 1)]
    ok = len(slept) == len(wanted) and all(base <= s <= min(schedule.max_delay_s, base + schedule.jitter_s) + 1e-9 for base, s in zip(wanted, slept))
    if not ok:
        figures.wrong(f"{mode}/{handler} step {step}: slept {slept}, schedule says {wanted} (+ jitter <= {schedule.jitter_s})")


def _check_audit(run_dir: Path, mode: str, handler: str, expected: dict[tuple[int, str], list[str]], figures: Figures) -> None:
    trail = run_dir / "audit.jsonl"
    report = verify_audit(trail)
    figures.chains += 1
    if report.ok and report.closed:
        figures.chains_intact += 1
    else:
        figures.problems.append(f"{mode}/{handler}: audit trail: {report.summary()}")
    records = [json.loads(line) for line in trail.read_text().splitlines()]
    found: dict[tuple[int, str], list[dict]] = {}
    for record in records:
        if record["event"] == "attempt":
            found.setdefault((record["step"], record["strategy"]), []).append(record)
    for key in set(expected) | set(found):
        wanted, got = expected.get(key, []), found.get(key, [])
        figures.audit_lost += max(0, len(wanted) - len(got))
        figures.audit_duplicated += max(0, len(got) - len(wanted))
        for number, (behaviour, record) in enumerate(zip(wanted, got), start=1):
            if behaviour == "ok":
                right = record["outcome"] == "ok"
            else:
                right = record["outcome"] == "failed" and record["error"]["error_class"] == EXPECTED_CLASS[behaviour][0] \
                    and record["error"]["retryable"] == EXPECTED_CLASS[behaviour][1]
            if not right or record["attempt"] != number:
                figures.wrong(f"{mode}/{handler} step {key[0]} {key[1]} attempt {number}: {behaviour} recorded as "
                              f"{record['outcome']} {record.get('error', {}).get('error_class')}")
    sleeps = sum(1 for r in records if r["event"] == "retry.sleep")
    wanted_sleeps = sum(len(b) - 1 for b in expected.values())
    if sleeps != wanted_sleeps:
        figures.wrong(f"{mode}/{handler}: {sleeps} retry.sleep records, expected {wanted_sleeps}")


def end_to_end(workdir: Path, cache_dir: Path, wrapper: Path, runs: int) -> dict:
    """Whole training runs: a prover that writes a corrupt proof file (the run completes, the
    proof is labelled zk-halo2) must make ``verify`` reject the run naming the proof; a
    disabled-mode run never starts its (crashing) prover and verifies."""
    sys.path.insert(0, str(ROOT / "tests" / "zk"))
    from run_support import run_tiny  # noqa: E402

    from pot_zk.verify.run import verify_run

    figures = {"corrupt_proof_runs": 0, "corrupt_proof_rejected": 0, "disabled_runs": 0, "disabled_prover_started": 0,
               "disabled_verified": 0}
    for index in range(runs):
        run = workdir / f"corrupt-{index}"
        run_tiny(run, cache_dir, f"prover.binary={wrapper}", "prover.args=[corrupt-proof,zk-halo2]")
        report = verify_run(run, cache_dir=cache_dir)
        figures["corrupt_proof_runs"] += 1
        named = {(f.check, f.reason) for f in report.findings}
        if not report.ok and named <= {("proofs", "malformed-proof"), ("proofs", "invalid-proof")} and named:
            figures["corrupt_proof_rejected"] += 1
    run = workdir / "disabled"
    state = workdir / "disabled-prover-state"
    run_tiny(run, cache_dir, "mode=disabled", f"prover.binary={wrapper}", f"prover.args=[random,x,{state}]")
    figures["disabled_runs"] += 1
    figures["disabled_prover_started"] += int(state.exists())
    figures["disabled_verified"] += int(verify_run(run, cache_dir=cache_dir).ok)
    return figures


def campaign(target: int, seed: int, workdir: Path, *, timeout_s: float = 1.5, cache_dir: Path | None = None, e2e_runs: int = 2) -> dict:
    rng = random.Random(seed)
    wrapper = write_wrapper(workdir / "bin")
    figures = Figures()
    started = time.monotonic()
    rounds = 0
    while figures.faults < target:
        for mode in MODES:
            for handler in HANDLERS:
                run_config(mode, handler, 6, workdir / f"round-{rounds}", wrapper, rng, figures, timeout_s, target)
        rounds += 1
    result = {"seed": seed, **figures.to_dict()}
    if cache_dir is not None:
        result["end_to_end"] = end_to_end(workdir / "e2e", cache_dir, wrapper, e2e_runs)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=int, default=200, help="stop once this many faults were injected")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1.5, help="prover timeout (s) for the hang faults")
    parser.add_argument("--cache-dir", type=Path, default=None, help="key cache for the end-to-end runs (default: a temporary one)")
    parser.add_argument("--e2e-runs", type=int, default=2, help="whole runs with a corrupt-proof prover")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    args = parser.parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="pot-zk-faults-"))
    cache = args.cache_dir or workdir / "cache"
    try:
        result = campaign(args.faults, args.seed, workdir, timeout_s=args.timeout, cache_dir=cache, e2e_runs=args.e2e_runs)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    e2e = result["end_to_end"]
    holds = (result["misclassified"] == 0 and result["audit_records_lost"] == 0 and result["audit_records_duplicated"] == 0
             and result["faults_injected"] >= args.faults and e2e["corrupt_proof_rejected"] == e2e["corrupt_proof_runs"]
             and e2e["disabled_prover_started"] == 0 and e2e["disabled_verified"] == e2e["disabled_runs"])
    print(f"faults injected: {result['faults_injected']}, misclassified: {result['misclassified']}, "
          f"audit records lost: {result['audit_records_lost']}, duplicated: {result['audit_records_duplicated']}, "
          f"chains intact: {result['audit_chains_intact']}, corrupt proofs rejected by verify: "
          f"{e2e['corrupt_proof_rejected']}/{e2e['corrupt_proof_runs']} -> {'HOLDS' if holds else 'FAILS'}")
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
