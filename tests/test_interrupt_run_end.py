"""Ctrl-C and SIGTERM as a run ends (pot_zk/core/prover_processes.py closing_run, the CLI's
handler in pot_zk/cli/interrupt.py), with real processes and real signals: a `pot-zk train`
paused at the final score, the executor's shutdown or the statistics written with run.end is sent
SIGTERM there; the run ends with a truthful run.end and the command says what to do. (Split from
test_interrupt.py so that pytest-xdist's per-file scheduling can put them on the other worker.)"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from process_support import audit_events, holder_pid, kill, run, stderr_lines, tiny_run, wait_for
from test_interrupt import _interrupted


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("groth16-cache")


PAUSED_CLI = """
import sys, time
from pathlib import Path

marker, where, *argv = sys.argv[1:]

def pause(seconds):
    Path(marker).touch()
    time.sleep(seconds)

def pause_until_signalled(seconds):  # a signal that is deferred does not end the sleep: end it here (review44: 3 s was too short a window on a loaded machine)
    from pot_zk.core import prover_processes
    Path(marker).touch()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not any(entry[0] for entry in prover_processes._closing):
        time.sleep(0.02)

if where == "final-score":  # the final model's score, after the last step and the final model's file
    from pot_zk.runs import bundle as files
    from pot_zk.runs.session import TrainingSession
    original = TrainingSession.evaluate
    def evaluate(self):
        if self.bundle.path(files.FINAL_MODEL).exists():
            pause(60)
        return original(self)
    TrainingSession.evaluate = evaluate
elif where == "executor-shutdown":  # after the last proof, before the final model (review25: Dask's takes ~1.7 s)
    from pot_zk.proving.executors import PoolExecutor
    original = PoolExecutor.shutdown
    def shutdown(self):
        pause(60)
        return original(self)
    PoolExecutor.shutdown = shutdown
elif where == "audit-close":  # run.end written, the trail being closed (any command's session)
    from pot_zk.core.audit import AuditLog
    original = AuditLog.close
    def close(self):
        pause_until_signalled(30)
        return original(self)
    AuditLog.close = close
else:  # the run's statistics files, written as run.end is
    from pot_zk.proving.stats import ProvingStats
    original = ProvingStats.write
    def write(self, directory):
        pause_until_signalled(30)
        return original(self, directory)
    ProvingStats.write = write

