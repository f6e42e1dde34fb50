"""Proving throughput of the executors: steps proven per minute with each executor and number of
prover workers, every configuration measured in one run of this script (alternating when repeated).

    python scripts/bench_executors.py [--prover ezkl] [--proofs 6] [--workers 2]
    python scripts/bench_executors.py --prover groth16 --executors process --workers 1 2 --proofs 24 --repeats 2

Workloads (``--prover``; :data:`WORKLOADS`):

* ``ezkl``: a tiny run (4-3-2 MLP, batch 2) with every step proven with zk-halo2.
* ``groth16``: the README's digits statement (16-8-10 MLP, batch 8, cross-entropy) with every
  step proven with zk-groth16 through the key holder (``--keep-key-s 60``; it proves on every
  usable core, so ``executor.workers`` decides how many proofs run at once).

A warm-up run (one step) first makes the circuit and keys (and for groth16 starts the key
holder, which loads the key once and stays for every measured run), so every measured run
proves with cached keys. A run's wall time covers the whole ``train`` call (for dask: starting
and closing the LocalCluster too); throughput = proved / wall minutes. For groth16 the table
also gives how many provers were busy on average: the sum of the proving intervals the run
recorded (``proofs.jsonl``: ``public.prover``) over the wall time.

A second table says, per run, how many processes proved its steps and how many proving-key
loads they reported (``timings.key_load_s``): with ``executor=dask`` and groth16 each worker
loads the key once per run (:func:`key_loads`); the ``process`` executor's key holder loaded it
in the warm-up run and keeps it. For the Dask scaling measurement of issue 19:

    python scripts/bench_executors.py --prover groth16 --executors dask --workers 1 2 4 --proofs 24
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pot_zk.config import compose_config
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train


@dataclass(frozen=True)
class Workload:
    description: str
    overrides: tuple[str, ...]


WORKLOADS = {
    "ezkl": Workload("4-3-2 MLP, batch 2, every step proven (zk-halo2)", ("model=tiny_mlp", "data=synthetic", "train.batch_size=2")),
    "groth16": Workload(
        "digits 16-8-10 MLP, batch 8, cross-entropy, every step proven (zk-groth16, one key holder)",
        ("prover=groth16", "model=digits_mlp", "data=digits"),
    ),
}
EXECUTORS = ("inline", "process", "dask")


@dataclass(frozen=True)
class Measured:
    executor: str
    workers: int
    proved: int
    wall_s: float
    attempt_p50_s: float | None
    busy_provers: float | None
    load: float

    @property
    def per_minute(self) -> float:
        return self.proved / (self.wall_s / 60)


def run_once(workload: Workload, run_dir: Path, cache_dir: Path, proofs: int, *extra: str) -> tuple[object, float]:
    cfg = compose_config([
        *workload.overrides, f"train.max_steps={proofs}", "policy=every_step",
        f"run_dir={run_dir}", f"cache_dir={cache_dir}", "train.progress=false", *extra,
    ])
    started = time.perf_counter()
    summary = train(cfg)
    return summary, time.perf_counter() - started


def busy_provers(run_dir: Path, wall_s: float) -> float | None:
    """Sum of the recorded proving intervals over the wall time (None: the prover records none)."""
    intervals = [(r.get("public") or {}).get("prover") for r in RunBundle.open(run_dir).proofs()]
    if not intervals or any(not isinstance(p, dict) for p in intervals):
        return None
    return sum(p["ended_at"] - p["began_at"] for p in intervals) / wall_s


def measure(workload: Workload, scratch: Path, cache: Path, executor: str, workers: int, proofs: int, name: str) -> Measured:
    load = os.getloadavg()[0]
    run_dir = scratch / name
    summary, wall = run_once(workload, run_dir, cache, proofs, f"executor={executor}", f"executor.workers={workers}")
    proved = summary.progress["outcomes"].get("proved", 0)
    return Measured(executor, workers, proved, wall, summary.stats.get("latency_p50_s"), busy_provers(run_dir, wall), load)


@dataclass(frozen=True)
class KeyLoads:
    """Which processes proved a run's steps, and the proving-key loads they reported."""

    executor: str
    workers: int
    processes: int
    loads: int
    load_s: float


