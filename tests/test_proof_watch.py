"""The proofs part of `pot-zk train`'s progress bar, from the stage lines prover programs write:
which step is in which stage for how long, how many wait, and the ETA from measured proofs."""

from __future__ import annotations

import json
from pathlib import Path

from pot_zk.runs.proof_watch import ProofWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_stages(path: str, *stages: tuple[str, float]) -> None:
    with open(path, "a") as handle:
        for stage, at in stages:
            handle.write(json.dumps({"stage": stage, "at": at}) + "\n")


def prove(watch: ProofWatch, clock: Clock, step: int, seconds: float) -> None:
    write_stages(watch.stage_file(step), ("witness", clock.now))
    clock.now += seconds
    watch.finished(step, proved=True)


def test_stages_and_an_eta_that_leaves_out_the_first_proof_and_shares_the_queue_among_workers():
    clock = Clock()
    with ProofWatch(workers=2, clock=clock) as watch:
        files = [watch.stage_file(step) for step in (0, 1)]
        write_stages(files[0], ("keys", clock.now))
        assert watch.text() == "step 0: key setup or load 0.0 s, step 1: starting"  # no proof measured yet: no ETA
        clock.now += 30
        watch.finished(0, proved=True)
        watch.finished(1, proved=False)  # a failed proof measures nothing
        prove(watch, clock, 2, 10)
        prove(watch, clock, 3, 12)
        assert watch.typical_s() == 11  # the median without the first proof's 30 s (its key setup)
        running = [watch.stage_file(step) for step in (4, 5, 6)]
        write_stages(running[0], ("witness", clock.now), ("prove", clock.now + 1))
        write_stages(running[1], ("witness", clock.now + 3))
        clock.now += 4
        # steps 4 and 5 prove on the two workers (7 s and 10 s left at 11 s a proof); step 6 follows step 4: 7 + 11 s
        assert watch.text() == "ETA 00:18; step 4: prove 3.0 s, step 5: witness 1.0 s, 1 queued"
        directory = watch.directory
    assert not Path(directory).exists()


def test_a_line_being_written_and_a_malformed_line_are_not_shown():
    clock = Clock()
    with ProofWatch(workers=1, clock=clock) as watch:
        path = watch.stage_file(0)
        write_stages(path, ("witness", clock.now))
        with open(path, "a") as handle:
            handle.write("not json\n" + json.dumps({"stage": "prove", "at": clock.now}))  # no newline yet
        assert watch.text() == "step 0: witness 0.0 s"


def _run_proving_step_0(tmp_path: Path, watch: ProofWatch, clock: Clock):
    """A run with two proofs scheduled on ``watch``: step 0's proving for 5 s, step 1's queued."""
    from pot_zk.runs.bundle import RunBundle
    from pot_zk.runs.proven_run import ProvenRun

    bundle = RunBundle(tmp_path)
    bundle.write_manifest({"witness": {"retain": "auto"}})
    run = ProvenRun(bundle, None, None, None, lambda step: True, tmp_path, {}, [])
    run.watch = watch
    run.progress.scheduled = 2
    write_stages(watch.stage_file(0), ("witness", clock.now))
    watch.stage_file(1)
    clock.now += 5
    return run


def _step_0_proved():
    from pot_zk.proving.pipeline import ProofResult

    return ProofResult(step=0, status="proved", proof_type="zk-groth16", strategy="groth16", response=None, error=None, attempts=1)


def test_the_bar_never_shows_an_eta_beside_no_proof_done(tmp_path):
    """The bar is drawn from another thread at any moment. The first proof's duration made the
    ETA before its outcome was counted, so a redraw in between showed ``proofs 0/3 done, ETA``
    (CI saw it once). Here the bar is drawn inside that moment, as the ticker may."""
    from pot_zk.runs.proven_run import queue_text

    drawn: list[str] = []

    class DrawnMeanwhile(ProofWatch):
        def finished(self, step: int, proved: bool) -> None:
            super().finished(step, proved)
            drawn.append(queue_text(run.progress, self))

    clock = Clock()
    with DrawnMeanwhile(workers=1, clock=clock) as watch:
        run = _run_proving_step_0(tmp_path, watch, clock)
        run.record_result(_step_0_proved())
    assert drawn == ["proofs 1/2 done, ETA 00:05; step 1: starting"]


def test_the_bar_read_while_an_outcome_is_recorded_never_shows_an_eta_beside_no_proof_done(tmp_path):
    """review44: the bar read the count, then the watch; a whole outcome recorded between the two
    reads drew ``proofs 0/2 done, ETA``. Here the outcome is recorded right after the bar's first read."""
    from pot_zk.runs.proven_run import queue_text

    reads = []

    def read(value):
        reads.append(value)
        if len(reads) == 1:
            run.record_result(_step_0_proved())  # the prover's thread, between the bar's two reads
        return value

    clock = Clock()
    with ProofWatch(workers=1, clock=clock) as watch:
        run = _run_proving_step_0(tmp_path, watch, clock)

        class Drawn:  # what the bar reads, each read followed at once by the outcome's record if it is the first
            def text(self):
                return read(watch.text())

        class Counted:
            scheduled = 2

            @property
            def outcomes(self):
                return read(dict(run.progress.outcomes))

        shown = queue_text(Counted(), Drawn())
    assert not shown.startswith("proofs 0/2 done, ETA"), shown