from pot_zk.cli.main import main
sys.exit(main(argv))
"""


def _paused_train(tmp_path: Path, where: str, run_dir: Path, cache: Path, proving: bool = False) -> tuple[int, str]:
    """`pot-zk train` of 4 steps paused at ``where`` as its run ends, sent SIGTERM there: (exit status, stderr)."""
    import subprocess
    import sys

    script, marker = tmp_path / "paused_cli.py", tmp_path / "paused"
    script.write_text(PAUSED_CLI)
    train = [*tiny_run(run_dir, cache, steps=4, k=4), *([] if proving else ["mode=disabled"])]  # mostly the run's end is the subject: no proof needed
    trainer = subprocess.Popen([sys.executable, str(script), str(marker), where, "train", *train],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(marker.exists, f"the run to reach {where}", timeout=300)
        trainer.send_signal(signal.SIGTERM)
        _, err = trainer.communicate(timeout=120)
    finally:
        kill(trainer.pid)
        if proving:
            kill(holder_pid(cache, run_dir))
    return trainer.returncode, err


def test_sigterm_during_the_final_score_ends_the_run_interrupted_and_resume_completes_it(tmp_path, cache):
    """review18: an interruption after the last step, before run.end, left the trail without its
    run.end (or with a run.end `completed` and no final score)."""
    run_dir = tmp_path / "run"
    status, err = _paused_train(tmp_path, "final-score", run_dir, cache)
    assert status == 130, err
    assert _interrupted(run_dir, "SIGTERM")["steps"] == 4
    assert stderr_lines(err) == ["interrupted at step 4 of 4; continue with: pot-zk resume run"]
    resumed = run("resume", "run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "run completed: 4 steps trained, 0 of them by this command" in resumed.stdout, resumed.stdout
    _verifies_unproven(tmp_path)


def test_sigterm_while_the_executor_shuts_down_ends_the_run_interrupted_and_resume_completes_it(tmp_path, cache):
    """review25: the executor's shutdown (after the last proof, before the final model) was
    outside the guard: run.end said completed without a final model, and nothing recovered it."""
    run_dir = tmp_path / "run"
    status, err = _paused_train(tmp_path, "executor-shutdown", run_dir, cache, proving=True)
    assert status == 130, err
    assert _interrupted(run_dir, "SIGTERM")["steps"] == 4 and not (run_dir / "model_final.safetensors").exists()
    resumed = run("resume", "run", cwd=tmp_path)
    kill(holder_pid(cache, run_dir))
    assert resumed.returncode == 0, resumed.stderr
    verified = run("verify", "run", "--cache-dir", str(cache), cwd=tmp_path)
    assert verified.returncode == 0 and "result: VERIFIED" in verified.stdout, verified.stdout


def test_sigterm_while_run_end_is_written_is_raised_after_it_and_says_the_run_completed(tmp_path, cache):
    run_dir = tmp_path / "run"
    status, err = _paused_train(tmp_path, "run-end", run_dir, cache)
    assert status == 130, err
    events = audit_events(run_dir)
    assert events[-1]["event"] == "run.end" and events[-1]["status"] == "completed"
    assert not [e for e in events if e["event"] == "run.interrupted"]
    assert (run_dir / "stats.json").is_file()
    assert stderr_lines(err) == [
        "pot-zk: SIGTERM: finishing the run's end first (interrupt again to exit now)",
        "interrupted after the run in run completed; nothing to resume: verify it with: pot-zk verify run",
    ]
    _verifies_unproven(tmp_path)


def _verifies_unproven(cwd: Path) -> None:
    """verify of the unproven run finds every check passed: final model and scores included."""
    verified = run("verify", "run", cwd=cwd)
    lines = verified.stdout.splitlines()
    assert "result: UNPROVEN" in lines and not [line for line in lines if line.startswith("FAILED")], verified.stdout
    assert {"passed: final-model", "passed: evaluation"} <= set(lines), verified.stdout


def test_an_interrupt_deferred_while_a_run_ends_is_raised_by_the_outermost_block_unless_it_fails():
    from pot_zk.core.prover_processes import Interrupted, closing_run, defer_interrupt

    assert not defer_interrupt("SIGINT")  # no run is ending: the handler raises at once
    after_inner = False
    with pytest.raises(Interrupted) as raised:
        with closing_run():
            with closing_run():
                assert defer_interrupt("SIGTERM")
            after_inner = True  # the inner block ended: the run's end is still being written
    assert after_inner and raised.value.signal_name == "SIGTERM"
    with pytest.raises(OSError):  # the block's own error ends the run; the signal adds nothing
        with closing_run():
            defer_interrupt("SIGINT")
            raise OSError("disk full")
    with closing_run():
        pass
    with closing_run(raise_deferred=False):  # a run ending halted: its error is the message (review25)
        with closing_run():
            assert defer_interrupt("SIGINT")
    with closing_run():
        pass  # nothing left deferred


def test_a_signal_between_a_proofs_audit_record_and_its_outcome_record_is_raised_after_both(tmp_path, make_strategy, job):
    """review44: ``pot-zk respond`` (and prove-pending) wrote a proof's ``proof.result`` to the audit
    trail, then its outcome to proofs.jsonl; a SIGTERM in between left the trail with an outcome
    proofs.jsonl lacked, and a verified run failed verify (record-mismatch) until respond ran
    again. Here the CLI's handler runs just as ``proof.result`` is written."""
    from pot_zk.core.audit import AuditLog
    from pot_zk.core.prover_processes import Interrupted, defer_interrupt
    from pot_zk.proving.handlers import ContinueOnFailure
    from pot_zk.proving.pipeline import ProvingPipeline
    from pot_zk.proving.retry import RetrySchedule
    from pot_zk.proving.stats import ProvingStats

    class SignalledAsTheOutcomeIsAudited(AuditLog):
        def event(self, event, **fields):
            super().event(event, **fields)
            if event == "proof.result" and defer_interrupt("SIGTERM") is None:  # what the CLI's handler does
                raise Interrupted("SIGTERM")

    recorded = []
    audit = SignalledAsTheOutcomeIsAudited(tmp_path / "audit.jsonl")
    pipeline = ProvingPipeline(make_strategy("ok"), RetrySchedule(max_attempts=1, initial_delay_s=0), ContinueOnFailure(), audit, ProvingStats(), sleep=lambda s: None)
    with pytest.raises(Interrupted) as raised:
        pipeline.prove(job, record=recorded.append)
    assert [result.status for result in recorded] == ["proved"], "the outcome is recorded before the signal is raised"
    assert raised.value.signal_name == "SIGTERM" and not raised.value.after_end  # respond goes on to record run.interrupted


