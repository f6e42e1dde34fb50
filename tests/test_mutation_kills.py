"""Tests from a mutation review of the session-9 checks and refusals (branch review21,
mutations/README.md): each kills the mutation its docstring names (a check removed or weakened
with every other test still passing) and passes without it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from torch import nn

from pot_zk.exceptions import InvalidModelStateError, StepMismatchError
from pot_zk.kinds.mlp import architecture_of
from pot_zk.runs import bundle as files
from pot_zk.runs.track import track
from pot_zk.testing.bundle_edit import audit_records, jsonl, rewrite_audit, sync_audit, write_jsonl
from pot_zk.verify.run import verify_run

from test_resume_checks import _stopped
from test_track import OVERRIDES, _edited, _setup, _train
from test_verify_each_check import honest  # noqa: F401 -- that module's fixture (4 steps, a held-out set)


def _findings(report) -> set[tuple[str, str]]:
    return {(f.check, f.reason) for f in report.findings}


# --- verify (test_verify_each_check.py) ---

def test_a_score_repeated_in_evaluations_jsonl_alone_differs_from_the_audit_trail(honest, tmp_path):
    """Mutation V12: the audit comparison made on sets (a repeated identical score compared once)."""
    run = Path(shutil.copytree(honest, tmp_path / "run"))
    records = jsonl(run / files.EVALUATIONS)
    write_jsonl(run / files.EVALUATIONS, records + [dict(records[0])])  # the audit trail is not rewritten
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert {("evaluation", "audit-mismatch"), ("evaluation", "duplicate-score")} <= _findings(report), report.summary()


@pytest.mark.parametrize("declared_in", ["manifest.json", "dataset.json"])
def test_a_held_out_set_declared_in_one_file_beside_undeclared_data_fails(tmp_path, declared_in):
    """Mutations V4a / V4b: holdout-without-data tested only with both files declaring the set."""
    from pot_zk.data.datasets import holdout_indices

    model, optimizer, _data, loader = _setup()
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
        _train(run, model, optimizer, loader)
    indices = holdout_indices(64, 0.2, 3)
    declared = {"fraction": 0.2, "seed": 3, "of": 64, "samples": len(indices), "commitment": "0x01"}
    if declared_in == "manifest.json":
        _edited(tmp_path / "run", "manifest.json", lambda m: m["dataset"].update(holdout=declared))
    else:
        _edited(tmp_path / "run", "dataset.json", lambda d: d.update(holdout={**declared, "indices": indices}))
    sync_audit(tmp_path / "run")
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", accept_settings={"batch_order": "recorded", "data": "undeclared"})
    assert ("holdout", "holdout-without-data") in _findings(report), report.summary()


# --- user loops (test_track.py) ---

def test_a_second_batch_before_a_step_is_refused_naming_where_to_skip(tmp_path):
    """Mutations O4d (the hint) and O5 (the whole check: no test declared two batches)."""
    model, optimizer, data, loader = _setup()
    batches = list(loader)
    with pytest.raises(StepMismatchError, match=r"a batch is already declared .*a batch your loop skips must be skipped before run\.batch"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
            run.batch(*batches[0])
            run.batch(*batches[1])


# --- models (test_step.py) ---

@pytest.mark.parametrize("model, said", [
    (nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)), r"^unsupported layer sequence Linear, Tanh, Linear: the statement's MLP is Linear, ReLU"),
    (nn.Sequential(nn.Linear(4, 3, bias=False)), r"^layer 0 has no bias \(nn\.Linear\(bias=False\)\): the statement's layers have biases"),
])
def test_an_unsupported_model_is_refused_naming_what_it_found(model, said):
    """Mutations O4f, O4g: the hints of 1f512f9 (the layers found, bias=False) had no test."""
    with pytest.raises(InvalidModelStateError, match=said):
        architecture_of(model)


# --- pot-zk resume (test_resume_checks.py) ---

def test_a_stopped_run_with_a_later_prove_pending_session_still_resumes(tmp_path, capsys):
    """Mutation T4: check_resumable reading every completed run.end (prove-pending's own session
    ends completed) refused the stopped run as completed; track()'s twin is tested (f9700c3)."""
    from pot_zk.cli.main import main

    run = _stopped(tmp_path)
    events = audit_records(run)
    events += [{"event": "pending.start", "command": "prove-pending"}, {"event": "run.end", "status": "completed", "command": "prove-pending"}]
    rewrite_audit(run, events)
    assert main(["resume", str(run)]) == 0, capsys.readouterr()


# --- sweeps (tests/groth16/test_groth16_sweep.py) ---

