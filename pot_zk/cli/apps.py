"""The Hydra apps of the ``pot-zk`` command: ``train`` and ``show-config``.

Before Hydra runs an app (and writes ``.hydra/`` and ``train.log`` into the run directory),
:func:`run_hydra_app` composes the same configuration itself and builds it, so that every
configuration error is one line before anything is written (in a ``--multirun`` sweep each job
is checked as it starts, and a failed job is left for ``pot-zk sweep-report``: a sweep's other
jobs still run). ``pot-zk train`` then takes the run directory's lock (:mod:`pot_zk.runs.lock`) and refuses
a directory that already holds a run; the app runs with ``run_dir`` fixed to the directory it
locked (a default ``outputs/${now:...}`` would otherwise be resolved again, a second later).

A pot-zk error raised inside an app leaves Hydra as :class:`AppFailed` (Hydra prints a
traceback for anything that is an ``Exception``); ``main`` prints it as one line. In a sweep a
job's pot-zk error is one line too, the next job runs, and the command exits 1 at the end.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pot_zk.config import schema
from pot_zk.exceptions import PotZkError

schema.register_schema()
CONFIG_NAMES = {"train": "config", "show-config": "show_config"}
VERBOSE_FLAGS = ("-v", "--verbose")


class AppFailed(BaseException):
    """A pot-zk error inside a Hydra app, carried past Hydra's error reporting to ``main``."""

    def __init__(self, error: PotZkError) -> None:
        super().__init__(error.message)
        self.error = error


BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
FAILED_JOBS: list[str] = []  # this process's failed sweep jobs (Hydra's basic launcher runs each job here)
TRACEBACKS = False  # -v or HYDRA_FULL_ERROR=1 (run_hydra_app)


def _reported(run: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    def app(cfg: DictConfig) -> None:
        try:
            run(cfg)
        except PotZkError as error:
            hydra_config = HydraConfig.get()
            if hydra_config.mode != RunMode.MULTIRUN:
                raise AppFailed(error) from error
            if hydra_config.launcher.get("_target_") != BASIC_LAUNCHER:
                raise  # Hydra's own report: a job in another process (joblib, Slurm)
            if TRACEBACKS:  # -v or HYDRA_FULL_ERROR=1: the traceback as well, the sweep goes on as without (it stopped, exit 2)
                traceback.print_exc(file=sys.stderr)
            _job_failed(error)

    return app


def _job_failed(error: PotZkError) -> None:
    """A sweep job's pot-zk error: one line on stderr and its ``job_error.json``; the sweep's
    other jobs still run, and the command exits 1 when it ends (:func:`run_hydra_app`)."""
    from pot_zk.cli.errors import error_line
    from pot_zk.runs.sweep_jobs import record_job_error

    hydra_config = HydraConfig.get()
    overrides = list(hydra_config.overrides.task)
    record_job_error(hydra_config.runtime.output_dir, error, overrides)
    job = f"job {hydra_config.job.num} ({' '.join(overrides)})"
    FAILED_JOBS.append(job)
    print(error_line(f"train: {job}", error), file=sys.stderr)


ENDED_RUNS: list[Any] = []
"""The runs (RunSummary) this process's ``pot-zk train`` or ``resume`` ended: a Ctrl-C that comes
after (as the summary prints, Hydra ends its job, the lock is let go) names the ended run
(:func:`pot_zk.cli.main.interrupted_line`), not a bare "interrupted" (found by a review)."""


def _train(cfg: DictConfig) -> None:
    from pot_zk.runs.summary import summary_lines
    from pot_zk.runs.train import train

    hydra_config = HydraConfig.get()
    if hydra_config.mode == RunMode.MULTIRUN:
        cfg.run_dir = hydra_config.runtime.output_dir  # each sweep job's bundle is its own output dir
    summary = train(cfg)
    if hydra_config.mode != RunMode.MULTIRUN:  # a sweep has other jobs to run: its interruption is not after its run
        ENDED_RUNS.append(summary)
    print("\n".join(summary_lines(summary)))


def _show_config(cfg: DictConfig) -> None:
    from pot_zk.config.build import build

    runtime = build(cfg)
    print(OmegaConf.to_yaml(cfg))
    print(f"# mode={runtime.mode} proving={'on' if runtime.proving_enabled else 'off'} "
          f"strategy={runtime.strategy.name} handler={runtime.handler.name} "
          f"attempts={runtime.schedule.max_attempts} (retries={runtime.schedule.max_retries})")


train_app = hydra.main(version_base="1.3", config_path="pkg://pot_zk.conf", config_name="config")(_reported(_train))
show_config_app = hydra.main(version_base="1.3", config_path="pkg://pot_zk.conf", config_name="show_config")(_reported(_show_config))
HYDRA_APPS: dict[str, Callable[[], Any]] = {"train": train_app, "show-config": show_config_app}


def run_hydra_app(name: str, argv: Sequence[str]) -> int:
    """``pot-zk NAME [-v] [overrides] [Hydra flags]``: validate, lock (train), then run the app
    (``mode`` and ``handler`` take their option in any case: :func:`~pot_zk.config.compose.canonical_override`)."""
    from hydra._internal.utils import get_args_parser

    from pot_zk.config.compose import canonical_override

    verbose = any(arg in VERBOSE_FLAGS for arg in argv)
    argv = [canonical_override(arg) for arg in argv if arg not in VERBOSE_FLAGS] + (["console.records=true"] if verbose else [])
    flags = get_args_parser().parse_args(argv)
    informational = (flags.help, flags.hydra_help, flags.info, flags.cfg, flags.shell_completion, flags.experimental_rerun,
                     flags.config_path, flags.config_name, flags.config_dir)
    if any(informational):
        return _run(name, argv)
    if flags.multirun:  # each job is validated as it runs; a failed job is the sweep's to report
        from pot_zk.runs.sweep_jobs import sweep_lock

        swept = [o.split("=", 1)[1] for o in flags.overrides if o.lstrip("+").startswith("hydra.sweep.dir=")]  # review54: ++hydra.sweep.dir too
        global TRACEBACKS
        TRACEBACKS = verbose or os.environ.get("HYDRA_FULL_ERROR") == "1"
        FAILED_JOBS.clear()
        with sweep_lock(Path(swept[-1]) if swept else None):  # the default is a new directory per sweep (conf/config.yaml: to the microsecond)
            _run(name, argv)
        if FAILED_JOBS:
            print(f"pot-zk {name}: {len(FAILED_JOBS)} job(s) of the sweep failed (above); pot-zk sweep-report lists every job", file=sys.stderr)
            return 1
        return 0
    cfg = _validated(name, [o for o in flags.overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))])
    if name != "train":
        return _run(name, argv)
    from pot_zk.config.build import run_dir_override
    from pot_zk.runs.lock import RunLock
    from pot_zk.runs.bundle import remove_launch_files
    from pot_zk.runs.train import new_run_bundle

    run_dir = str(cfg.run_dir)
    with RunLock(run_dir, "pot-zk train") as lock:
        new_run_bundle(lock.run_dir)  # a directory holding nothing but its lock: what Hydra writes next is this command's
        fixed = with_overrides([arg for arg in argv if not arg.lstrip("+").startswith("run_dir=")], [run_dir_override(run_dir)])
        try:
            return _run(name, fixed)
        except (AppFailed, KeyboardInterrupt, SystemExit):  # refused, interrupted or failed (Hydra exits 1 on any other error) before its run started: nothing is left of it
            remove_launch_files(lock.run_dir, (".hydra", f"{_job_name(name, fixed)}.log"))
            raise


