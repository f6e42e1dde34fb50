"""The run lifecycle every front door takes: compose -> build -> open the audit trail -> ...
-> ``run.end`` with the statistics.

    lifecycle = RunLifecycle.configure(overrides, run_dir=path)   # compose (+ run_dir) and build
    runtime = lifecycle.runtime                                   # typed: proving side, runtime.plan, runtime.config
    lifecycle.claim(path, "pot-zk train")                         # the run directory's lock, before anything is written
    audit = lifecycle.open(path / "audit.jsonl", "run.start", stats_dir=path, **fields)
    pipeline = lifecycle.pipeline()                               # proves on this trail, counts in lifecycle.stats
    ...
    lifecycle.end("completed", **fields)                          # run.end (+ stats), stats files, trail closed

* :meth:`RunLifecycle.configure` composes pot-zk's config with ``overrides`` (``run_dir`` is
  added as the last override) and builds it; :meth:`RunLifecycle.from_config` builds a config
  composed elsewhere (a Hydra app, a resumed run's config.yaml, a config adjusted before
  building). Bad configuration raises :class:`~pot_zk.exceptions.ConfigurationError` here,
  before any file is written.
* :meth:`RunLifecycle.claim` takes the run directory's exclusive lock (:mod:`pot_zk.runs.lock`):
  a run that another process holds is a :class:`~pot_zk.runs.lock.RunInUseError` before
  anything is written. :meth:`end` (or :meth:`release`) lets it go.
* :meth:`RunLifecycle.open` drops a last record a crash cut short (its bytes are in
  :attr:`RunLifecycle.discarded`), opens the hash-chained audit log (console per the config;
  ``run`` and ``command`` bind context to every record) and writes the opening event, if one
  is named, with ``fields``, then ``run.lock_taken_over`` when :meth:`claim` took the lock
  from a holder that is gone. ``stats_dir``: where :meth:`end` writes stats.json and
  metrics.prom (None: nowhere).
* :meth:`RunLifecycle.end` writes ``run.end`` with ``status`` (when given), ``fields`` and the
  statistics, even when writing the statistics files fails; then closes the trail. Only the
  first call counts.
* As a context manager: leaving the block ends the run ``completed``, or ``halted`` on a
  :class:`~pot_zk.exceptions.PotZkError`, ``interrupted`` on KeyboardInterrupt (Ctrl-C,
  SIGTERM in the CLI), ``aborted`` on any other exception (which propagates).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from pot_zk.config.build import Runtime, build, compose_config
from pot_zk.core.atomic import StorageError
from pot_zk.core.audit import AuditLog
from pot_zk.core.prover_processes import closing_run
from pot_zk.exceptions import PotZkError
from pot_zk.proving.pipeline import ProvingPipeline
from pot_zk.proving.retry import Sleep
from pot_zk.proving.stats import ProvingStats
from pot_zk.proving.strategies import StrategyRegistry
from pot_zk.runs.bundle import discard_incomplete_tail
from pot_zk.runs.lock import RunLock


class RunLifecycle:
    """One run from its configuration to its ``run.end`` record (see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.stats = ProvingStats()
        self.audit: AuditLog | None = None
        self.discarded = b""
        self.ended = False
        self.end_status: str | None = None
        """The status :meth:`end` wrote into ``run.end``."""
        self.lock: RunLock | None = None
        self._stats_dir: Path | None = None

    @classmethod
    def configure(
        cls, overrides: Sequence[str] = (), *, run_dir: str | Path | None = None, registry: StrategyRegistry | None = None
    ) -> "RunLifecycle":
        """Compose pot-zk's config with ``overrides`` (and ``run_dir``), build it."""
        return cls.from_config(compose_config(overrides, run_dir=run_dir), registry=registry)

    @classmethod
    def from_config(cls, cfg: DictConfig, *, registry: StrategyRegistry | None = None) -> "RunLifecycle":
        return cls(build(cfg, registry))

    def claim(self, run_dir: str | Path, command: str) -> RunLock:
        """Take ``run_dir``'s exclusive lock for ``command`` (RunInUseError when another process
        holds it); :meth:`end` or :meth:`release` lets it go."""
        if self.lock is not None:
            raise RuntimeError(f"this run already holds the lock of {self.lock.run_dir}")
        self.lock = RunLock(run_dir, command).acquire()
        return self.lock

    def release(self) -> None:
        """Let go of the run directory's lock, if :meth:`claim` took it."""
        if self.lock is not None:
            self.lock.release()

    def open(
        self,
        audit_file: str | Path | None = None,
        event: str | None = None,
        *,
        stats_dir: str | Path | None = None,
        run: str | None = None,
        command: str | None = None,
        **fields: Any,
    ) -> AuditLog:
        """Open the audit trail (default: the runtime's ``audit_file``) and write ``event``."""
        path = Path(audit_file) if audit_file is not None else self.runtime.audit_file
        self.discarded = discard_incomplete_tail(path)
        context = {key: value for key, value in (("run", run), ("command", command)) if value is not None}
        self.audit = AuditLog(path, console_records=self.runtime.console_records, mode=self.runtime.mode, **context)
        self._stats_dir = Path(stats_dir) if stats_dir is not None else None
        if event is not None:
            self.audit.event(event, **fields)
        if self.lock is not None and self.lock.killed:
            for previous in self.lock.killed:
                self.audit.event("run.lock_taken_over", previous_holder=asdict(previous))
            self.lock.takeover_audited()
        return self.audit

    def pipeline(self, *, sleep: Sleep = time.sleep) -> ProvingPipeline:
        """The proving pipeline of the configured strategy, handler and schedule, auditing to
        this run's trail and counting in :attr:`stats`."""
        if self.audit is None:
            raise RuntimeError("open() the run before asking for its pipeline")
        return self.runtime.open_pipeline(audit=self.audit, stats=self.stats, sleep=sleep)

    def end(self, status: str | None = "completed", **fields: Any) -> dict[str, Any]:
        """Write ``run.end`` and close the trail (first call only), release the run directory's
        lock; return the statistics."""
        stats = self.stats.get_stats()
        try:
            if self.ended or self.audit is None:
                return stats
            self.ended = True
            with closing_run():  # a signal now is raised once run.end is written (review18: none was)
                try:
                    if self._stats_dir is not None:
                        self.stats.write(self._stats_dir)
                except StorageError as unwritten:  # a review: a full disk here failed a run that had ended (and advised a resume it refuses)
                    self.audit.event("run.stats_not_written", run_status=status,
                                     error={"error_class": "StorageError", "message": f"cannot write {unwritten.path}: {unwritten.context.get('cause')}"})
                finally:
                    self.audit.event("run.end", **({"status": status} if status is not None else {}), **fields, stats=stats)
                    self.end_status = status
                    self.audit.close()
        finally:
            self.release()
        return stats

    def __enter__(self) -> "RunLifecycle":
        return self

    def __exit__(self, exc_type: type | None, error: BaseException | None, traceback: Any) -> None:
        if error is None:
            self.end("completed")
        elif isinstance(error, PotZkError):
            self.end("halted")
        elif isinstance(error, KeyboardInterrupt):
            self.end("interrupted")
        else:
            self.end("aborted")
