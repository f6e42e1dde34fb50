"""What a person sees in the terminal during `pot-zk train`, captured in a pseudo-terminal:
progress bars and the summary by default, every audit record with -v; the audit file is the
same either way."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from terminal_support import POT_ZK, run_in_terminal

pytestmark = pytest.mark.prover

RECORD_EVENTS = ("run.start", "commitment", "attempt", "proof.result", "run.end")
RECORD_LINE = re.compile(r"\]\s+(%s)\s" % "|".join(re.escape(event) for event in RECORD_EVENTS))
"""A record as the console renders it: ``... [info     ] commitment   step=0 ...`` (the summary's
"commitment head: ..." line is not one)."""


def readme_run(run: Path, cache: Path, *flags: str) -> tuple[int, str]:
    """The README's `pot-zk train run_dir=...` on the tiny model: 3 steps, steps 0 and 2 proven."""
    return run_in_terminal(
        [str(POT_ZK), "train", *flags, "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=3",
         "prover=ezkl", "policy=every_k", "policy.k=2", f"run_dir={run}", f"cache_dir={cache}"],
        cwd=run.parent,
    )


def audit_records(run: Path) -> list[tuple]:
    return [
        (e["event"], e.get("step"), e.get("attempt"), e.get("outcome"), e.get("status"), e.get("proof_type"))
        for e in map(json.loads, (run / "audit.jsonl").read_text().splitlines())
    ]


def test_the_terminal_shows_progress_and_summary_and_every_record_only_with_v(tmp_path, zk_cache):
    # a cache of its own: the circuit is calibrated and compiled in this run, as in a first
    # README run, where ezkl draws its own calibration bar on the process's fd 2
    status, calm = readme_run(tmp_path / "calm", tmp_path / "fresh-cache")
    assert status == 0, calm
    lines = [line for line in calm.replace("\r\n", "\n").split("\n") if line.strip()]
    assert "training:" in calm and "proofs 2/2 done" in calm
    assert "run completed: 3 steps trained, every step committed" in calm
    assert ("in short: 2 of 3 steps proven, 2 with zk-halo2 (zero-knowledge; dev keys: whoever made them could forge such proofs): "
            "steps 0, 2, each the declared update within 4 units of 2^-12 of its committed weights") in calm
    assert not [line for line in lines if RECORD_LINE.search(line)], calm
    assert not [line for line in lines if "[info" in line], calm
    assert "alibrat" not in calm, calm

    # verify derives the circuit again in a directory of its own: calibration again, off the console too
    status, checked = run_in_terminal([str(POT_ZK), "verify", str(tmp_path / "calm"), "--cache-dir", str(tmp_path / "fresh-cache")], cwd=tmp_path)
    assert status == 0, checked
    assert "result: VERIFIED" in checked
    assert "alibrat" not in checked, checked

    status, verbose = readme_run(tmp_path / "verbose", zk_cache, "-v")
    assert status == 0, verbose
    for event in ("run.start", "attempt", "proof.result", "run.end"):
        assert f" {event} " in verbose, event
    assert RECORD_LINE.search(verbose), "the pattern the calm run is checked with must match a rendered record"
    assert "run completed: 3 steps trained" in verbose

    assert audit_records(tmp_path / "calm") == audit_records(tmp_path / "verbose")
    assert [r[0] for r in audit_records(tmp_path / "calm")].count("commitment") == 3