def _validated(name: str, overrides: Sequence[str]) -> DictConfig:
    from pot_zk.config.compose import compose_config
    from pot_zk.config.validate import ErrorCollector, config_errors

    cfg = compose_config(overrides, CONFIG_NAMES[name])
    ErrorCollector(config_errors(cfg)).raise_any()  # a mistyped key or value: refused before torch and the backends are imported
    from pot_zk.config.build import build

    runtime = build(cfg)
    if name == "train":
        from pot_zk.runs.train import check_trainable

        check_trainable(runtime)
    return cfg


def _job_name(name: str, argv: Sequence[str]) -> str:
    """The Hydra job name the app runs under (its log file is ``NAME.log``)."""
    given = [arg.split("=", 1)[1] for arg in argv if arg.startswith("hydra.job.name=")]
    return given[-1] if given else name.replace("-", "_")


def with_overrides(argv: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``argv`` with ``extra`` overrides placed right after its own (review25: appended after a
    trailing Hydra flag, `k=v --multirun` failed with "unrecognized arguments")."""
    from hydra._internal.utils import get_args_parser

    argv = list(argv)
    given = get_args_parser().parse_args(argv).overrides
    if not given:
        return [*argv, *extra]
    last = len(argv) - 1 - argv[::-1].index(given[-1])
    return [*argv[: last + 1], *extra, *argv[last + 1 :]]


def _run(name: str, argv: Sequence[str]) -> int:
    """Run the app ``name`` on ``argv``; its job (and log file) named after the command (``train.log``)."""
    if not any(arg.startswith("hydra.job.name=") for arg in argv):
        argv = with_overrides(argv, [f"hydra.job.name={_job_name(name, argv)}"])
    saved = sys.argv
    sys.argv = [f"pot-zk {name}", *argv]
    try:
        HYDRA_APPS[name]()
    finally:
        sys.argv = saved
    return 0
