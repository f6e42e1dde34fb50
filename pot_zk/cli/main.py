"""The ``pot-zk`` command.

Extension points:

* an argparse subcommand is one function ``(parser) -> handler`` that adds its arguments and
  returns ``handler(args) -> exit code``, plus one line in :data:`COMMANDS`;
* a Hydra app is one line in :data:`pot_zk.cli.apps.HYDRA_APPS` and its config name in
  ``CONFIG_NAMES``; ``pot-zk NAME key=value ...`` hands it the rest of argv, where
  ``-v``/``--verbose`` stands for the override ``console.records=true`` (every audit record on
  the terminal) and ``mode``/``handler`` take their option in any case.

While a command runs, the audit trail's warnings and errors (the ``pot_zk.console`` logger)
show on the terminal; a library call alone prints nothing.

Errors: a pot-zk error is one line on stderr, ``pot-zk COMMAND: message`` (a configuration or
usage error: a missing file, a directory that is not a run; other errors with their class),
exit status 2; ``-v`` (any command) or ``HYDRA_FULL_ERROR=1`` prints the traceback first. A
closed output pipe ends the command quietly with 141. Ctrl-C or SIGTERM
(:mod:`pot_zk.cli.interrupt`) ends a run ``interrupted``, says how to continue it, exit 130.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from typing import Callable, Sequence

from pot_zk.cli.errors import error_line
from pot_zk.cli.interrupt import EXIT_INTERRUPTED, interruptible
from pot_zk.core.console import terminal_console
from pot_zk.core.registry import import_object
from pot_zk.exceptions import ConfigurationError, PotZkError

CommandHandler = Callable[[argparse.Namespace], int]
Command = Callable[[argparse.ArgumentParser], CommandHandler]


def audit_command(parser: argparse.ArgumentParser) -> CommandHandler:
    actions = parser.add_subparsers(dest="audit_action", required=True)
    verify = actions.add_parser("verify", help="check the hash chain of an audit trail")
    verify.add_argument("path", help="an audit.jsonl file")

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from pot_zk.core.audit_verify import verify_audit

        if Path(args.path).is_dir():
            raise ConfigurationError(f"{args.path} is a directory; give its audit trail file (e.g. {Path(args.path) / 'audit.jsonl'})", key="path", path=args.path)
        if not Path(args.path).is_file():
            raise ConfigurationError(f"{args.path}: no such file", key="path", path=args.path)
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

        park_dir = Path(args.park_dir)
        if not park_dir.is_dir():
            raise ConfigurationError(f"{park_dir}: no such directory", key="park_dir", path=str(park_dir))
        from pot_zk.cli.commands import prove_pending_in_park_dir, prove_pending_in_run
        from pot_zk.proving.parking import parked_jobs

        if (park_dir / "manifest.json").is_file():
            return prove_pending_in_run(park_dir, args.overrides)
        if (park_dir.resolve().parent / "manifest.json").is_file():  # a run's own park directory: its outcomes belong in the bundle
            return prove_pending_in_run(park_dir.resolve().parent, args.overrides)
        if not parked_jobs(park_dir):
            print(f"nothing parked in {park_dir}")
            return 0
        return prove_pending_in_park_dir(park_dir, args.overrides, Path(args.audit_file) if args.audit_file else None)

    return run


COMMANDS: dict[str, tuple[str, Command]] = {
    "verify": ("verify a whole run from its bundle", lambda p: import_object("pot_zk.cli.commands:verify_command")(p)),
    "resume": ("continue a stopped or killed run in its directory", lambda p: import_object("pot_zk.cli.commands:resume_command")(p)),
    "prove-step": ("prove one saved training step", lambda p: import_object("pot_zk.cli.commands:prove_step_command")(p)),
    "verify-step": ("verify the proof of one step made by prove-step", lambda p: import_object("pot_zk.cli.commands:verify_step_command")(p)),
    "report": ("plots and a summary of a run bundle", lambda p: import_object("pot_zk.cli.commands:report_command")(p)),
    "challenge": ("pick steps of a run for the trainer to prove (auditor)", lambda p: import_object("pot_zk.cli.challenge_commands:challenge_command")(p)),
    "respond": ("prove the steps a challenge picked (trainer)", lambda p: import_object("pot_zk.cli.challenge_commands:respond_command")(p)),
    "keys": ("key material: keys new (verifier-owned), keys circuit / import-zkey (a snarkjs ceremony)", lambda p: import_object("pot_zk.cli.challenge_commands:keys_command")(p)),
    "export": ("the auditor's copy of a run: what verify reads, no witnesses or checkpoint", lambda p: import_object("pot_zk.cli.handover:export_command")(p)),
    "audit": ("audit trail tools", audit_command),
    "prove-pending": ("retry the jobs parked by the retry handler", prove_pending_command),
    "sweep-report": ("one table and plots over every job of a --multirun sweep", lambda p: import_object("pot_zk.report.sweep:sweep_report_command")(p)),
}

HYDRA_APPS = ("train", "show-config")
VERBOSE_FLAGS = ("-v", "--verbose")
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE, as a shell reports a command whose output pipe closed."""


def parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The ``pot-zk`` parser. Only the ``chosen`` command's arguments are built (its module
    imported); every command is one help line, so ``pot-zk verify`` does not import what
    ``pot-zk report`` needs, nor ``pot-zk --help`` either."""
    root = argparse.ArgumentParser(prog="pot-zk", description="Verifiable neural-network training.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, command) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary)
        if name == chosen:
            sub.set_defaults(handler=command(sub))
            root.owns_verbose = "-v" in sub._option_string_actions  # type: ignore[attr-defined]  # resume: -v prints every audit record
    for name in HYDRA_APPS:
        commands.add_parser(name, help="Hydra app: pot-zk %s [-v] [key=value ...] [--multirun]" % name, add_help=False)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the audit trail's warnings and errors show on the terminal meanwhile."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else "pot-zk"
    with terminal_console(), interruptible():
        try:
            return _dispatch(argv)
        except KeyboardInterrupt as interrupted:
            print(interrupted_line(command, interrupted), file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            if not _stdout_gone():
                raise
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the reader of the output went away (`| head -1`): no traceback
            return EXIT_BROKEN_PIPE
        except BaseException as error:
            failure = usage_error(error)
            if failure is None:
                raise
            if any(arg in VERBOSE_FLAGS for arg in argv) or os.environ.get("HYDRA_FULL_ERROR") == "1":
                traceback.print_exception(failure)
            print(error_line(command, failure), file=sys.stderr)
            return EXIT_USAGE


def _stdout_gone() -> bool:
    """Whether the output's reader went away (its pipe reports an error), not some other pipe."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no file descriptor, no poll(): not ours to say
        return False


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in HYDRA_APPS:
        from pot_zk.cli.apps import run_hydra_app

        return run_hydra_app(argv[0], argv[1:])
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    root = parser(chosen)
    if not getattr(root, "owns_verbose", False):
        argv = [arg for arg in argv if arg not in VERBOSE_FLAGS]  # -v: the traceback of an error (main), for any command
    args = root.parse_args(argv)
    return int(args.handler(args))


def usage_error(error: BaseException) -> PotZkError | None:
    """The pot-zk error ``error`` stands for: itself, the error a Hydra app carried out, an
    optional dependency that is not installed (the extra to install), a missing file or directory
    given on the command line, or one this account may not open (say, a run's lock file another
    account created); None for anything else (a bug: traceback)."""
    from pot_zk.core.extras import missing_extra

    apps = sys.modules.get("pot_zk.cli.apps")  # an AppFailed needs it loaded; importing it costs torch's import
    if apps is not None and isinstance(error, apps.AppFailed):
        return error.error
    if isinstance(error, PotZkError):
        return error
    if isinstance(error, ImportError) and missing_extra(error) is not None:
        return missing_extra(error)
    if isinstance(error, (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)) and error.filename is not None:
        failure = ConfigurationError(f"{error.filename}: {error.strerror.lower() if error.strerror else error}", key="path", path=str(error.filename))
        failure.__traceback__ = error.__traceback__
        return failure
    return None


def interrupted_line(command: str, interrupted: KeyboardInterrupt) -> str:
    """``interrupted at step N of M; continue with: pot-zk resume RUN`` for a run of train or
    resume, else that the command was interrupted."""
    train = sys.modules.get("pot_zk.runs.train")  # a review: importing it here re-entered a half-imported torch (a crash, not exit 130)
    apps = sys.modules.get("pot_zk.cli.apps")
    ended = apps.ENDED_RUNS[-1] if apps is not None and apps.ENDED_RUNS and command in ("train", "resume") else None
    if ended is not None and ended.status == "completed" and not (train is not None and isinstance(interrupted, train.RunInterrupted)):
        return _completed_line(_shown_path(ended.run_dir))
    if train is None or not isinstance(interrupted, train.RunInterrupted):
        if getattr(interrupted, "after_end", False):  # respond, prove-pending: deferred while their run.end was written
            return f"pot-zk {command}: interrupted as it ended; its run.end is written (the audit trail has its outcome): nothing to do again"
        return f"pot-zk {command}: interrupted"
    run = _shown_path(interrupted.run_dir)
    if not interrupted.resumable:
        return f"interrupted before the run in {run} started; nothing to resume: run the same command again"
    if interrupted.completed:
        return _completed_line(run)
    of_total = "" if interrupted.total is None else f" of {interrupted.total}"  # None: interrupted before the schedule was known
    return f"interrupted at step {interrupted.steps}{of_total}; continue with: pot-zk resume {shlex.quote(run)}"


def _completed_line(run: str) -> str:
    return f"interrupted after the run in {run} completed; nothing to resume: verify it with: pot-zk verify {shlex.quote(run)}"


def _shown_path(path: "os.PathLike[str] | str") -> str:
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else os.fspath(path)


def console() -> None:
    """The ``pot-zk`` script: :func:`main`, then the process ends at once with its status
    (:func:`pot_zk.core.process_exit.exit_now`: no second of interpreter teardown, in which a
    Ctrl-C would end it by the signal); an error :func:`main` lets through ends it as Python does."""
    from pot_zk.core.process_exit import exit_now

    exit_now(main())


if __name__ == "__main__":
    console()
