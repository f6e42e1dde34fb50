"""What a person sees of the audit trail on the terminal.

By default only the records that need attention are shown, one short line each: warnings (a
failed prover attempt, a strategy that gave up, a fallback, a parked job, a prover program's
note on how it proved, once per note) and errors (a step
left without its proof, a halted or aborted run). With ``records`` (``console.records=true``
or ``pot-zk train -v``) every record is rendered for people, as structlog's console renderer
does, except the commitments of unproven steps (one per training step: too many for a
console). Either way the audit file receives every record, whole; this view never changes a
record.

A library call never prints: the lines go to the standard logger ``pot_zk.console`` (warnings,
errors; the rendered records at INFO), which has no handler of its own, so they show where the
application's logging configuration sends them. The ``pot-zk`` command puts them on the
terminal (:func:`terminal_console`): through ``tqdm.write``, which lifts the progress bars drawn
on the same stream while it prints, so a record never breaks a bar into pieces. A view given
its own ``stream`` writes there instead (the same lines). :class:`BarTicker` redraws a bar's
postfix ten times a second (tqdm's own redraw rate), so the bar shows what is going on while
the loop waits (a proof in progress: its stage and the ETA).
"""

from __future__ import annotations

import logging
import sys
import threading
from contextlib import contextmanager
from typing import IO, Any, Callable, Iterator

import structlog
from tqdm import tqdm

LOGGER = logging.getLogger("pot_zk.console")
LOGGER.addHandler(logging.NullHandler())
LEVELS = {"warning": logging.WARNING, "error": logging.ERROR}

MESSAGE_LIMIT = 160


def attention(event_dict: dict[str, Any]) -> tuple[str, str] | None:
    """``(level, text)`` of a record that needs attention, None for one that does not."""
    event = event_dict.get("event")
    step = event_dict.get("step")
    where = f"step {step}: " if step is not None else ""
    error = event_dict.get("error") if isinstance(event_dict.get("error"), dict) else {}
    reason = _reason(error)
    if event == "attempt" and event_dict.get("outcome") == "failed":
        return "warning", f"{where}{event_dict.get('strategy')} attempt {event_dict.get('attempt')} failed: {reason}"
    if event == "attempt" and event_dict.get("notes"):  # the prover program's notes on a proof (no key holder, say): each shown once per view
        return "warning", "\n".join(f"{event_dict.get('strategy')}: {printable(note)}" for note in event_dict["notes"])
    if event == "strategy.failed":
        return "warning", f"{where}{event_dict.get('strategy')} gave up after {event_dict.get('attempts')} attempt(s): {reason}"
    if event == "fallback":
        return "warning", f"{where}falling back from {event_dict.get('from_strategy')} to {event_dict.get('to_strategy')}"
    if event == "parked":
        return "warning", f"{where}proof parked in {event_dict.get('path')}; `pot-zk prove-pending` retries it"
    if event == "proof.result" and event_dict.get("status") == "failed":
        return "error", f"{where}no proof (the step stays commitment-only): {reason}"
    if event in ("halt", "run.halted"):
        return "error", f"{where}run halted: {reason}"
    if event == "run.aborted":
        return "error", f"run aborted: {reason}"
    if event == "run.stats_not_written":
        status = event_dict.get("run_status")  # review32: "complete" was said of halted runs too
        said = "the run itself is complete" if status == "completed" else f"the run's end is still recorded (status {status})"
        return "warning", f"the run's statistics files (stats.json, metrics.prom) were not written: {reason}; {said}"
    if event == "run.lock_taken_over":
        holder = event_dict.get("previous_holder") or {}
        return "warning", (f"the previous holder of this run, pid {holder.get('pid')} on host {holder.get('host')} "
                           f"({holder.get('command')}), no longer holds the lock (it ended without removing its record); the lock is taken over")
    return None


def printable(text: str) -> str:
    """``text`` on one line without control characters (review56: a prover program's note or
    error message with a newline forged a "pot-zk error:" line, an escape sequence cleared the
    terminal): whitespace runs become one space, other control characters are dropped."""
    return "".join(c for c in " ".join(str(text).split()) if c.isprintable())


def _reason(error: dict[str, Any]) -> str:
    if not error:
        return "see the audit file"
    message = printable(str(error.get("message", "")))
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "..."
    return f"{error.get('error_class', 'error')}: {message}"


