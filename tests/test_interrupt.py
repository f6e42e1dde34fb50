"""Ctrl-C and SIGTERM (pot_zk/cli/interrupt.py, pot_zk/core/prover_processes.py) with real
processes and real signals: no prover survives its run (a zk-groth16 prover program and its key
holder; a prover of the ezkl backend with a child of its own), the terminal shows one line
saying how to continue, the audit trail records the interruption, the run resumes and verifies;
a second Ctrl-C ends the command at once, even in the middle of a key setup; `pot-zk resume` of
a run made by a user loop says why not in one line."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from pot_zk.hooks import proven_training

from process_support import (
    alive,
    audit_events,
    children,
    command_line,
    holder_pid,
    kill,
    listing,
    run,
    start,
    stderr_lines,
    tiny_run,
    wait_for,
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("groth16-cache")


def _gone(*pids: int) -> bool:
    return not any(alive(pid) for pid in pids)


def _proving(trainer: int, cache: Path, run_dir: Path) -> tuple[int, int] | None:
    """(a groth16 prover program of ``trainer``, the key holder serving the run), while both run."""
    holder = holder_pid(cache, run_dir) if (run_dir / "manifest.json").is_file() else None
    if holder is None or not alive(holder):
        return None
    prover = next((c for c in children(trainer) if "groth16-prover" in command_line(c)), None)
    return None if prover is None else (prover, holder)


def _interrupted(run_dir: Path, signal_name: str) -> dict:
    events = audit_events(run_dir)
    [interrupted] = [e for e in events if e["event"] == "run.interrupted"]
    assert interrupted["signal"] == signal_name
    assert events[-1]["event"] == "run.end" and events[-1]["status"] == "interrupted"
    return interrupted


def test_ctrl_c_during_a_groth16_proof_kills_prover_and_key_holder_and_the_run_resumes_and_verifies(tmp_path, cache):
    run_dir = tmp_path / "run"
    trainer = start("train", *tiny_run(run_dir, cache, steps=8, k=1), cwd=tmp_path)
    try:
        # two prover programs may run at once (one per core), and the key holder outlives the one that started it:
        # it is found by the pid file it serves the run's circuit under
        prover, holder = wait_for(lambda: _proving(trainer.pid, cache, run_dir), "a prover program and the run's key holder", timeout=120)
        os.killpg(trainer.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the trainer's group, not the provers' sessions
        out, err = trainer.communicate(timeout=120)
        at_exit = listing(run_dir / "proofs") if (run_dir / "proofs").exists() else {}  # review44: taken once the holder was gone, it missed its late write
    finally:
        kill(trainer.pid)
    assert trainer.returncode == 130, err
    wait_for(lambda: _gone(prover, holder), "the prover and its key holder to be gone", timeout=10)
    steps = _interrupted(run_dir, "SIGINT")["steps"]
    assert stderr_lines(err) == [f"interrupted at step {steps} of 8; continue with: pot-zk resume run"]
    assert (listing(run_dir / "proofs") if (run_dir / "proofs").exists() else {}) == at_exit, "a proof was written after the interruption"

    resumed = run("resume", "run", cwd=tmp_path)
    kill(holder_pid(cache, run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert f"run completed: 8 steps trained, {8 - steps} of them by this command, every step committed" in resumed.stdout, resumed.stdout
    head = re.search(r"^commitment head: ([0-9a-f]{64})", resumed.stdout, re.MULTILINE).group(1)
    verified = run("verify", "run", "--cache-dir", str(cache), "--expect-head", head, cwd=tmp_path)
    assert verified.returncode == 0 and "result: VERIFIED" in verified.stdout, verified.stdout


def test_sigterm_kills_an_ezkl_prover_with_its_child_and_records_the_interruption(tmp_path, tmp_path_factory, make_prover):
    child_file = tmp_path / "child.pid"
    program = make_prover("hang-with-child", str(child_file), name="sleeping-ezkl-prover")
    run_dir = tmp_path / "run"
    trainer = start(
        "train", "prover=ezkl", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=4", f"run_dir={run_dir}",
        f"cache_dir={tmp_path_factory.getbasetemp() / 'ezkl-cache'}", "train.progress=false", f"prover.binary={program}", cwd=tmp_path,
    )
    try:
        child = wait_for(lambda: child_file.is_file() and child_file.read_text().strip() and int(child_file.read_text()), "the prover's child")
        [prover] = [c for c in children(trainer.pid) if "sleeping-ezkl-prover" in command_line(c)]
        trainer.send_signal(signal.SIGTERM)  # to the trainer alone, as `kill` or a job scheduler would
        out, err = trainer.communicate(timeout=120)
    finally:
        kill(trainer.pid)
    assert trainer.returncode == 130, err
    wait_for(lambda: _gone(prover, child), "the prover and its child to be gone", timeout=10)
    assert _interrupted(run_dir, "SIGTERM")["steps"] == 1  # step 0 trained and committed, its proof cut short
    assert stderr_lines(err) == ["interrupted at step 1 of 4; continue with: pot-zk resume run"]
    assert not (run_dir / "proofs.jsonl").exists()  # the interrupted proof has no outcome: resume proves it


def test_a_second_ctrl_c_exits_at_once_even_during_a_key_setup(tmp_path):
    """The setup of the digits MSE circuit (46,031 constraints) runs in native code for ~10-30 s,
    part of it holding the interpreter lock: neither Python's handler nor a Python thread runs then."""
    cache = tmp_path / "cache"
    trainer = start(
        "train", "prover=groth16", "model.loss=mse", "train.learning_rate=0.05", "train.max_steps=2", f"run_dir={tmp_path / 'run'}",
        f"cache_dir={cache}", "train.progress=false", cwd=tmp_path,
    )
    try:
        wait_for(lambda: list(cache.glob("groth16/.*/circuit.circom")), "the key setup to start")
        time.sleep(1)
        os.killpg(trainer.pid, signal.SIGINT)
        time.sleep(0.5)
        os.killpg(trainer.pid, signal.SIGINT)
        second = time.monotonic()
        out, err = trainer.communicate(timeout=120)
        exited_after = time.monotonic() - second
    finally:
        kill(trainer.pid)
    assert trainer.returncode == -signal.SIGINT, err  # killed by the second SIGINT: a shell shows 130
    assert exited_after < 3, f"exited {exited_after:.1f} s after the second Ctrl-C"
    assert not list(cache.glob("groth16/[!.]*")), "the setup finished before the test could interrupt it"