def key_loads(run_dir: Path, executor: str, workers: int) -> KeyLoads | None:
    """From the run's proof records (None: its prover records no process)."""
    records = RunBundle.open(run_dir).proofs()
    provers = [(r.get("public") or {}).get("prover") for r in records]
    if not records or any(not isinstance(p, dict) for p in provers):
        return None
    loaded = [t["key_load_s"] for t in ((r.get("timings") or {}) for r in records) if "key_load_s" in t]
    return KeyLoads(executor, workers, len({p["pid"] for p in provers}), len(loaded), sum(loaded))


def print_key_loads(loads: list[KeyLoads]) -> None:
    print("\n| executor | workers | proving processes | key loads | key load s (sum) |")
    print("|---|---|---|---|---|")
    for row in loads:
        print(f"| {row.executor} | {row.workers} | {row.processes} | {row.loads} | {row.load_s:.1f} |")


def stop_key_holders(run_dir: Path, cache: Path) -> None:
    """Stop the groth16 key holder the runs used (it would linger for --keep-key-s)."""
    from provers.groth16_held import socket_path

    circuit = RunBundle.open(run_dir).manifest()["circuit"]
    pid_file = Path(f"{socket_path(str(cache), circuit)}.pid")
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def configurations(executors: list[str], workers: list[int]) -> list[tuple[str, int]]:
    return [(name, count) for name in executors for count in ([1] if name == "inline" else workers)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prover", choices=sorted(WORKLOADS), default="ezkl", help="the workload")
    parser.add_argument("--proofs", type=int, default=6, help="steps trained and proven per measured run")
    parser.add_argument("--executors", nargs="+", choices=EXECUTORS, default=list(EXECUTORS))
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="executor.workers values for process and dask")
    parser.add_argument("--repeats", type=int, default=1, help="measured runs per configuration (alternating)")
    parser.add_argument("--cache-dir", type=Path, help="key cache (default: a fresh temporary directory)")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()
    workload = WORKLOADS[args.prover]
    started_at = datetime.now(timezone.utc)
    rows: list[Measured] = []
    loads: list[KeyLoads] = []
    with tempfile.TemporaryDirectory(prefix="pot-zk-bench-") as scratch:
        scratch = Path(scratch)
        cache = args.cache_dir or scratch / "cache"
        run_once(workload, scratch / "warm-up", cache, 1)
        try:
            for repeat in range(args.repeats):
                for executor, workers in configurations(args.executors, args.workers):
                    rows.append(measure(workload, scratch, cache, executor, workers, args.proofs, f"{executor}-{workers}-{repeat}"))
                    loads.extend(filter(None, [key_loads(scratch / f"{executor}-{workers}-{repeat}", executor, workers)]))
        finally:
            if args.prover == "groth16":
                stop_key_holders(scratch / "warm-up", cache)
    print(f"date: {started_at:%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(f"workload: {workload.description}, {args.proofs} steps per run, keys cached\n")
    print("| executor | workers | proved | wall s | steps proven / min | vs 1 worker | busy provers | attempt p50 s | load avg at start |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        single = [r.per_minute for r in rows if r.executor == row.executor and r.workers == 1]
        ratio = f"{row.per_minute / statistics.mean(single):.2f}x" if single else "-"
        busy = "-" if row.busy_provers is None else f"{row.busy_provers:.2f}"
        p50 = "-" if row.attempt_p50_s is None else f"{row.attempt_p50_s:.1f}"
        print(f"| {row.executor} | {row.workers} | {row.proved} | {row.wall_s:.1f} | {row.per_minute:.2f} | {ratio} | {busy} | {p50} | {row.load:.1f} |")
    if loads:
        print_key_loads(loads)
    if args.json:
        document = {
            "date": started_at.isoformat(), "machine": machine(), "workload": workload.description, "proofs": args.proofs,
            "runs": [{**row.__dict__, "per_minute": row.per_minute} for row in rows],
            "key_loads": [row.__dict__ for row in loads],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
