"""What `pot-zk train prover=groth16` shows while it proves, captured in a pseudo-terminal: each
proof's stage as the prover program reports it, and an ETA once a proof has been measured.
prover=groth16 proves with the process executor, so training runs ahead of the proofs: the bar
counts the proofs scheduled so far and shows every proof in progress."""

from __future__ import annotations

import re
import subprocess

from terminal_support import POT_ZK, run_in_terminal

STAGE = r"(witness|key setup or load|prove|verify) \d+\.\d s"


def test_the_bar_shows_each_proofs_stage_and_an_eta_from_measured_proofs(tmp_path):
    # a fresh cache: the first proof sets its key up, as in a user's first run
    status, shown = run_in_terminal(
        [str(POT_ZK), "train", "prover=groth16", "model=tiny_mlp", "model.loss=mse", "data=synthetic", "train.batch_size=2",
         "train.max_steps=6", "policy=every_k", "policy.k=2", f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}"],
        cwd=tmp_path, columns=160,
    )
    assert status == 0, shown
    # the provers of steps 0 and 2 start side by side: whichever starts the key holder shows its key setup (CI saw step 2's)
    assert re.search(r"proofs 0/[1-3] done, (step 0: [^,\]]+, )?step [02]: key setup or load", shown), shown
    assert re.search(rf"proofs 0/[1-3] done, step 0: {STAGE}[,\]]", shown), shown
    assert not re.search(r"proofs 0/[1-3] done, ETA", shown), "no ETA before a proof was measured"
    assert re.search(r"proofs [12]/[23] done, ETA \d\d:\d\d; step [24]: ", shown), shown
    assert "proofs 3/3 done]" in shown
    assert "run completed: 6 steps trained" in shown


def test_into_a_log_the_bar_is_drawn_at_its_changes_of_stage_not_ten_times_a_second(tmp_path):
    """stderr not a terminal (a log file, a CI job): each redraw is a line of its own there, and
    the bar redrew every 0.1 s (hundreds of lines for a minute's run). Now at most every 30 s, so
    this run of a few seconds (a first key setup included) draws its start, end and summary."""
    done = subprocess.run(
        [str(POT_ZK), "train", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=6",
         f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    drawn = [line for line in re.split(r"[\r\n]", done.stderr) if re.match(r"(training|waiting for proofs):", line)]
    assert 2 <= len(drawn) <= 6, drawn
    assert "proofs 6/6 done]" in drawn[-1]
    assert "run completed: 6 steps trained" in done.stdout
