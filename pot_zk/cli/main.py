"""The ``pot-zk`` command.

Extension points:

* an argparse subcommand is one function ``(parser) -> handler`` that adds its arguments and
  returns ``handler(args) -> exit code``, plus one line in :data:`COMMANDS`;
* a Hydra app is one line in :data:`HYDRA_APPS` (``name -> "module:function"``, the function
  decorated with ``@hydra.main``); ``pot-zk NAME key=value ...`` hands it the rest of argv,
  where ``-v``/``--verbose`` stands for the override ``console.records=true`` (every audit
  record on the terminal) and ``mode``/``handler`` take their option in any case.

While a command runs, the audit trail's warnings and errors (the ``pot_zk.console`` logger)
show on the terminal; a library call alone prints nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from pot_zk.core.console import terminal_console
from pot_zk.core.registry import import_object
from pot_zk.exceptions import PotZkError

CommandHandler = Callable[[argparse.Namespace], int]
Command = Callable[[argparse.ArgumentParser], CommandHandler]


def audit_command(parser: argparse.ArgumentParser) -> CommandHandler:
    actions = parser.add_subparsers(dest="audit_action", required=True)
    verify = actions.add_parser("verify", help="check the hash chain of an audit trail")
    verify.add_argument("path", help="an audit.jsonl file")

    def run(args: argparse.Namespace) -> int:
        from pot_zk.core.audit_verify import verify_audit

        report = verify_audit(args.path)
        print(report.summary())
        return 0 if report.ok else 1

    return run


def prove_pending_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("park_dir", help="a run directory, or the directory the retry handler parked jobs in")
    parser.add_argument("--audit-file", help="audit trail to append to (default: audit.jsonl beside DIR)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the retry schedule, e.g. retry=aggressive")

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from pot_zk.core.audit import AuditLog
        from pot_zk.config import build, compose_config
        from pot_zk.proving.parking import parked_jobs, prove_pending
        from pot_zk.proving.stats import ProvingStats

        park_dir = Path(args.park_dir)
        if (park_dir / "manifest.json").is_file():
            from pot_zk.cli.commands import prove_pending_in_run

            return prove_pending_in_run(park_dir, args.overrides)
        runtime = build(compose_config(args.overrides, run_dir=park_dir.resolve().parent))
        audit_file = Path(args.audit_file) if args.audit_file else park_dir.resolve().parent / "audit.jsonl"
        with AuditLog(audit_file, console_records=runtime.console_records, command="prove-pending") as audit:
            results = prove_pending(park_dir, schedule=runtime.schedule, audit=audit, stats=ProvingStats(), registry=runtime.registry)
        for result in results:
            detail = result.proof_type if result.status == "proved" else (result.error or {}).get("error_class")
            print(f"step {result.step}: {result.status} ({detail})")
        remaining = len(parked_jobs(park_dir))
        print(f"{len(results) - remaining} proved, {remaining} still parked in {park_dir}")
        return 0 if remaining == 0 else 1

    return run


COMMANDS: dict[str, tuple[str, Command]] = {
    "verify": ("verify a whole run from its bundle", lambda p: import_object("pot_zk.cli.commands:verify_command")(p)),
    "resume": ("continue a stopped or killed run in its directory", lambda p: import_object("pot_zk.cli.commands:resume_command")(p)),
    "prove-step": ("prove one saved training step", lambda p: import_object("pot_zk.cli.commands:prove_step_command")(p)),
    "verify-step": ("verify the proof of one step made by prove-step", lambda p: import_object("pot_zk.cli.commands:verify_step_command")(p)),
    "report": ("plots and a summary of a run bundle", lambda p: import_object("pot_zk.report.run_report:report_command")(p)),
    "challenge": ("pick steps of a run for the trainer to prove (auditor)", lambda p: import_object("pot_zk.cli.challenge_commands:challenge_command")(p)),
    "respond": ("prove the steps a challenge picked (trainer)", lambda p: import_object("pot_zk.cli.challenge_commands:respond_command")(p)),
    "keys": ("key material: keys new (verifier-owned), keys circuit / import-zkey (a snarkjs ceremony)", lambda p: import_object("pot_zk.cli.challenge_commands:keys_command")(p)),
    "audit": ("audit trail tools", audit_command),
    "prove-pending": ("retry the jobs parked by the retry handler", prove_pending_command),
    "sweep-report": ("one table and plots over every job of a --multirun sweep", lambda p: import_object("pot_zk.report.sweep:sweep_report_command")(p)),
}

HYDRA_APPS: dict[str, str] = {
    "train": "pot_zk.runs.train:train_app",
    "show-config": "pot_zk.config.app:show_config",
}


VERBOSE_FLAGS = ("-v", "--verbose")


def run_hydra_app(name: str, argv: Sequence[str]) -> int:
    app = import_object(HYDRA_APPS[name])
    canonical_override = import_object("pot_zk.config.build:canonical_override")
    verbose = any(arg in VERBOSE_FLAGS for arg in argv)
    argv = [canonical_override(arg) for arg in argv if arg not in VERBOSE_FLAGS] + (["console.records=true"] if verbose else [])
    saved = sys.argv
    sys.argv = [f"pot-zk {name}", *argv]
    try:
        app()
    finally:
        sys.argv = saved
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="pot-zk", description="Verifiable neural-network training.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, command) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary)
        sub.set_defaults(handler=command(sub))
    for name in HYDRA_APPS:
        commands.add_parser(name, help="Hydra app: pot-zk %s [-v] [key=value ...] [--multirun]" % name, add_help=False)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the audit trail's warnings and errors show on the terminal meanwhile."""
    with terminal_console():
        return _run(list(sys.argv[1:] if argv is None else argv))


def _run(argv: list[str]) -> int:
    if argv and argv[0] in HYDRA_APPS:
        return run_hydra_app(argv[0], argv[1:])
    args = parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except PotZkError as error:
        print(f"pot-zk {argv[0]}: {error.error_class}: {error.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