def test_sigterm_as_prove_pending_ends_says_its_work_is_done(tmp_path, cache):
    """Last session's leftover: respond and prove-pending interrupted while their run.end was
    written said only "interrupted" (was it done?). Now: done, nothing to do again."""
    import subprocess
    import sys

    assert run("train", *tiny_run(tmp_path / "run", cache, steps=4, k=4), "mode=disabled", cwd=tmp_path).returncode == 0
    script, marker = tmp_path / "paused_cli.py", tmp_path / "paused"
    script.write_text(PAUSED_CLI)
    pending = subprocess.Popen([sys.executable, str(script), str(marker), "audit-close", "prove-pending", "run"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(marker.exists, "prove-pending to close its trail", timeout=300)
        pending.send_signal(signal.SIGTERM)
        _, err = pending.communicate(timeout=120)
    finally:
        kill(pending.pid)
    assert pending.returncode == 130, err
    assert stderr_lines(err) == [
        "pot-zk: SIGTERM: finishing the run's end first (interrupt again to exit now)",
        "pot-zk prove-pending: interrupted as it ended; its run.end is written (the audit trail has its outcome): nothing to do again",
    ]
    ends = [e for e in audit_events(tmp_path / "run") if e["event"] == "run.end"]
    assert ends[-1]["command"] == "prove-pending" and ends[-1]["status"] == "completed"


def test_a_ctrl_c_as_a_proof_is_audited_in_the_training_loop_records_its_outcome_first(tmp_path, cache):
    """Session 18's leftover: the inline executor (ezkl's default) proves in the training loop and
    wrote a proof's ``proof.result`` to the audit trail, then (outside the block that defers a
    signal) its outcome to proofs.jsonl. A Ctrl-C in between said "finishing this proof's outcome
    records first", then left proofs.jsonl without that outcome: verify failed the run
    (record-mismatch) until it was resumed. Here a real SIGINT comes as step 1's ``proof.result``
    is written."""
    from test_interrupt import _train_signalling_itself

    patch = (
        "from pot_zk.core.audit import AuditLog\n"
        "real = AuditLog.event\n"
        "def event(self, name, **fields):\n"
        "    real(self, name, **fields)\n"
        "    if name == 'proof.result' and fields.get('step') == 1: os.kill(os.getpid(), signal.SIGINT)\n"
        "AuditLog.event = event\n"
    )
    run_dir = tmp_path / "run"
    try:
        done = _train_signalling_itself(tmp_path, patch, command=("train", *tiny_run(run_dir, cache, "executor=inline", steps=4, k=1)))
    finally:
        kill(holder_pid(cache, run_dir))
    assert done.returncode == 130, done.stderr
    assert stderr_lines(done.stderr) == [
        "pot-zk: SIGINT: finishing this proof's outcome records first (interrupt again to exit now)",
        "interrupted at step 2 of 4; continue with: pot-zk resume run",
    ]
    outcomes = [json.loads(line) for line in (run_dir / "proofs.jsonl").read_text().splitlines()]
    assert [(o["step"], o["status"]) for o in outcomes] == [(0, "proved"), (1, "proved")]
    verified = run("verify", "run", "--cache-dir", str(cache), cwd=tmp_path)
    assert "record-mismatch" not in verified.stdout, verified.stdout
