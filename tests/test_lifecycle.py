"""The run lifecycle every front door takes: configure, open the audit trail, end it once with
the statistics; a run directory of any name reaches the config intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pot_zk.core.audit_verify import verify_audit
from pot_zk.core.console import attention
from pot_zk.exceptions import ConfigurationError, ProofGenerationError
from pot_zk.runs.lifecycle import RunLifecycle


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", ["plain", "it's", "back\\slash", "ends\\", "quote\\'d"])
def test_configure_gives_the_run_dir_verbatim(tmp_path, name):
    run_dir = tmp_path / name
    lifecycle = RunLifecycle.configure(["mode=disabled"], run_dir=run_dir)
    assert lifecycle.runtime.run_dir == run_dir
    assert lifecycle.runtime.plan.run_dir == run_dir
    assert lifecycle.runtime.config["run_dir"] == str(run_dir)


def test_bad_configuration_fails_before_any_file_is_written(tmp_path):
    with pytest.raises(ConfigurationError, match="train.epochs must be >= 1"):
        RunLifecycle.configure(["train.epochs=0"], run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_run_opens_with_its_event_and_ends_once_with_the_statistics(tmp_path):
    lifecycle = RunLifecycle.configure(["mode=development"], run_dir=tmp_path)
    lifecycle.open(tmp_path / "audit.jsonl", "run.start", stats_dir=tmp_path, command="test", answer=42)
    lifecycle.stats.record_result("proved")
    returned = lifecycle.end("completed", proved=1)
    assert lifecycle.end("aborted") == returned, "a second end changes nothing"
    events = _events(tmp_path / "audit.jsonl")
    assert [e["event"] for e in events] == ["run.start", "run.end"]
    assert events[0]["answer"] == 42 and events[0]["command"] == "test" and events[0]["mode"] == "development"
    assert events[1]["status"] == "completed" and events[1]["proved"] == 1 and events[1]["stats"] == returned
    assert json.loads((tmp_path / "stats.json").read_text())["results"] == {"proved": 1}
    assert (tmp_path / "metrics.prom").is_file()
    assert verify_audit(tmp_path / "audit.jsonl").closed


def _end_with_stats_json_unwritable(tmp_path: Path, monkeypatch, status: str) -> list[dict]:
    """A run ended with ``status`` while writing stats.json fails with ENOSPC; its audit records."""
    import errno

    from pot_zk.core import atomic

    real = atomic.write_bytes_atomic

    def full_at_stats(path, data):
        if Path(path).name == "stats.json":
            raise atomic.StorageError(path, OSError(errno.ENOSPC, "No space left on device"))
        return real(path, data)

    monkeypatch.setattr(atomic, "write_bytes_atomic", full_at_stats)
    lifecycle = RunLifecycle.configure(["mode=development"], run_dir=tmp_path)
    lifecycle.open(tmp_path / "audit.jsonl", "run.start", stats_dir=tmp_path, command="test")
    lifecycle.end(status)
    return _events(tmp_path / "audit.jsonl")


def test_a_full_disk_at_the_statistics_files_does_not_fail_a_run_that_ended(tmp_path, monkeypatch):
    """A review: ENOSPC writing stats.json, after the run had ended, failed the command (exit 2)
    and advised a resume that refuses a completed run. The run ends completed, a warning record
    says which files are missing."""
    events = _end_with_stats_json_unwritable(tmp_path, monkeypatch, "completed")
    assert [e["event"] for e in events] == ["run.start", "run.stats_not_written", "run.end"]
    assert events[1]["error"]["message"].startswith(f"cannot write {tmp_path / 'stats.json'}: OSError: [Errno 28]")
    assert events[2]["status"] == "completed" and verify_audit(tmp_path / "audit.jsonl").closed
    assert attention(events[1])[1].endswith("; the run itself is complete")


def test_statistics_files_unwritten_at_a_halted_end_do_not_say_the_run_is_complete(tmp_path, monkeypatch):
    """review32: a full disk halted a run, and the terminal said "the run itself is complete"."""
    warning = _end_with_stats_json_unwritable(tmp_path, monkeypatch, "halted")[1]
    level, text = attention(warning)
    assert level == "warning" and text.endswith("; the run's end is still recorded (status halted)") and "complete" not in text


@pytest.mark.parametrize(("error", "status"), [(ProofGenerationError("no proof"), "halted"), (KeyError("bug"), "aborted")])
def test_leaving_on_an_exception_ends_the_run_with_its_status(tmp_path, error, status):
    with pytest.raises(type(error)):
        with RunLifecycle.configure(run_dir=tmp_path) as lifecycle:
            lifecycle.open(tmp_path / "audit.jsonl", "run.start")
            raise error
    assert _events(tmp_path / "audit.jsonl")[-1]["status"] == status
    assert not (tmp_path / "stats.json").exists(), "no stats_dir, no statistics files"


def test_open_drops_a_record_cut_short_and_says_how_much(tmp_path):
    audit = tmp_path / "audit.jsonl"
    with RunLifecycle.configure(run_dir=tmp_path) as first:
        first.open(audit, "run.start")
    audit.write_bytes(audit.read_bytes() + b'{"event": "cut')
    second = RunLifecycle.configure(run_dir=tmp_path)
    second.open(audit, "run.resume")
    second.end("completed")
    assert second.discarded == b'{"event": "cut'
    assert verify_audit(audit).ok
    assert [e["event"] for e in _events(audit)] == ["run.start", "run.end", "run.resume", "run.end"]


def test_the_pipeline_needs_an_open_run(tmp_path):
    with pytest.raises(RuntimeError, match="open"):
        RunLifecycle.configure(run_dir=tmp_path).pipeline()
