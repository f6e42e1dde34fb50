"""`pot-zk resume` continues the run its manifest and committed steps declare, never another:
it refuses a completed run, a config.yaml edited after the run started (learning rate,
max_steps, handler) and a checkpoint that skips committed steps or holds other weights --
each before anything is written (issue 22)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pot_zk.cli.main import main
from pot_zk.config import compose_config
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import load_model, save_model
from pot_zk.runs.train import train
from pot_zk.verify.run import verify_run

COMMON = ["mode=disabled", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.progress=false"]


def _run(directory: Path, steps: int) -> Path:
    assert train(compose_config([*COMMON, f"train.max_steps={steps}", f"run_dir={directory}"])).status == "completed"
    return directory


def _stopped(tmp_path: Path, checkpoint_steps: int = 2) -> Path:
    """A 4-step run as a kill after step 1 leaves it (records of steps 0-1, the trail cut before
    step 2, no final model), its checkpoint that of the same run after ``checkpoint_steps`` steps."""
    run = _run(tmp_path / "run", 4)
    other = _run(tmp_path / "other", checkpoint_steps)
    lines = (run / files.COMMITMENTS).read_text().splitlines()
    (run / files.COMMITMENTS).write_text("".join(line + "\n" for line in lines[:2]))
    audit = (run / files.AUDIT).read_text().splitlines()
    cut = next(i for i, line in enumerate(audit) if json.loads(line)["event"] == "commitment" and json.loads(line)["step"] == 2)
    (run / files.AUDIT).write_text("".join(line + "\n" for line in audit[:cut]))
    scores = [line for line in (run / files.EVALUATIONS).read_text().splitlines() if json.loads(line)["after_step"] == 0]
    (run / files.EVALUATIONS).write_text("".join(line + "\n" for line in scores))
    (run / files.FINAL_MODEL).unlink()
    state, metadata = load_model(other / files.CHECKPOINT)
    save_model(state, run / files.CHECKPOINT, metadata)
    return run


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


def test_a_stopped_run_resumes_and_verifies(tmp_path, capsys):
    run = _stopped(tmp_path)
    assert main(["resume", str(run)]) == 0
    assert "run completed: 4 steps trained, 2 of them by this command" in capsys.readouterr().out
    assert not verify_run(run, cache_dir=tmp_path / "cache").findings


def test_lines_a_kill_cut_short_are_dropped_at_resume_and_its_record_names_each_file_and_bytes(tmp_path, capsys):
    """review45: the run.resume record counted only the audit trail's cut, though resume drops a
    cut line from commitments.jsonl, proofs.jsonl and evaluations.jsonl too."""
    run = _stopped(tmp_path)
    with open(run / files.COMMITMENTS, "ab") as handle:
        handle.write(b'{"step": 2, "w_be')  # 17 bytes: a kill in the middle of the line's write
    with open(run / files.AUDIT, "ab") as handle:
        handle.write(b'{"event": "co')  # 13
    assert main(["resume", str(run)]) == 0
    [resumed] = [e for e in map(json.loads, (run / files.AUDIT).read_text().splitlines()) if e["event"] == "run.resume"]
    assert resumed["discarded_partial_records"] == {files.AUDIT: 13, files.COMMITMENTS: 17}
    assert resumed["discarded_partial_record_bytes"] == 30
    assert not verify_run(run, cache_dir=tmp_path / "cache").findings


def test_a_run_killed_before_its_run_start_record_gets_it_at_resume_and_verify_cross_checks_the_manifest(tmp_path, capsys):
    """Killed after the manifest, dataset and initial model were written but before the audit
    trail's first record: the resumed run writes run.start (marked at_resume) before run.resume,
    so verify has a record of the manifest to check manifest.json against (found by a review:
    the trail had none, and verify only noted it)."""
    run = _run(tmp_path / "run", 3)
    for name in (files.AUDIT, files.COMMITMENTS, files.EVALUATIONS, files.CHECKPOINT, files.FINAL_MODEL):
        (run / name).unlink()
    assert main(["resume", str(run)]) == 0
    assert "run completed: 3 steps trained" in capsys.readouterr().out
    events = [json.loads(line) for line in (run / files.AUDIT).read_text().splitlines()]
    assert [e["event"] for e in events[:2]] == ["run.start", "run.resume"]
    assert events[0]["at_resume"] is True and events[0]["manifest"] == json.loads((run / files.MANIFEST).read_text())
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert not report.findings and [n for n in report.notes if "run.start" in n] == [
        "the run.start record was written when the run was resumed (a kill had cut it off): it fixes the manifest from then on"
    ], report.notes
    manifest = json.loads((run / files.MANIFEST).read_text())
    manifest["training"]["max_steps"] = 2  # rewritten after the resume: the record written then catches it
    (run / files.MANIFEST).write_text(json.dumps(manifest))
    assert "manifest-mismatch" in {f.reason for f in verify_run(run, cache_dir=tmp_path / "cache").findings}


def test_a_completed_run_is_never_extended(tmp_path, capsys):
    """Before, config.yaml's max_steps raised from 4 to 8 and `pot-zk resume` trained 4 more
    steps onto the completed run."""
    run = _run(tmp_path / "run", 4)
    config = yaml.safe_load((run / files.CONFIG).read_text())
    config["train"]["max_steps"] = 8
    (run / files.CONFIG).write_text(yaml.safe_dump(config))
    before = _snapshot(run)
    config["train"]["progress"] = True
    (run / files.CONFIG).write_text(yaml.safe_dump(config))
    before = _snapshot(run)
    assert main(["resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "holds a completed run" in err and "training" not in err, err  # refused before the progress bar is drawn
    assert _snapshot(run) == before


def test_a_run_killed_while_it_closed_is_closed_by_resume(tmp_path, capsys):
    """Killed after the final model was written, before its score and run.end (the state a
    SIGKILL in TrainingSession.end leaves): resume refused it as completed and verify failed it
    for good (not-closed, missing-evaluation; found by a review). Resume now finishes the close."""
    run = _run(tmp_path / "run", 3)
    audit = (run / files.AUDIT).read_text().splitlines()
    cut = next(i for i, line in enumerate(audit) if json.loads(line)["event"] == "evaluation" and json.loads(line)["after_step"] == 3)
    (run / files.AUDIT).write_text("".join(line + "\n" for line in audit[:cut]))
    scores = [line for line in (run / files.EVALUATIONS).read_text().splitlines() if json.loads(line)["after_step"] < 3]
    (run / files.EVALUATIONS).write_text("".join(line + "\n" for line in scores))
    assert (run / files.FINAL_MODEL).is_file()
    assert {f.reason for f in verify_run(run, cache_dir=tmp_path / "cache").findings} >= {"not-closed", "missing-evaluation"}
    assert main(["resume", str(run)]) == 0
    assert "run completed" in capsys.readouterr().out
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert not report.findings, report.summary()
    assert main(["resume", str(run)]) == 2  # now completed: never extended


@pytest.mark.parametrize("key,value,differs", [
    ("train.learning_rate", 0.5, "circuit"),
    ("train.max_steps", 3, "training"),
    ("handler.name", "fail_fast", "handler"),
])
def test_an_edited_config_is_refused(tmp_path, capsys, key, value, differs):
    """Before, `pot-zk resume` trained on with the edited config.yaml: another learning rate,
    schedule or failure handler than the manifest declares."""
    run = _stopped(tmp_path)
    config = yaml.safe_load((run / files.CONFIG).read_text())
    group, name = key.split(".")
    config[group][name] = value
    (run / files.CONFIG).write_text(yaml.safe_dump(config))
    before = _snapshot(run)
    assert main(["resume", str(run)]) == 2
    error = capsys.readouterr().err
    assert "is not the run's" in error and differs in error, error
    assert _snapshot(run) == before


def test_a_checkpoint_that_skips_committed_steps_is_refused(tmp_path, capsys):
    """The checkpoint is the state after step 2 of the same run while only steps 0-1 are
    committed: before, the resumed run went on from step 3 and step 2 was never committed."""
    run = _stopped(tmp_path, checkpoint_steps=3)
    with open(run / files.COMMITMENTS, "ab") as handle:
        handle.write(b'{"step": 2, "w_be')  # and a line a kill cut short: the refusal leaves it too (review46: it was cut, unrecorded)
    before = _snapshot(run)
    assert main(["resume", str(run)]) == 2
    assert "would skip steps 2..2" in capsys.readouterr().err
    assert _snapshot(run) == before


def test_a_checkpoint_with_other_weights_is_refused(tmp_path, capsys):
    run = _stopped(tmp_path)
    state, metadata = load_model(run / files.CHECKPOINT)
    name = sorted(state)[0]
    state[name] = state[name] + 0.25
    save_model(state, run / files.CHECKPOINT, metadata)
    before = _snapshot(run)
    assert main(["resume", str(run)]) == 2
    assert "do not commit to W_t+1 of step 1" in capsys.readouterr().err
    assert _snapshot(run) == before


def test_a_lock_file_this_account_may_not_open_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    """(Found by a review: a lock file another account's export left in the run made `pot-zk
    resume` end in a PermissionError traceback.) The command names the file in one line, exit 2,
    and writes nothing. (As root the file system lets every open through: the lock's open is
    refused the way it is for another account.)"""
    from pot_zk.runs.lock import LOCK_FILE, RunLock

    run = _stopped(tmp_path)
    denied = str(run / LOCK_FILE)

    def refuse(self):
        raise PermissionError(13, "Permission denied", denied)

    monkeypatch.setattr(RunLock, "acquire", refuse)
    before = _snapshot(run)
    assert main(["resume", str(run)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"pot-zk resume: {denied}: permission denied"]
    assert _snapshot(run) == before


def test_a_declared_policy_that_selects_no_step_is_noted(tmp_path):
    """A review: a production run declaring policy=sample with fraction 0 had nothing to prove,
    and a proof of a step the trainer picked read as VERIFIED without a word."""
    run = tmp_path / "run"
    assert train(compose_config([*COMMON, "train.max_steps=3", "policy=sample", "policy.fraction=0.0", f"run_dir={run}"])).status == "completed"
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert report.ok and not report.selected_steps, report.summary()
    assert any(note.startswith("the declared policy selects no step: nothing had to be proven") for note in report.notes), report.notes
