"""Stage lines: what a prover program is doing now, for the trainer's terminal (docs/protocol.md).

A request may name a ``progress_path`` (an optional field of ``pot-zk-prover/1``). While it
answers that request, the program appends one JSON line per stage it enters to that file::

    {"stage": "prove", "at": 1767225600.25}

``at`` is the wall-clock time (seconds since the epoch) it entered the stage. The stages are
:data:`STAGES`; a program reports those it goes through, in its order (an ezkl proof has no
verify stage; a key holder that already holds the key has no key stage). The lines are for
people only: pot-zk never reads them as evidence of anything, a program may write none, and a
write that fails (the directory is gone) is ignored.

Prover side: :func:`reporting_to` (around one request) and :func:`stage` (at each stage).
Trainer side: :func:`read_stages`.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

STAGES = {"witness": "witness", "keys": "key setup or load", "prove": "prove", "verify": "verify"}
"""Stage name -> how the terminal shows it."""

_SINK: ContextVar[Path | None] = ContextVar("pot_zk_stage_sink", default=None)


@dataclass(frozen=True)
class StageLine:
    stage: str
    at: float

    @property
    def shown(self) -> str:
        return STAGES.get(self.stage, self.stage)


@contextmanager
def reporting_to(path: str | None) -> Iterator[None]:
    """Send the :func:`stage` calls made inside the block to ``path`` (None: nowhere)."""
    token = _SINK.set(Path(path) if path else None)
    try:
        yield
    finally:
        _SINK.reset(token)


def stage(name: str) -> None:
    """Append the line of stage ``name`` (one of :data:`STAGES`) to the current request's file."""
    path = _SINK.get()
    if path is None:
        return
    try:
        with open(path, "a") as handle:
            handle.write(json.dumps({"stage": name, "at": time.time()}) + "\n")
    except OSError:
        return  # the trainer went away or removed its directory: nobody is looking


def read_stages(path: Path) -> list[StageLine]:
    """The complete, well-formed stage lines in ``path`` (none when it does not exist)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    lines = []
    for raw in text.splitlines(keepends=True):
        if not raw.endswith("\n"):
            break  # being written
        try:
            data = json.loads(raw)
            lines.append(StageLine(str(data["stage"]), float(data["at"])))
        except (ValueError, KeyError, TypeError):
            continue
    return lines