def test_resume_of_a_run_made_by_a_user_loop_is_one_line(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    batches = [(torch.rand(2, 4), torch.rand(2, 2))]
    with proven_training(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, run_dir=tmp_path / "mine", overrides=["mode=disabled"]) as loop:
        loop.step(*batches[0])
    resumed = run("resume", "mine", cwd=tmp_path)
    assert resumed.returncode == 2
    assert stderr_lines(resumed.stderr) == [
        "pot-zk resume: mine was trained by a user loop (batch_order='recorded'): its steps follow your loop, which `pot-zk resume` "
        "cannot replay: it continues runs of `pot-zk train` only"
    ]


def test_the_interrupted_line_imports_nothing_so_a_ctrl_c_during_torchs_import_exits_130():
    """A review: Ctrl-C in the first seconds of a command (torch half imported) printed an
    unrelated traceback or crashed: the line for the interruption imported pot_zk.runs.train, and
    with it torch, again. It now imports nothing."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pot_zk.cli.main import interrupted_line\n"
        "print(interrupted_line('verify', KeyboardInterrupt()))\n"
        "print(sorted(name for name in ('torch', 'pot_zk.runs.train') if name in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["pot-zk verify: interrupted", "[]"]


def test_sigterm_during_respond_records_the_interruption_and_the_run_still_verifies(tmp_path, tmp_path_factory, make_prover):
    """A review: an interrupted `pot-zk respond` ended its session `aborted` with no
    run.interrupted (and none at all when the signal came just after challenge.start)."""
    run_dir, cache = tmp_path / "run", tmp_path_factory.getbasetemp() / "ezkl-cache"
    trained = run(
        "train", "prover=ezkl", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=4", "policy=every_k", "policy.k=2",
        "handler=fallback", "retry=none", "prover.binary=/bin/false", "train.progress=false", f"run_dir={run_dir}", f"cache_dir={cache}", cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    challenged = run("challenge", "run", "--count", "4", "--nonce", "00", "--out", "C.json", "--cache-dir", str(tmp_path / "auditor"), cwd=tmp_path)
    assert challenged.returncode == 0, challenged.stderr
    child_file = tmp_path / "child.pid"
    program = make_prover("hang-with-child", str(child_file), name="sleeping-ezkl-prover")
    responder = start("respond", "run", "C.json", f"prover.binary={program}", "retry=none", "handler.name=fail_fast", cwd=tmp_path)
    try:
        wait_for(lambda: child_file.is_file() and child_file.read_text().strip(), "the prover's child")
        responder.send_signal(signal.SIGTERM)
        _, err = responder.communicate(timeout=120)
    finally:
        kill(responder.pid)
    assert responder.returncode == 130, err
    events = audit_events(run_dir)
    assert [(e["event"], e.get("status"), e.get("command")) for e in events[-2:]] == [
        ("run.interrupted", None, "respond"), ("run.end", "interrupted", "respond"),
    ]
    verified = run("verify", "run", "--cache-dir", str(cache), cwd=tmp_path)
    assert verified.returncode == 0 and "result: VERIFIED" in verified.stdout, verified.stdout


def test_a_resume_interrupted_before_its_schedule_is_known_names_the_step_without_a_total(tmp_path, monkeypatch):
    """review32: a resume interrupted while it prepared its data said "step 45 of ?"."""
    from pot_zk.cli.main import interrupted_line
    from pot_zk.runs.train import RunInterrupted

    monkeypatch.chdir(tmp_path)
    line = interrupted_line("resume", RunInterrupted(tmp_path / "run", 45, None, "SIGINT", resumable=True))
    assert line == "interrupted at step 45; continue with: pot-zk resume run"


SIGINT_AS_STEP_2_IS_COMMITTED = (
    "from pot_zk.runs.bundle import RunBundle\n"
    "real = RunBundle.append_commitment\n"
    "def append(self, record):\n"
    "    real(self, record)\n"
    "    if record['step'] == 2: os.kill(os.getpid(), signal.SIGINT)\n"
    "RunBundle.append_commitment = append\n"
)
"""A patch for :func:`_train_signalling_itself`: a real SIGINT once step 2's commitment line is written."""


def _train_signalling_itself(tmp_path: Path, patch: str, *overrides: str, command: tuple[str, ...] = ()):
    """``pot-zk train`` (the CLI's main, its signal handling) of the tiny model without proofs, in
    a process of its own, after ``patch`` (Python source; os, signal, time imported) replaced a
    function with one that sends the process a real signal at the moment under test; ``command``:
    another command line instead (``resume run``)."""
    import subprocess
    import sys

    program = f"import os, signal, sys, time\n{patch}from pot_zk.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
    arguments = command or ("train", "model=tiny_mlp", "data=synthetic", "mode=disabled", "train.progress=false", "run_dir=run", f"cache_dir={tmp_path / 'cache'}", *overrides)
    return subprocess.run([sys.executable, "-c", program, *arguments], cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_a_ctrl_c_after_the_run_completed_names_the_completed_run(tmp_path):
    """review32: a Ctrl-C right after run.end (here: as the summary prints, a real SIGINT from
    the process to itself) said "pot-zk train: interrupted", as if the run were cut short."""
    patch = (
        "import pot_zk.runs.summary as summary\n"
        "real = summary.summary_lines\n"
        "def lines(ended):\n"
        "    os.kill(os.getpid(), signal.SIGINT); time.sleep(5); return real(ended)\n"
        "summary.summary_lines = lines\n"
    )
    done = _train_signalling_itself(tmp_path, patch, "train.max_steps=2")
    assert done.returncode == 130, done.stderr
    assert stderr_lines(done.stderr) == ["interrupted after the run in run completed; nothing to resume: verify it with: pot-zk verify run"]
    assert [e["event"] for e in audit_events(tmp_path / "run")][-1] == "run.end"


def test_a_ctrl_c_right_after_a_step_is_committed_reports_the_steps_the_run_committed(tmp_path):
    """review45: a SIGINT that came after step 2's commitment was written, before the step was
    counted (a real signal, from the process to itself, as commitments.jsonl gets the line),
    said "interrupted at step 2" and recorded steps 2, though 3 steps were committed, and the
    trail lacked step 2's commitment record until a resume wrote it."""
    done = _train_signalling_itself(tmp_path, SIGINT_AS_STEP_2_IS_COMMITTED, "train.max_steps=5", "train.batch_size=2")
    assert done.returncode == 130, done.stderr
    assert stderr_lines(done.stderr) == [
        "pot-zk: SIGINT: finishing step 2's commitment records first (interrupt again to exit now)",
        "interrupted at step 3 of 5; continue with: pot-zk resume run",
    ]
    events = audit_events(tmp_path / "run")
    assert [e["step"] for e in events if e["event"] == "commitment"] == [0, 1, 2]
    [interrupted] = [e for e in events if e["event"] == "run.interrupted"]
    assert interrupted["steps"] == 3 == len((tmp_path / "run" / "commitments.jsonl").read_text().splitlines())
    [end] = [e for e in events if e["event"] == "run.end"]
    assert end["progress"]["steps"] == 3
    resumed = run("resume", "run", cwd=tmp_path)  # from the checkpoint before step 2: step 2 again, matching its commitment
    assert resumed.returncode == 0, resumed.stderr
    assert "run completed: 5 steps trained, 3 of them by this command, every step committed" in resumed.stdout, resumed.stdout


def _stopped_with_a_cut_line(tmp_path: Path) -> Path:
    """A 5-step run interrupted once step 2 is committed, then a kill's cut-short line for step 3
    (17 bytes) at the end of its commitments.jsonl, which is returned."""
    assert _train_signalling_itself(tmp_path, SIGINT_AS_STEP_2_IS_COMMITTED, "train.max_steps=5", "train.batch_size=2").returncode == 130
    commitments = tmp_path / "run" / "commitments.jsonl"
    with open(commitments, "ab") as handle:
        handle.write(b'{"step": 3, "w_be')
    return commitments


def _sigint_in(module: str, function: str) -> str:
    """A patch for :func:`_train_signalling_itself`: ``module.function`` sends a real SIGINT first."""
    return (
        f"import {module} as patched\n"
        f"real = patched.{function}\n"
        "def signalling(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGINT); time.sleep(5)\n"
        "    return real(*a, **k)\n"
        f"patched.{function} = signalling\n"
    )


def test_a_resume_interrupted_before_it_trains_counts_the_complete_commitments(tmp_path):
    """review46: a resume interrupted while it loaded the data (before its session) said
    "interrupted at step 0" of a run with 3 committed steps whose commitments.jsonl ended in a
    line a kill had cut short (the records could not be read, so it counted none)."""
    _stopped_with_a_cut_line(tmp_path)
    done = _train_signalling_itself(tmp_path, _sigint_in("pot_zk.runs.train", "declared_data"), command=("resume", "run"))
    assert done.returncode == 130, done.stderr
    assert stderr_lines(done.stderr) == ["interrupted at step 3; continue with: pot-zk resume run"]


def test_a_resume_interrupted_before_its_first_record_leaves_the_cut_line_for_the_resume_that_records_it(tmp_path):
    """review46: resume cut the last line a kill had cut short from commitments.jsonl, then was
    interrupted before its run.resume record: the cut was in no record, and the next resume found
    nothing to cut. Now the interrupted resume leaves the file as it was."""
    commitments = _stopped_with_a_cut_line(tmp_path)
    before = commitments.read_bytes()
    done = _train_signalling_itself(tmp_path, _sigint_in("pot_zk.runs.session", "restore_checkpoint"), command=("resume", "run"))
    assert done.returncode == 130, done.stderr
    assert commitments.read_bytes() == before
    assert run("resume", "run", cwd=tmp_path).returncode == 0
    resumed = [e for e in audit_events(tmp_path / "run") if e["event"] == "run.resume"]
    assert [e["discarded_partial_records"] for e in resumed] == [{"commitments.jsonl": 17}]
