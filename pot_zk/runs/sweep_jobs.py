"""What a ``pot-zk train --multirun`` sweep leaves for ``pot-zk sweep-report`` besides its bundles.

:class:`SweepJobs` is a Hydra callback (``hydra.callbacks.sweep_jobs`` in ``conf/config.yaml``):

* at the start of a sweep, a ``run_dir=`` override is pointed out on stderr: under
  ``--multirun`` each job has its own directory under ``hydra.sweep.dir``, so the
  value is not used;
* a job that raised leaves ``job_error.json`` (:data:`JOB_ERROR`: the error's class and
  message, its overrides; written by the app for a pot-zk error, by :meth:`SweepJobs.on_job_end`
  for any other) in its own directory, which otherwise may hold no bundle at all (a
  configuration error stops it before anything is written), so the report can list it with
  its error instead of dropping it.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from pot_zk.core.atomic import write_json_atomic
from pot_zk.exceptions import PotZkError

JOB_ERROR = "job_error.json"


class SweepJobs(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        given = [o for o in config.hydra.overrides.task if o.lstrip("+~").split("=", 1)[0] == "run_dir"]
        if given:
            print(
                f"pot-zk: {given[0]} is not used under --multirun: each job has its own directory under "
                f"hydra.sweep.dir ({config.hydra.sweep.dir}); to choose where the sweep goes, pass hydra.sweep.dir=DIR instead",
                file=sys.stderr,
            )

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN or job_return.status != JobStatus.FAILED:
            return
        error = job_return._return_value  # Hydra's own LogJobReturnCallback reads it so: .return_value re-raises
        record_job_error(config.hydra.runtime.output_dir, error, list(job_return.overrides or []))


SWEEP_LOCK = ".pot-zk.sweep.lock"


@contextmanager
def sweep_lock(sweep_dir: Path | None) -> Iterator[None]:
    """For the whole of a sweep into ``sweep_dir`` (None: Hydra's default, a new directory): its
    lock, taken without waiting (ConfigurationError while another sweep into it runs), and no job
    directory of it held by another process (:func:`refuse_a_sweep_directory_in_use`). Hydra
    writes a job's ``.hydra/`` before the job takes its run's lock: checking the job locks once
    left the moments between jobs open to a second sweep (review54)."""
    from filelock import FileLock, Timeout

    from pot_zk.exceptions import ConfigurationError

    if sweep_dir is None:
        yield
        return
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(sweep_dir / SWEEP_LOCK), timeout=0)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigurationError(
            f"the sweep directory {sweep_dir} is in use by another sweep: pass hydra.sweep.dir=DIR to sweep into another directory",
            key="hydra.sweep.dir",
        ) from None
    try:
        refuse_a_sweep_directory_in_use(sweep_dir)
        yield
    finally:
        lock.release()


def refuse_a_sweep_directory_in_use(sweep_dir: Path) -> None:
    """ConfigurationError (naming the sweep directory) when a process holds the lock of one of
    ``sweep_dir``'s job directories now: Hydra writes each job's ``.hydra/`` before the job
    takes its run's lock, so a second sweep into the directory of one still running overwrote a
    live run's record of how it was launched, and its refused job left its error there
    (review53). Checked with a shared lock, which writes nothing."""
    from pot_zk.exceptions import ConfigurationError
    from pot_zk.runs.lock import RunInUseError, shared_lock

    if not sweep_dir.is_dir():
        return
    for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.is_symlink()):
        try:
            with shared_lock(job):
                pass
        except OSError:  # a lock file this account may not open: the job's own lock decides when it runs
            continue
        except RunInUseError as exc:
            raise ConfigurationError(
                f"the sweep directory {sweep_dir} is in use ({exc.message}): pass hydra.sweep.dir=DIR to sweep into another directory",
                key="hydra.sweep.dir",
            ) from None


def record_job_error(job_dir: str | Path, error: BaseException, overrides: list[str]) -> None:
    """``job_error.json`` in the job's directory: the error's class and message, the job's overrides."""
    record = error.to_record() if isinstance(error, PotZkError) else {"error_class": type(error).__name__, "message": str(error)}
    write_json_atomic(Path(job_dir) / JOB_ERROR, {**record, "overrides": overrides})
