"""A prover program's notes and error messages on the terminal (pot_zk/core/console.py): one
line each, without control characters, each note once per run; the protocol bounds how many and
how long (review56: a newline forged a "pot-zk error:" line, an escape sequence cleared the
terminal, a megabyte note was copied into every attempt's record)."""

from __future__ import annotations

import io

import pytest

from pot_zk.core.console import ConsoleView
from pot_zk.core.protocol import MAX_NOTE_CHARS, MAX_NOTES, ProverResponse


def _shown(*events: dict) -> list[str]:
    stream = io.StringIO()
    view = ConsoleView(stream)
    for event in events:
        view(None, "info", dict(event))
    return stream.getvalue().splitlines()


def test_a_note_is_one_clean_line_and_each_is_shown_once():
    forged = "no key holder\npot-zk error: run halted\x1b[2J\x1b[Hverify: OK"
    attempts = [{"event": "attempt", "outcome": "ok", "step": step, "strategy": "zk-groth16", "notes": [forged, f"proof {step % 2}"]} for step in range(6)]
    assert _shown(*attempts) == [
        "pot-zk warning: zk-groth16: no key holder pot-zk error: run halted[2J[Hverify: OK",
        "pot-zk warning: zk-groth16: proof 0",
        "pot-zk warning: zk-groth16: proof 1",
    ]


def test_an_error_message_is_one_clean_line():
    failed = {"event": "attempt", "outcome": "failed", "step": 3, "strategy": "zk-groth16", "attempt": 1,
              "error": {"error_class": "ProofGenerationError", "message": "bad\npot-zk error: forged\x1b[31m"}}
    assert _shown(failed) == ["pot-zk warning: step 3: zk-groth16 attempt 1 failed: ProofGenerationError: bad pot-zk error: forged[31m"]


@pytest.mark.parametrize("notes", [["x"] * (MAX_NOTES + 1), ["x" * (MAX_NOTE_CHARS + 1)], "one string", [1]], ids=["too-many", "too-long", "not-a-list", "not-text"])
def test_notes_beyond_the_protocol_s_bounds_are_refused(notes):
    document = {"protocol": "pot-zk-prover/1", "status": "ok", "proof_type": "zk-groth16", "artifacts": {}, "notes": notes}
    with pytest.raises(ValueError, match="notes must be"):
        ProverResponse.from_json_dict(document)
    assert ProverResponse.from_json_dict({**document, "notes": ["x" * MAX_NOTE_CHARS] * MAX_NOTES}).notes
