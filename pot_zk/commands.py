"""``pot-zk`` subcommands that work on a run bundle: resume, verify, prove-pending, report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

CommandHandler = Callable[[argparse.Namespace], int]


def resume_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("run", help="a run directory made by `pot-zk train`")

    def run(args: argparse.Namespace) -> int:
        from omegaconf import OmegaConf

        from pot_zk.bundle import CONFIG, RunBundle
        from pot_zk.config.schema import PotZkConfig
        from pot_zk.train import print_summary, train

        bundle = RunBundle.open(Path(args.run))
        cfg = OmegaConf.merge(OmegaConf.structured(PotZkConfig), OmegaConf.load(bundle.path(CONFIG)))
        cfg.run_dir = str(bundle.root.absolute())
        print_summary(train(cfg, resume=True))
        return 0

    return run


def verify_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("run", help="a run directory made by `pot-zk train`")
    parser.add_argument("--srs", help="the verifier's own SRS file (default: the dev SRS in the cache, if it matches)")
    parser.add_argument("--cache-dir", help="where the verifier keeps derived circuits and keys")
    parser.add_argument("--allow-dev-srs", action="store_true", help="accept proofs made with a locally generated SRS in a production-mode run")
    parser.add_argument("--json", metavar="FILE", help="also write the machine-readable report here ('-' for stdout)")

    def run(args: argparse.Namespace) -> int:
        from pot_zk.verify_run import default_cache_dir, verify_run

        report = verify_run(
            Path(args.run),
            cache_dir=Path(args.cache_dir) if args.cache_dir else default_cache_dir(),
            srs_path=Path(args.srs) if args.srs else None,
            allow_dev_srs=args.allow_dev_srs,
        )
        if args.json == "-":
            print(json.dumps(report.to_dict(), indent=2))
        else:
            print(report.summary())
            if args.json:
                Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        return 0 if report.ok else 1

    return run


def prove_pending_in_run(run: Path, overrides: list[str]) -> int:
    """Prove the jobs parked in a run, recording each outcome in the bundle and its audit trail."""
    from pot_zk.audit import AuditLog
    from pot_zk.bundle import AUDIT, RunBundle, discard_incomplete_tail
    from pot_zk.config import build, compose_config
    from pot_zk.parking import parked_jobs, prove_pending
    from pot_zk.run import record_outcome
    from pot_zk.stats import ProvingStats

    bundle = RunBundle.open(run)
    runtime = build(compose_config([*overrides, f"run_dir='{bundle.root.absolute()}'"]))
    discard_incomplete_tail(bundle.path(AUDIT))
    stats = ProvingStats()
    with AuditLog(bundle.path(AUDIT), console=runtime.audit_console, run=bundle.root.name, command="prove-pending") as audit:
        audit.event("pending.start", parked=len(parked_jobs(bundle.park_dir)))
        results = prove_pending(bundle.park_dir, schedule=runtime.schedule, audit=audit, stats=stats, registry=runtime.registry)
        for result in results:
            record_outcome(bundle, result)
        remaining = len(parked_jobs(bundle.park_dir))
        audit.event("run.end", status="completed", command="prove-pending", proved=len(results) - remaining, still_parked=remaining, stats=stats.get_stats())
    for result in results:
        detail = result.proof_type if result.status == "proved" else (result.error or {}).get("error_class")
        print(f"step {result.step}: {result.status} ({detail})")
    print(f"{len(results) - remaining} proved, {remaining} still parked in {bundle.park_dir}")
    return 0 if remaining == 0 else 1
