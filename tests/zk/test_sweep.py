"""Hydra multirun sweeps: the joblib launcher runs the jobs in parallel, each into its own
verifiable bundle; `pot-zk sweep-report` puts them in one table (CSV + markdown) with plots."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from pot_zk.cli.main import main
from pot_zk.verify.run import verify_run

from process_support import holder_pid, kill, tiny_run

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")

pytestmark = pytest.mark.prover

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory) -> tuple[Path, Path]:
    """`pot-zk train --multirun hydra/launcher=joblib policy.k=1,2` over 2 steps (zk-groth16):
    job 0 proves steps 0 and 1, job 1 proves step 0. (The sweep directory, the cache.)"""
    root = tmp_path_factory.mktemp("sweep")
    sweep, cache = root / "multirun", root / "cache"
    overrides = [o for o in tiny_run(root / "unused", cache, steps=2) if not o.startswith(("run_dir=", "policy.k="))]
    binary = Path(sys.executable).parent / "pot-zk"
    process = subprocess.run(
        [str(binary), "train", "--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "policy.k=1,2",
         f"hydra.sweep.dir={sweep}", *overrides],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )
    for run in sweep.glob("*/manifest.json"):
        kill(holder_pid(cache, run.parent))
    assert process.returncode == 0, process.stdout
    assert "Joblib.Parallel" in process.stdout, "the sweep must have run through the joblib launcher"
    return sweep, cache


def test_joblib_sweep_jobs_each_write_their_own_verifiable_bundle(joblib_sweep):
    joblib_sweep, cache = joblib_sweep
    runs = sorted(p.parent for p in joblib_sweep.glob("*/manifest.json"))
    assert [r.name for r in runs] == ["0", "1"]
    for run, k, proved in zip(runs, (1, 2), (2, 1)):
        assert json.loads((run / "manifest.json").read_text())["policy"]["k"] == k
        start = json.loads((run / "audit.jsonl").read_text().splitlines()[0])
        assert start["event"] == "run.start" and Path(start["run_dir"]) == run
        report = verify_run(run, cache_dir=cache)
        assert report.ok, report.summary()
        assert report.coverage.get("zk-groth16") == proved


def test_sweep_report_tabulates_every_job_with_its_setting_and_outcome(joblib_sweep, capsys):
    joblib_sweep, cache = joblib_sweep
    out = joblib_sweep / "report"
    assert main(["sweep-report", str(joblib_sweep), "--out", str(out), "--verify", "--cache-dir", str(cache)]) == 0
    with open(out / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    picked = [{k: row[k] for k in ("job", "policy.k", "status", "model", "steps", "selected", "proved", "failed", "verify")} for row in rows]
    assert picked == [
        {"job": "0", "policy.k": "1", "status": "completed", "model": "4-3-2", "steps": "2", "selected": "2", "proved": "2", "failed": "0", "verify": "passed"},
        {"job": "1", "policy.k": "2", "status": "completed", "model": "4-3-2", "steps": "2", "selected": "1", "proved": "1", "failed": "0", "verify": "passed"},
    ]
    for row in rows:
        assert float(row["prove_s_median"]) > 0 and float(row["proved_per_min"]) > 0
        assert float(row["heldout_loss_final"]) > 0 and row["accuracy_final"] == ""  # synthetic data: a regression set
    markdown = (out / "sweep.md").read_text()
    assert markdown.count("\n| 0 | 1 | completed |") == 1 and markdown.count("\n| 1 | 2 | completed |") == 1
    for name in ("prove_time.png", "success_by_mode.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, name
    assert "| job | policy.k |" in capsys.readouterr().out


def test_sweep_report_of_a_directory_without_runs_fails_clearly(tmp_path, capsys):
    assert main(["sweep-report", str(tmp_path)]) == 2
    assert "no run bundles" in capsys.readouterr().err


def test_slurm_launcher_config_selects_submitit_with_pot_zk_defaults():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="pot_zk.conf", version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=cpu"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.cpus_per_task, launcher.timeout_min) == ("cpu", 4, 240)
