"""The table of ``pot-zk sweep-report``: one row per job of a sweep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SweepJob:
    """One job of the sweep: its directory (relative to the sweep), its overrides, its numbers."""

    job: str
    overrides: dict[str, str]
    values: dict[str, Any]
    error: str | None = None
    """Why the job did not complete (``status`` is not ``completed``); None for one that did."""
    losses: tuple[tuple[int, float], ...] = ()
    """(step, recorded training loss) of each step."""
    scores: tuple[tuple[int, float], ...] = ()
    """(steps trained, held-out accuracy, or loss for a regression set) of each scored model."""


@dataclass(frozen=True)
class SweepTable:
    columns: tuple[str, ...]
    swept: tuple[str, ...]
    """The override keys whose value differs between jobs (columns after ``job``)."""
    jobs: tuple[SweepJob, ...]

    def value(self, job: SweepJob, column: str) -> Any:
        if column == "job":
            return job.job
        if column == "error":
            return job.error
        if column in self.swept:
            return job.overrides.get(column)
        return job.values.get(column)

    def rows(self) -> list[list[str]]:
        return [[_cell(self.value(job, column)) for column in self.columns] for job in self.jobs]

    def failed(self) -> list[SweepJob]:
        return [job for job in self.jobs if job.error is not None]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
