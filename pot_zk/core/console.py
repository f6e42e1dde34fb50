"""What a person sees of the audit trail on the terminal.

By default only the records that need attention are shown, one short line each: warnings (a
failed prover attempt, a strategy that gave up, a fallback, a parked job) and errors (a step
left without its proof, a halted or aborted run). With ``records`` (``console.records=true``
or ``pot-zk train -v``) every record is rendered for people, as structlog's console renderer
does, except the commitments of unproven steps (one per training step: too many for a
console). Either way the audit file receives every record, whole; this view never changes a
record.

Lines go through ``tqdm.write``, which lifts the progress bars drawn on the same stream while
it prints, so a record never breaks a bar into pieces.
"""

from __future__ import annotations

from typing import IO, Any

import structlog
from tqdm import tqdm

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
    if event == "run.lock_taken_over":
        holder = event_dict.get("previous_holder") or {}
        return "warning", (f"the previous holder of this run, pid {holder.get('pid')} on host {holder.get('host')} "
                           f"({holder.get('command')}), is gone; its lock is taken over")
    return None


def _reason(error: dict[str, Any]) -> str:
    if not error:
        return "see the audit file"
    message = " ".join(str(error.get("message", "")).split())
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "..."
    return f"{error.get('error_class', 'error')}: {message}"


class ConsoleView:
    """structlog processor (before the hash chain): shows records on ``stream`` as the module
    docstring says and returns the record unchanged."""

    def __init__(self, stream: IO[str], *, records: bool = False) -> None:
        self._render = structlog.dev.ConsoleRenderer(colors=False)
        self._stream = stream
        self._records = records

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if self._records:
            if event_dict.get("event") != "commitment" or event_dict.get("scheduled"):
                shown = {key: _brief(value) for key, value in event_dict.items()}
                self._write(self._render(logger, method_name, shown))
            return event_dict
        notable = attention(event_dict)
        if notable is not None:
            level, text = notable
            self._write(f"pot-zk {level}: {text}")
        return event_dict

    def _write(self, line: str) -> None:
        tqdm.write(line, file=self._stream)
        self._stream.flush()


def _brief(value: Any, limit: int = 100) -> Any:
    """Console copy only: long values (configs, manifests, responses) are elided; the file
    keeps them whole."""
    text = repr(value)
    return value if len(text) <= limit else f"{text[:limit]}... (full record in the audit file)"
