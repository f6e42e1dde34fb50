"""The ``retry`` failure handler: park a failed job durably on disk, prove it later.

One JSON file per step, ``<park_dir>/step-<step:08d>.json``, written atomically (temporary
file, fsync, rename, fsync of the directory). It holds the job, the strategy to retry it with,
the error and the attempts so far. :func:`prove_pending` retries every parked job and removes
its file only when the proof succeeds.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pot_zk.core.audit import AuditLog
from pot_zk.proving.handlers import HandlerSettings
from pot_zk.proving.receipt import ReceiptCheck
from pot_zk.proving.pipeline import ProofFailure, ProofResult, ProvingPipeline, failed
from pot_zk.proving.retry import RetrySchedule, Sleep, wall_clock_sleep
from pot_zk.proving.stats import ProvingStats
from pot_zk.proving.strategies import ProverStrategy, StrategyRegistry, strategy_from_spec, strategy_spec
from pot_zk.core.protocol import ProverRequest

PARK_FORMAT = "pot-zk-parked/1"


def parked_path(park_dir: Path, step: int) -> Path:
    return park_dir / f"step-{step:08d}.json"


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class ParkForLater:
    """Park the job for ``prove_pending``; the result is ``parked``, never lost."""

    name = "retry"

    def __init__(self, park_dir: Path) -> None:
        self.park_dir = Path(park_dir)

    @classmethod
    def from_settings(cls, settings: HandlerSettings, registry: StrategyRegistry) -> "ParkForLater":
        return cls(settings.park_dir)

    def __call__(self, failure: ProofFailure, pipeline: ProvingPipeline) -> ProofResult:
        path = parked_path(self.park_dir, failure.job.step)
        previous_attempts = json.loads(path.read_text())["attempts"] if path.exists() else 0
        write_atomically(path, {
            "format": PARK_FORMAT,
            "job": failure.job.to_stored_dict(),
            "strategy": strategy_spec(failure.strategy),
            "error": failure.error.to_record(),
            "attempts": previous_attempts + failure.attempts,
            "parked_at": datetime.now(timezone.utc).isoformat(),
        })
        pipeline.audit.event("parked", step=failure.job.step, path=str(path), error_class=failure.error.error_class)
        return failed(failure, status="parked")


def parked_jobs(park_dir: Path) -> list[Path]:
    return sorted(Path(park_dir).glob("step-*.json"))


def prove_pending(
    park_dir: str | os.PathLike[str],
    *,
    schedule: RetrySchedule,
    audit: AuditLog,
    stats: ProvingStats,
    registry: StrategyRegistry | None = None,
    sleep: Sleep = wall_clock_sleep,
    prepare: Callable[[ProverRequest], ProverRequest | None] | None = None,
    record: Callable[[ProofResult], None] | None = None,
    configured: ProverStrategy | None = None,
    check: ReceiptCheck | None = None,
) -> list[ProofResult]:
    """Retry every parked job with the strategy it was parked from. A job whose proof now
    succeeds has its file removed; one that fails again stays parked (attempts updated).

    In a run (``pot-zk prove-pending RUN``): ``prepare`` turns the parked job into the job the
    run proves now (rebuilt from the bundle, its witness checked; None: the step needs no proof
    any more, its file is removed), and ``record`` records each outcome in the bundle before the
    job's file is removed, so an interruption between two jobs loses no outcome; ``configured``
    (the run's strategy as its configuration and the command's overrides give it) proves the
    jobs parked from a strategy of its proof type."""
    park_dir = Path(park_dir)
    registry = registry or StrategyRegistry()
    results = []
    for path in parked_jobs(park_dir):
        parked = json.loads(path.read_text())
        job = ProverRequest.from_json_dict(parked["job"])
        if prepare is not None:
            prepared = prepare(job)
            if prepared is None:
                path.unlink()
                audit.event("unparked", step=job.step, path=str(path), reason="already-final")
                continue
            job = prepared
        strategy = strategy_from_spec(parked["strategy"], registry)
        if configured is not None and configured.name == strategy.name:
            strategy = configured
        pipeline = ProvingPipeline(strategy, schedule, ParkForLater(park_dir), audit, stats, sleep=sleep, check=check)
        result = pipeline.prove(job, record=record)
        if result.status == "proved":
            path.unlink()
            audit.event("unparked", step=job.step, path=str(path))
        results.append(result)
    return results
