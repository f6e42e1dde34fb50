"""What the terminal shows of the proofs in flight: each running proof's stage and an ETA.

:class:`ProofWatch` gives each proof job of a run a stage file (the request's
``progress_path``, :mod:`pot_zk.core.stages`) in a temporary directory of its own (removed
when its ``with`` block ends) and reads those files when the progress bar asks for
:meth:`ProofWatch.text`::

    ETA 00:09; step 4: prove 2 s

A job runs from its first stage line to its outcome. The ETA is the time until every proof
handed to the executor so far is done: the median duration of the proofs this process has
seen through (the first one left out once there are others: it alone pays the key setup or
load), less what each running proof has already taken, the queued ones after them on the
executor's ``workers``. No ETA before a proof has finished, nor for prover programs that write
no stage lines.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from pot_zk.core.scratch import remove_scratch, scratch_directory
from pot_zk.core.stages import StageLine, read_stages

SHOWN = 2
"""Running proofs named on the bar at most (the rest are counted)."""


class ProofWatch:
    def __init__(self, workers: int, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = scratch_directory("pot-zk-stages-")
        self.workers = max(1, workers)
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[int, Path] = {}
        self._durations: list[float] = []

    def stage_file(self, step: int) -> str:
        """A fresh stage file for the job of ``step``, watched until :meth:`finished`."""
        path = self.directory / f"step-{step:08d}.jsonl"
        path.unlink(missing_ok=True)
        with self._lock:
            self._pending[step] = path
        return str(path)

    def finished(self, step: int, proved: bool) -> None:
        """The job of ``step`` has its outcome; a proof's duration counts toward the ETA."""
        with self._lock:
            path = self._pending.pop(step, None)
        if path is None:
            return
        lines = read_stages(path)
        if proved and lines:
            with self._lock:
                self._durations.append(self._clock() - lines[0].at)
        path.unlink(missing_ok=True)

    def typical_s(self) -> float | None:
        """The median proof duration so far (None before the first)."""
        with self._lock:
            measured = self._durations[1:] or self._durations
            return statistics.median(measured) if measured else None

    def text(self) -> str:
        """``ETA mm:ss; step N: <stage> S s, ...`` for the bar; empty when nothing is in flight.
        The executors start jobs in the order they were handed them, which is step order: the
        first ``workers`` jobs without an outcome are the ones proving, the others queued."""
        now = self._clock()
        with self._lock:
            pending = sorted(self._pending.items())
        active = [(step, read_stages(path)) for step, path in pending[: self.workers]]
        queued = len(pending) - len(active)
        eta = self._eta(now, [lines for _, lines in active], queued)
        shown = [f"step {step}: {_doing(lines, now)}" for step, lines in active[:SHOWN]]
        if len(active) > SHOWN:
            shown.append(f"{len(active) - SHOWN} more proving")
        if queued:
            shown.append(f"{queued} queued")
        return "; ".join([*([f"ETA {tqdm.format_interval(eta)}"] if eta is not None else []), *([", ".join(shown)] if shown else [])])

    def _eta(self, now: float, active: list[list[StageLine]], queued: int) -> float | None:
        typical = self.typical_s()
        if typical is None or not (active or queued):
            return None
        lanes = [max(typical - (now - lines[0].at), 0.0) if lines else typical for lines in active]
        lanes = sorted(lanes + [0.0] * (self.workers - len(lanes)))
        for _ in range(queued):
            lanes[0] += typical
            lanes.sort()
        return max(lanes)

    def close(self) -> None:
        remove_scratch(self.directory)

    def __enter__(self) -> "ProofWatch":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _doing(lines: list[StageLine], now: float) -> str:
    """The stage a job is in and for how long, or ``starting`` before its first stage line."""
    if not lines:
        return "starting"
    elapsed = now - lines[-1].at
    return f"{lines[-1].shown} {elapsed:.1f} s" if elapsed < 10 else f"{lines[-1].shown} {elapsed:.0f} s"
