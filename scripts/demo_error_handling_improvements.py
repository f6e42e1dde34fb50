"""pot-zk error handling (the seed's "demo_error_handling_improvements"), demonstrated with real
prover programs that crash, hang, print garbage, fail deterministically or transiently.
Everything printed here is measured, not scripted.

    python scripts/demo_error_handling_improvements.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from pot_zk import exceptions
from pot_zk.core.audit import AuditLog, run_start_fields
from pot_zk.core.audit_verify import verify_audit
from pot_zk.config import build, compose_config
from pot_zk.proving.handlers import FailFast
from pot_zk.proving.parking import prove_pending
from pot_zk.proving.pipeline import ProvingPipeline
from pot_zk.proving.retry import RetrySchedule
from pot_zk.core.runner import run_prover
from pot_zk.proving.stats import ProvingStats
from pot_zk.proving.strategies import ProgramStrategy, StrategyRegistry
from pot_zk.core.protocol import ProverRequest

PROGRAMS = {
    "ok": "answer()",
    "crash": "print('segfault in msm: simulated', file=sys.stderr); sys.exit(1)",
    "signal": "print('allocating 40 GB ...', file=sys.stderr, flush=True); os.kill(os.getpid(), signal.SIGKILL)",
    "hang": "time.sleep(3600)",
    "garbage": "print('Proof generated!!! (not JSON)')",
    "invalid-witness": "print(json.dumps({'status': 'error', 'message': 'value out of range at w[3]'})); sys.exit(65)",
    "deterministic": "print(json.dumps({'status': 'error', 'message': 'circuit too large'})); sys.exit(70)",
    "transient": "n = int(open(STATE).read()) if os.path.exists(STATE) else 0\n"
                 "open(STATE, 'w').write(str(n + 1))\n"
                 "if n < 2: print('GPU busy, try later', file=sys.stderr); sys.exit(75)\n"
                 "answer()",
}

PRELUDE = '''import json, os, signal, sys, time
STATE = {state!r}
def answer(proof_type={proof_type!r}):
    request = json.load(sys.stdin)
    print(json.dumps({{"protocol": request["protocol"], "status": "ok", "proof_type": proof_type, "artifacts": {{}}}}))
'''


def write_program(directory: Path, behaviour: str, proof_type: str = "demo-proof") -> Path:
    path = directory / f"{behaviour}-prover"
    prelude = PRELUDE.format(state=str(directory / f"{behaviour}.state"), proof_type=proof_type)
    path.write_text(f"#!{sys.executable}\n{prelude}{PROGRAMS[behaviour]}\n")
    path.chmod(0o755)
    return path


def heading(title: str) -> None:
    print(f"\n=== {title} ===")


def show_hierarchy(cls: type = exceptions.PotZkError, depth: int = 0) -> None:
    print(f"{'  ' * depth}{cls.__name__:<{32 - 2 * depth}} retryable={cls.retryable}")
    for sub in cls.__subclasses__():
        show_hierarchy(sub, depth + 1)


def demo_classification(bin_dir: Path, job: ProverRequest) -> None:
    heading("2. Classification of real prover programs (timeout 1 s)")
    print(f"{'program':<16} {'error':<22} {'retryable':<10} {'exit':<5} stderr tail / message")
    for behaviour in ("ok", "crash", "signal", "hang", "garbage", "invalid-witness"):
        program = write_program(bin_dir, behaviour)
        try:
            response = run_prover(str(program), job, timeout_s=1.0)
            print(f"{behaviour:<16} {'(none: ' + response.proof_type + ')':<22}")
        except exceptions.PotZkError as error:
            record = error.to_record()
            print(f"{behaviour:<16} {error.error_class:<22} {str(error.retryable):<10} "
                  f"{str(record.get('exit_code')):<5} {(record.get('stderr', '').strip() or error.message.replace(str(program), program.name))[:70]!r}")


def demo_backoff(bin_dir: Path, job: ProverRequest, run_dir: Path) -> None:
    heading("3. Retry with exponential backoff (transient prover: exit 75 twice, then ok)")
    schedule = RetrySchedule(max_attempts=4, initial_delay_s=0.2, multiplier=2.0, max_delay_s=5.0, jitter_s=0.05)
    started = time.monotonic()

    def sleep(seconds: float) -> None:
        print(f"  t={time.monotonic() - started:5.2f}s  sleeping {seconds:.3f}s before the next attempt")
        time.sleep(seconds)

    strategy = ProgramStrategy("demo-proof", str(write_program(bin_dir, "transient")), timeout_s=5)
    with AuditLog(run_dir / "backoff-audit.jsonl") as audit:
        pipeline = build(compose_config(["handler=fail_fast"], run_dir=run_dir)).open_pipeline(audit=audit)
        pipeline = ProvingPipeline(strategy, schedule, pipeline.handler, audit, ProvingStats(), sleep=sleep)
        result = pipeline.prove(job)
    print(f"  t={time.monotonic() - started:5.2f}s  {result.status} after {result.attempts} attempts ({result.proof_type})")


def demo_seed_flow(bin_dir: Path, job: ProverRequest, root: Path) -> None:
    heading("4. The seed's flow: every ProofGenerationError is retried (3 retries, 0.05 s doubling), then RetryExhaustedError")
    schedule = RetrySchedule(max_attempts=4, initial_delay_s=0.05, multiplier=2.0)
    print(f"{'program':<16} {'attempts':<9} {'caller gets':<22} last error")
    for behaviour in ("crash", "garbage", "deterministic", "invalid-witness", "missing"):
        program = bin_dir / "no-such-prover" if behaviour == "missing" else write_program(bin_dir, behaviour)
        with AuditLog(root / f"seed-flow-{behaviour}.jsonl") as audit:
            pipeline = ProvingPipeline(ProgramStrategy("demo-proof", str(program), timeout_s=5), schedule, FailFast(), audit, ProvingStats())
            try:
                pipeline.prove(job)
            except exceptions.PotZkError as error:
                last = getattr(error, "last_error", None)
                attempts = pipeline.stats.get_stats()["attempts"]
                print(f"{behaviour:<16} {attempts:<9} {error.error_class:<22} {type(last).__name__ if last is not None else '-'}")


def demo_modes(bin_dir: Path, job: ProverRequest, root: Path) -> None:
    heading("5. The same crashing prover under each mode / handler (delays shortened to 0.05 s)")
    crash = write_program(bin_dir, "crash")
    backup = write_program(bin_dir, "ok", proof_type="demo-backup")
    cases = [
        ("development", []), ("production", []), ("research", []), ("disabled", []),
        ("development", ["handler=retry"]),
        ("development", ["handler=fallback"]),
        ("development", ["handler=fallback", "handler.fallback_chain=[demo-backup]"]),
    ]
    print(f"{'mode':<12} {'handler':<10} {'attempts':<9} outcome")
    for mode, extra in cases:
        run_dir = root / f"{mode}-{'-'.join(extra)}"
        cfg = compose_config([f"mode={mode}", f"prover.binary={crash}", "retry.initial_delay_s=0.05", "retry.jitter_s=0", *extra],
                             run_dir=run_dir)
        registry = StrategyRegistry()
        registry.register("demo-backup", lambda: ProgramStrategy("demo-backup", str(backup), timeout_s=5))
        runtime = build(cfg, registry)
        if not runtime.proving_enabled:
            print(f"{mode:<12} {'-':<10} {0:<9} proving off: no prover started")
            continue
        pipeline = runtime.open_pipeline()
        pipeline.audit.event("run.start", **run_start_fields(runtime.config))
        try:
            result = pipeline.prove(job)
            if result.status == "proved":
                outcome = f"proved by {result.strategy} (proof_type={result.proof_type})"
            else:
                chain = [f"{e['strategy']}: {e['error_class']}" for e in result.error.get("chain", [])]
                outcome = f"{result.status}: {result.error['error_class']}" + (f" (chain: {'; '.join(chain)})" if chain else "")
            attempts = result.attempts
        except exceptions.PotZkError as error:
            outcome, attempts = f"HALTED: raised {error.error_class}", pipeline.stats.get_stats()["attempts"]
        pipeline.audit.event("run.end", stats=pipeline.stats.get_stats())
        pipeline.audit.close()
        print(f"{mode:<12} {runtime.handler.name:<10} {attempts:<9} {outcome}")
        if outcome.startswith("failed") and "chain" in outcome:
            print(f"{'':<33}why the fallbacks refused: {result.error['message']!r}")
        if runtime.handler.name == "retry":
            parked = sorted((run_dir / "pending").glob("*.json"))
            print(f"{'':<33}parked: {[p.name for p in parked]}; prover fixed, running prove-pending ...")
            crash.write_text(backup.read_text())
            with AuditLog(run_dir / "audit.jsonl") as audit:
                results = prove_pending(run_dir / "pending", schedule=runtime.schedule, audit=audit, stats=ProvingStats())
            remaining = len(list((run_dir / "pending").glob("*.json")))
            print(f"{'':<33}prove-pending: {[r.status for r in results]}; still parked: {remaining}")
            write_program(bin_dir, "crash")


def demo_audit(root: Path) -> None:
    heading("6. Tamper-evident audit trail")
    trail = root / "development-" / "audit.jsonl"
    print(" ", verify_audit(trail).summary())
    lines = trail.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if '"outcome":"failed"' in line)
    print(f"  record on line {index + 1} is a failed attempt; editing its outcome to 'ok' ...")
    lines[index] = lines[index].replace('"outcome":"failed"', '"outcome":"ok"')
    trail.write_text("".join(lines))
    print(" ", verify_audit(trail).summary())
    print("  dropping that line instead ...")
    trail.write_text("".join(lines[:index] + lines[index + 1:]))
    print(" ", verify_audit(trail).summary())


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pot-zk-demo-") as temporary:
        root = Path(temporary)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        job = ProverRequest(step=1, kind="sgd", circuit={}, witness_path=str(root / "w.safetensors"),
                       cache_dir=str(root / "cache"), output_dir=str(root / "proofs"))
        heading("1. Error hierarchy (retryable: whether the cause is transient; recorded, it does not decide what is retried)")
        show_hierarchy()
        demo_classification(bin_dir, job)
        demo_backoff(bin_dir, job, root)
        demo_seed_flow(bin_dir, job, root)
        demo_modes(bin_dir, job, root)
        demo_audit(root)


if __name__ == "__main__":
    main()
