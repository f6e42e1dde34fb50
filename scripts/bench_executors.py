"""Proving throughput of the executors: the same tiny run (4-3-2 MLP, batch 2, every step
proven with zk-halo2) with ``executor=inline``, ``process`` and ``dask``, each with
``--workers`` prover slots; prints a markdown table of steps proven per minute.

    python scripts/bench_executors.py [--proofs 6] [--workers 2] [--cache-dir DIR]

The circuit and keys are built once before the first measured run (a warm-up run), so every
measured run proves with cached keys. A run's wall time covers the whole `pot-zk train` run
(for dask: starting and closing the LocalCluster too); throughput = proved / wall minutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from pot_zk.config import compose_config
from pot_zk.runs.train import train

EXECUTORS = ("inline", "process", "dask")


def tiny_run(run_dir: Path, cache_dir: Path, proofs: int, *extra: str):
    cfg = compose_config([
        "model=tiny_mlp", "data=synthetic", "train.batch_size=2", f"train.max_steps={proofs}", "policy=every_step",
        f"run_dir={run_dir}", f"cache_dir={cache_dir}", "train.progress=false", *extra,
    ])
    started = time.perf_counter()
    summary = train(cfg)
    return summary, time.perf_counter() - started


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proofs", type=int, default=6, help="steps trained and proven per executor")
    parser.add_argument("--workers", type=int, default=2, help="executor.workers for process and dask")
    parser.add_argument("--cache-dir", type=Path, help="key cache (default: a fresh temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pot-zk-bench-") as scratch:
        scratch = Path(scratch)
        cache = args.cache_dir or scratch / "cache"
        tiny_run(scratch / "warm-up", cache, 1)
        rows = []
        for name in EXECUTORS:
            load = os.getloadavg()[0]
            summary, wall = tiny_run(scratch / name, cache, args.proofs, f"executor={name}", f"executor.workers={args.workers}")
            proved = summary.progress["outcomes"].get("proved", 0)
            p50 = summary.stats.get("latency_p50_s")
            rows.append((name, 1 if name == "inline" else args.workers, proved, wall, proved / (wall / 60), p50, load))
    print(f"date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(f"workload: 4-3-2 MLP, batch 2, {args.proofs} steps, every step proven (zk-halo2), keys cached\n")
    print("| executor | prover slots | proved | wall s | steps proven / min | attempt p50 s | load avg at start |")
    print("|---|---|---|---|---|---|---|")
    for name, slots, proved, wall, rate, p50, load in rows:
        print(f"| {name} | {slots} | {proved} | {wall:.1f} | {rate:.2f} | {p50:.1f} | {load:.1f} |")


if __name__ == "__main__":
    main()