class ConsoleView:
    """structlog processor (before the hash chain): shows records as the module docstring says,
    on ``stream`` or (None) through :data:`LOGGER`, and returns the record unchanged."""

    def __init__(self, stream: IO[str] | None = None, *, records: bool = False) -> None:
        self._render = structlog.dev.ConsoleRenderer(colors=False)
        self._stream = stream
        self._records = records
        self._noted: set[str] = set()

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if self._records:
            if event_dict.get("event") != "commitment" or event_dict.get("scheduled"):
                shown = {key: _brief(value) for key, value in event_dict.items()}
                self._show(logging.INFO, self._render(logger, method_name, shown))
            return event_dict
        notable = attention(event_dict)
        if notable is not None:
            level, text = notable
            if event_dict.get("outcome") == "ok":  # notes: every proof of the run may carry them; each is shown once
                for line in text.split("\n"):
                    if line not in self._noted:
                        self._noted.add(line)
                        self._show(LEVELS[level], line)
                return event_dict
            self._show(LEVELS[level], text)
        return event_dict

    def _show(self, level: int, text: str) -> None:
        if self._stream is None:
            LOGGER.log(level, text)
            return
        tqdm.write(terminal_line(level, text), file=self._stream)
        self._stream.flush()


def terminal_line(level: int, text: str) -> str:
    """``pot-zk warning: ...`` / ``pot-zk error: ...``; a rendered record (INFO) as it is."""
    return text if level < logging.WARNING else f"pot-zk {logging.getLevelName(level).lower()}: {text}"


class TerminalHandler(logging.Handler):
    """Writes :data:`LOGGER`'s lines to the current ``sys.stderr`` with ``tqdm.write``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(terminal_line(record.levelno, record.getMessage()), file=sys.stderr)
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


@contextmanager
def terminal_console() -> Iterator[None]:
    """Within the block, :data:`LOGGER`'s lines go to the terminal (stderr), and only there:
    what the ``pot-zk`` command shows. The logger is as it was afterwards."""
    handler = TerminalHandler(logging.INFO)
    level, propagate = LOGGER.level, LOGGER.propagate
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)
        LOGGER.propagate = propagate


def _brief(value: Any, limit: int = 100) -> Any:
    """Console copy only: long values (configs, manifests, responses) are elided; the file
    keeps them whole."""
    text = repr(value)
    return value if len(text) <= limit else f"{text[:limit]}... (full record in the audit file)"


LOG_INTERVAL_S = 30.0
"""How often a progress bar is redrawn when stderr is not a terminal (a log file, a CI job's
output): each redraw there is a line of its own, not one overwritten in place."""


def _on_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress_bar(*, disable: bool, **options: Any) -> tqdm:
    """A tqdm bar on stderr, redrawn as it moves in a terminal and at most every
    :data:`LOG_INTERVAL_S` into a log (it redrew 10 times a second there too)."""
    interval = 0.1 if _on_terminal(sys.stderr) else LOG_INTERVAL_S
    return tqdm(file=sys.stderr, disable=disable, mininterval=interval, maxinterval=max(10.0, interval), **options)


TICKER_JOIN_S = 2.0
"""How long leaving a :class:`BarTicker` waits for its thread: a redraw in the main thread that a
Ctrl-C interrupted leaves tqdm's (re-entrant) lock held by the main thread, the ticker waits on
it for ever, and waiting for the ticker hung ``pot-zk train`` (review44)."""


class BarTicker:
    """While the ``with`` block runs, a daemon thread sets ``bar``'s postfix to ``text()`` every
    ``interval_s`` (by default 0.1 s on a terminal, :data:`LOG_INTERVAL_S` into a log; and once
    more on leaving). Nothing runs for a disabled bar."""

    def __init__(self, bar: tqdm, text: Callable[[], str], interval_s: float | None = None) -> None:
        self._bar = bar
        self._text = text
        self._interval_s = interval_s if interval_s is not None else (0.1 if _on_terminal(getattr(bar, "fp", None)) else LOG_INTERVAL_S)  # a disabled bar has none
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pot-zk-bar", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._bar.set_postfix_str(self._text())

    def __enter__(self) -> "BarTicker":
        if not self._bar.disable:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=TICKER_JOIN_S)
            self._bar.set_postfix_str(self._text())
