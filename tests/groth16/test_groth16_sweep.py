"""A `pot-zk train --multirun` sweep of zk-groth16 runs with one job that fails: the sweep warns
that run_dir= is not used, and `pot-zk sweep-report` puts the swept setting on an axis,
overlays the jobs' curves and lists the failed job with its error."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

from pot_zk.cli.main import main
from pot_zk.report.sweep import gather
from pot_zk.report.sweep_plots import curves_figure, setting_figure

from terminal_support import POT_ZK

RATE = "train.learning_rate"
REFUSED = "ConfigurationError: train.learning_rate must be > 0, got -1"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """Three jobs of the tiny model, 4 steps each, steps 0 and 2 proven: learning rates 0.05 and
    0.1 train, -1 is refused before anything runs. ``run_dir=`` given too, as a user might."""
    root = tmp_path_factory.mktemp("sweep")
    process = subprocess.run(
        [str(POT_ZK), "train", "--multirun", "prover=groth16", "model=tiny_mlp", "model.loss=mse", "data=synthetic",
         "train.batch_size=2", "train.max_steps=4", "policy=every_k", "policy.k=2", "train.progress=false", f"{RATE}=0.05,0.1,-1",
         f"hydra.sweep.dir={root / 'sweep'}", f"run_dir={root / 'not-used'}", f"cache_dir={root / 'cache'}"],
        cwd=root, capture_output=True, text=True, timeout=600,
    )
    return root, process


def test_multirun_with_run_dir_says_it_is_not_used_and_names_hydra_sweep_dir(sweep):
    root, process = sweep
    assert f"pot-zk: run_dir={root / 'not-used'} is not used under --multirun" in process.stderr
    assert f"hydra.sweep.dir ({root / 'sweep'})" in process.stderr and "pass hydra.sweep.dir=DIR instead" in process.stderr
    assert not (root / "not-used").exists()


def test_a_failed_job_is_one_line_and_the_sweep_exits_1_after_its_other_jobs(sweep):
    """A review: a refused job printed Hydra's traceback of the error."""
    root, process = sweep
    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    failed = [line for line in process.stderr.splitlines() if line.startswith("pot-zk train: ")]
    assert failed == [
        f"pot-zk train: job 2 (prover=groth16 model=tiny_mlp model.loss=mse data=synthetic train.batch_size=2 train.max_steps=4 "
        f"policy=every_k policy.k=2 train.progress=False {RATE}=-1 run_dir={root / 'not-used'} cache_dir={root / 'cache'}): "
        "train.learning_rate must be > 0, got -1",
        "pot-zk train: 1 job(s) of the sweep failed (above); pot-zk sweep-report lists every job",
    ]
    assert (root / "sweep" / "1" / "model_final.safetensors").is_file()


def test_sweep_report_lists_the_failed_job_with_its_error(sweep, capsys):
    root, _ = sweep
    out = root / "report"
    assert main(["sweep-report", str(root / "sweep"), "--out", str(out)]) == 0
    with open(out / "sweep.csv", newline="") as handle:
        rows = [{k: row[k] for k in ("job", RATE, "status", "steps", "proved", "error")} for row in csv.DictReader(handle)]
    assert rows == [
        {"job": "0", RATE: "0.05", "status": "completed", "steps": "4", "proved": "2", "error": ""},
        {"job": "1", RATE: "0.1", "status": "completed", "steps": "4", "proved": "2", "error": ""},
        {"job": "2", RATE: "-1", "status": "failed", "steps": "", "proved": "", "error": REFUSED},
    ]
    markdown = (out / "sweep.md").read_text()
    assert "3 jobs, 1 of them did not complete." in markdown
    assert f"## Failed jobs\n\n- `2` ({RATE}=-1): {REFUSED}\n" in markdown
    assert "## Failed jobs" in capsys.readouterr().out
    for name in ("setting_train.learning_rate.png", "curves.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG") and f"![{name}]({name})" in markdown


def test_the_swept_setting_is_the_x_axis_of_the_final_scores_and_the_curves_are_overlaid(sweep):
    root, _ = sweep
    table = gather(root / "sweep")
    done = [job for job in table.jobs if job.error is None]
    figure = setting_figure(table, RATE)
    (loss_axes,) = figure.axes  # synthetic data: no accuracy row
    assert loss_axes.get_xlabel() == RATE
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in loss_axes.lines}
    assert lines == {
        "training loss, last step": ([0.05, 0.1], [job.values["loss_final"] for job in done]),
        "held-out loss": ([0.05, 0.1], [job.values["heldout_loss_final"] for job in done]),
    }
    assert "1 job(s) without these numbers not drawn" in loss_axes.get_title()

    loss_axes, score_axes = curves_figure(table).axes
    curves = {line.get_label(): list(line.get_xdata()) for line in loss_axes.lines}
    assert curves == {f"{RATE}=0.05": [0, 1, 2, 3], f"{RATE}=0.1": [0, 1, 2, 3]}
    assert {line.get_label(): list(line.get_xdata()) for line in score_axes.lines} == {f"{RATE}=0.05": [0, 4], f"{RATE}=0.1": [0, 4]}


def test_a_later_respond_session_changes_neither_a_jobs_wall_time_nor_its_status(sweep, tmp_path):
    """wall_s and status are the training's: a respond (or prove-pending) session an hour later,
    halted by its prover, ends a session of its own (its run.end marked with its command)."""
    import json
    import shutil

    from pot_zk.report.sweep import read_job

    root, _ = sweep
    before = read_job(root / "sweep" / "0", root / "sweep").values
    copy = tmp_path / "sweep"
    shutil.copytree(root / "sweep" / "0", copy / "0")
    audit = copy / "0" / "audit.jsonl"
    later = "2099-01-01T00:00:00Z"
    respond = [{"event": "challenge.start", "command": "respond", "ts": later},
               {"event": "run.end", "command": "respond", "status": "halted", "ts": later}]
    audit.write_text(audit.read_text() + "".join(json.dumps(e) + "\n" for e in respond))
    after = read_job(copy / "0", copy).values
    assert after["status"] == "completed" and 0 < after["wall_s"] == before["wall_s"] < 600
    assert after["proved_per_min"] == before["proved_per_min"]


@pytest.mark.parametrize("how", ["-v", "HYDRA_FULL_ERROR=1"])
def test_a_traceback_asked_for_is_added_and_the_sweep_still_runs_its_other_jobs(tmp_path, how):
    """-v or HYDRA_FULL_ERROR=1 is to add the refused job's traceback. HYDRA_FULL_ERROR=1 stopped
    the sweep at that job instead (exit 2, the jobs after it never ran)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"} if how.startswith("HYDRA") else None
    process = subprocess.run(
        [str(POT_ZK), "train", "--multirun", *(["-v"] if how == "-v" else []), "model=tiny_mlp", "data=synthetic", "mode=disabled",
         "train.batch_size=2", "train.max_steps=2", "train.progress=false", f"{RATE}=-1,0.05",
         f"hydra.sweep.dir={tmp_path / 'sweep'}", f"cache_dir={tmp_path / 'cache'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )
    assert process.returncode == 1, process.stderr
    assert "Traceback (most recent call last):" in process.stderr and REFUSED in process.stderr
    assert "pot-zk train: 1 job(s) of the sweep failed (above); pot-zk sweep-report lists every job" in process.stderr
    assert (tmp_path / "sweep" / "1" / "model_final.safetensors").is_file(), "the job after the refused one ran"
