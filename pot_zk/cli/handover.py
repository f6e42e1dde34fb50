"""The hand-over between trainer and auditor on the command line: ``pot-zk export``, the archive
``pot-zk verify`` accepts, and the run directories that must be the trainer's own."""

from __future__ import annotations

import argparse
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from pot_zk.core.scratch import remove_scratch, scratch_directory
from pot_zk.exceptions import ConfigurationError

CommandHandler = Callable[[argparse.Namespace], int]


def export_command(parser: argparse.ArgumentParser) -> CommandHandler:
    parser.add_argument("run", help="your run directory")
    parser.add_argument("--out", help="the archive to write (default: RUNNAME-HEAD.tar.gz here, HEAD the first 16 hex digits of the commitment head)")

    def run(args: argparse.Namespace) -> int:
        from pot_zk.runs.export import export_run

        made = export_run(run_directory(args.run), Path(args.out) if args.out else None)
        print(f"exported {len(made.files)} files of {args.run} to {made.archive} (no witnesses, checkpoint or logs; its audit trail carries the run's configuration and statistics)")
        print(f"commitment head: {made.head}")
        if made.ended != "completed":  # review32: an unfinished run was handed over as is
            how = "has no end recorded (it is training, or was stopped)" if made.ended is None else f"ended {made.ended}"
            print(f"pot-zk export: warning: the run {how}: verify fails it (run-not-completed); complete it with "
                  f"pot-zk resume {shlex.quote(args.run)} and export it again", file=sys.stderr)
            return 0
        if made.open_session is not None:  # review53: a killed respond left the trail open; the export was handed over as finished
            again = "pot-zk respond RUN CHALLENGE.json" if made.open_session == "respond" else f"pot-zk {made.open_session} RUN"
            print(f"pot-zk export: warning: the audit trail ends in an unfinished {made.open_session} (killed, or still running): verify "
                  f"fails it (not-closed); run {again.replace('RUN', shlex.quote(args.run))} again to finish it, and export it again", file=sys.stderr)
            return 0
        print(f"hand the auditor {made.archive}; they check it with: pot-zk verify {shlex.quote(str(made.archive))} --expect-head {made.head}")
        return 0

    return run


def run_directory(path: str) -> Path:
    """``path`` as a run directory whose manifest parses: ConfigurationError (a usage error) when
    it does not exist, holds no run, or its manifest.json is not JSON (naming file and line)."""
    run = existing_run(path)
    run_manifest(run)
    return run


def existing_run(path: str) -> Path:
    """``path`` as a run directory: ConfigurationError (a usage error) when it does not exist or
    holds no run (no manifest.json)."""
    run = Path(path)
    if not run.exists():
        raise ConfigurationError(f"{path}: no such file or directory", key="run", path=path)
    if run.is_file():
        import tarfile

        what = "an archive (pot-zk verify reads an export archive; this command needs the run directory)" if tarfile.is_tarfile(run) else "a file (not an export archive either)"
        raise ConfigurationError(f"{path} is {what}, not a pot-zk run directory", key="run", path=path)
    if not (run / "manifest.json").is_file():
        raise ConfigurationError(f"{path} is not a pot-zk run directory (no manifest.json)", key="run", path=path)
    return run


@contextmanager
def verifiable(path: str) -> Iterator[Path]:
    """The run directory ``pot-zk verify`` checks: ``path`` itself, or an export archive
    unpacked into a temporary directory (removed afterwards)."""
    if not Path(path).exists():
        raise ConfigurationError(f"{path}: no such file or directory", key="run", path=path)
    from pot_zk.runs.export import is_export_archive, unpack_export

    if not is_export_archive(Path(path)):
        yield existing_run(path)
        return
    scratch = scratch_directory("pot-zk-export-")
    try:
        yield unpack_export(Path(path), scratch)
    finally:
        remove_scratch(scratch)


def trainers_run(path: str, command: str) -> Path:
    """``path`` as the trainer's own run directory (``respond``, ``prove-pending``): an export
    (archive or unpacked) is refused, it has no witnesses or checkpoint to prove from."""
    from pot_zk.runs.export import EXPORT_MANIFEST, is_export_archive

    if is_export_archive(Path(path)) or (Path(path) / EXPORT_MANIFEST).is_file():
        raise ConfigurationError(
            f"{path} is an export (pot-zk export): {command} needs the trainer's own run directory, which keeps the "
            "witnesses and checkpoint that proving a step takes",
            key="run",
            path=path,
        )
    return run_directory(path)


def run_manifest(run: Path) -> dict:
    """The run's manifest.json; ConfigurationError naming the file and line when it does not parse."""
    import json

    from pot_zk.bundle.layout import RUN_FORMAT

    path = run / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{path} line {error.lineno} column {error.colno}: not JSON ({error.msg})", key="run", path=str(path)) from error
    except UnicodeDecodeError as error:
        raise ConfigurationError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})", key="run", path=str(path)) from error
    if not isinstance(manifest, dict):
        raise ConfigurationError(f"{path}: not a JSON object", key="run", path=str(path))
    if manifest.get("format") != RUN_FORMAT:
        raise ConfigurationError(f"{path}: a bundle of format {manifest.get('format')!r}; this pot-zk reads {RUN_FORMAT!r}", key="run", path=str(path))
    return manifest