def _refused_sweep(root: Path, *extra: str, env: dict | None = None):
    import os
    import subprocess

    from terminal_support import POT_ZK

    return subprocess.run(
        [str(POT_ZK), "train", "--multirun", "mode=disabled", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=2",
         "train.progress=false", "train.learning_rate=-1", f"hydra.sweep.dir={root / 'sweep'}", f"cache_dir={root / 'cache'}", *extra],
        cwd=root, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )


def test_a_failed_job_of_a_joblib_sweep_keeps_hydras_report_and_fails_the_sweep(tmp_path):
    """Mutation A4: the launcher check dropped, a joblib job's error was one line in its worker
    and the sweep exited 0."""
    process = _refused_sweep(tmp_path, "hydra/launcher=joblib")
    assert process.returncode == 1, process.stderr
    assert "job(s) of the sweep failed" not in process.stderr


def test_hydra_full_error_keeps_the_traceback_of_a_failed_sweep_job(tmp_path):
    """Mutation A5: HYDRA_FULL_ERROR=1 no longer gave the traceback it asks for."""
    process = _refused_sweep(tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert process.returncode != 0 and "Traceback" in process.stderr, process.stderr


def test_a_second_sweep_in_one_process_does_not_count_the_first_ones_failed_jobs(tmp_path, capsys):
    """Mutation A3: FAILED_JOBS not cleared: a clean sweep after a failed one (one process, as a
    notebook or a test calls main) exited 1."""
    from pot_zk.cli.main import main

    common = ["train", "--multirun", "mode=disabled", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=2",
              "train.progress=false", f"cache_dir={tmp_path / 'cache'}"]
    assert main([*common, "train.learning_rate=-1", f"hydra.sweep.dir={tmp_path / 'failed'}"]) == 1
    assert main([*common, "train.learning_rate=0.1", f"hydra.sweep.dir={tmp_path / 'clean'}"]) == 0, capsys.readouterr().err


# --- pot-zk challenge (test_challenge.py) ---

def test_cli_challenge_does_not_replace_a_dangling_symlink(tmp_path, capsys):
    """Mutation CH3: `or out.is_symlink()` dropped: --out naming a dangling link replaced the link."""
    from pot_zk.cli.main import main
    from test_challenge import _unproven_run

    run = _unproven_run(tmp_path / "run")
    link = tmp_path / "C.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    assert main(["challenge", str(run), "--count", "2", "--out", str(link), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "exists; name a new file for a challenge" in capsys.readouterr().err
    assert link.is_symlink() and not (tmp_path / "elsewhere.json").exists()


def test_a_line_break_in_a_failed_jobs_error_stays_in_its_sweep_md_item(tmp_path):
    """Mutation R2: the failed-jobs list of sweep.md printed the error as is (a line break in a
    job_error.json message started a line of its own; the table's cells are tested, not the list)."""
    import json

    from pot_zk.report.sweep import gather, render_markdown

    job = tmp_path / "sweep" / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- train.learning_rate=-1\n")
    (job / "job_error.json").write_text(json.dumps({"error_class": "ConfigurationError", "message": "first line\n# a heading", "overrides": []}))
    markdown = render_markdown(gather(tmp_path / "sweep"), tmp_path / "sweep", [])
    assert "# a heading" in markdown and not any(line.startswith("# a heading") for line in markdown.splitlines()), markdown


# --- pot-zk respond (test_interrupt.py) ---

def test_an_interrupt_as_respond_opens_its_session_still_ends_it(honest, tmp_path, monkeypatch):
    """Mutation RS3: lifecycle.open moved back before the try: a Ctrl-C just after challenge.start
    left the respond session without its run.end (the SIGTERM test signals later, mid-proof)."""
    from pot_zk.core.challenge import new_challenge
    from pot_zk.runs.bundle import RunBundle
    from pot_zk.runs.lifecycle import RunLifecycle
    from pot_zk.runs.respond import respond

    run = Path(shutil.copytree(honest, tmp_path / "run"))
    bundle = RunBundle.open(run)
    challenge = new_challenge(bundle.manifest(), bundle.commitments(), 4, "")
    opened = RunLifecycle.open

    def open_then_interrupted(self, *args, **kwargs):
        opened(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(RunLifecycle, "open", open_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        respond(run, challenge, ["retry=none"], sleep=lambda seconds: None)
    events = audit_records(run)
    assert [(e["event"], e.get("status"), e.get("command")) for e in events[-2:]] == [
        ("run.interrupted", None, "respond"), ("run.end", "interrupted", "respond"),
    ], events[-3:]
