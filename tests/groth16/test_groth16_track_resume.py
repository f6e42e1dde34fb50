"""A tracked run killed with SIGKILL mid-training (a real process, a real signal) is resumed by
track(..., resume=True) from its checkpoint, in another process, and the whole run verifies;
what cannot be resumed is refused in one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pot_zk.runs.bundle import RunBundle
from pot_zk.verify.run import verify_run

from groth16_support import stop_holders
from loop_support import run_pins

pytestmark = pytest.mark.prover

PROGRAM = Path(__file__).resolve().parents[1] / "programs" / "track_loop.py"


def _committed(run: Path) -> int:
    path = run / "commitments.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _loop(run: Path, cache: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(PROGRAM), str(run), str(cache), *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("options", [(), ("--cosine",)], ids=["constant-lr", "cosine-schedule"])
def test_a_killed_tracked_run_resumes_from_its_checkpoint_and_verifies(tmp_path, options):
    run, cache = tmp_path / "run", tmp_path / "cache"
    first = _loop(run, cache, "--sleep", "0.5", *options)
    deadline = time.monotonic() + 600
    while _committed(run) < 7 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert first.poll() is None, first.communicate()
    first.send_signal(signal.SIGKILL)
    first.wait()
    stopped_at = _committed(run)
    assert 7 <= stopped_at < 24
    second = _loop(run, cache, "--resume", *options)
    out, err = second.communicate(timeout=900)
    try:
        assert second.returncode == 0, err
        assert "run completed:" in out and _committed(run) == 24
    finally:
        stop_holders(cache, RunBundle.open(run).manifest()["circuit"])
    events = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    resumed = [e["from_step"] for e in events if e["event"] == "run.resume"]
    assert len(resumed) == 1 and resumed[0] in (stopped_at - 1, stopped_at)  # a kill between a step's record and its checkpoint retakes it
    report = verify_run(run, cache_dir=cache, **run_pins(run))
    assert report.ok, report.summary()
    assert report.coverage == {"zk-groth16": 5, "commitment-only": 19}

