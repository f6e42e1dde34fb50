"""Steps the policy selected whose proof never came: runs whose prover program always fails, so
each selected step is parked (`handler=retry`, for `pot-zk prove-pending`) or recorded failed
(`handler=continue`). Neither outcome is a proof: such a run is UNPROVEN (exit 3), not VERIFIED;
an auditor asking for the selected steps' proofs (`--min-proven 2`) gets FAILED; a challenge of
those steps is unanswered. No prover runs (fast); the mixed case, one step parked and one
proven with the real prover, is in tests/zk/test_parked_run.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pot_zk.cli.main import main
from pot_zk.config import compose_config
from pot_zk.core.challenge import new_challenge
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train
from pot_zk.verify.run import verify_run
from pot_zk.verify.trust import TrustStore

HANDLERS = {"parked": "retry", "failed": "continue"}
SELECTED = (0, 2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A 4-step run (steps 0 and 2 selected) per unproven outcome, its prover program /bin/false."""
    root = tmp_path_factory.mktemp("unproven")
    made = {}
    for status, handler in HANDLERS.items():
        overrides = [
            "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=4", "policy=every_k", "policy.k=2",
            f"handler={handler}", "retry=none", "prover.binary=/bin/false", "train.progress=false",
            f"cache_dir={root / 'cache'}", f"run_dir={root / status}",
        ]
        summary = train(compose_config(overrides), sleep=lambda seconds: None)
        assert summary.status == "completed" and summary.progress["outcomes"] == {status: len(SELECTED)}
        made[status] = root / status
    return made


@pytest.mark.parametrize("status", sorted(HANDLERS))
def test_a_run_whose_selected_steps_all_have_no_proof_is_unproven(runs, status, tmp_path, capsys):
    code = main(["verify", str(runs[status]), "--cache-dir", str(tmp_path), "--min-proven", "0"])
    out = capsys.readouterr().out
    assert code == 3 and "result: UNPROVEN" in out, out
    assert f"coverage: {status}=2, commitment-only=2" in out
    assert "FAILED" not in out


@pytest.mark.parametrize("status", sorted(HANDLERS))
def test_an_auditor_who_asks_for_the_selected_steps_gets_failed(runs, status, tmp_path):
    report = verify_run(runs[status], cache_dir=tmp_path, min_proven=len(SELECTED))
    assert report.verdict == "FAILED"
    assert [(f.check, f.reason) for f in report.findings] == [("proofs", "too-few-proven")]
    assert report.findings[0].message.startswith("0 steps carry a verified proof")


@pytest.mark.parametrize("status", sorted(HANDLERS))
def test_a_challenged_step_whose_outcome_is_not_proved_is_unanswered(runs, status, tmp_path):
    """Every step challenged: the selected ones hold a parked or failed outcome, the others none;
    each is challenge-unanswered (not a proof that failed to verify: there is none)."""
    bundle = RunBundle.open(runs[status])
    challenge = new_challenge(bundle.manifest(), bundle.commitments(), 4, "5a" * 32)
    TrustStore.in_cache(tmp_path).record_challenge(challenge)  # the auditor issued it (pot-zk challenge does this)
    assert challenge.steps == (0, 1, 2, 3)
    assert {r["step"]: r["status"] for r in bundle.proofs()} == {step: status for step in SELECTED}
    report = verify_run(runs[status], cache_dir=tmp_path, challenge=challenge, min_proven=0)
    assert {(f.check, f.reason, f.step) for f in report.findings} == {("challenge", "challenge-unanswered", s) for s in range(4)}


def test_prove_pending_on_a_run_uses_the_runs_own_configuration(runs, tmp_path, capsys):
    """A review: `prove-pending RUN` built its retry schedule (and mode) from pot-zk's defaults
    plus the command line, not the run's config.yaml: this run's retry=none became three
    retries with sleeps. Group selections other than the statement's (retry=..., handler=...)
    still apply; the run's prover, model, data and mode stay."""
    import json
    import shutil

    run = Path(shutil.copytree(runs["parked"], tmp_path / "run"))
    assert main(["prove-pending", str(run)]) == 1
    out = capsys.readouterr().out
    assert "0 proved, 2 still parked" in out and out.count("parked (RetryExhaustedError)") == 2, out
    events = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    started = next(i for i, e in enumerate(events) if e["event"] == "pending.start")
    attempts = [(e["step"], e["attempt"]) for e in events[started:] if e["event"] == "attempt"]
    assert attempts == [(0, 1), (2, 1)], "one attempt per job: the run's retry=none"
    assert main(["prove-pending", str(run), "prover.binary=/nonexistent/prover"]) == 1  # an override reaches the parked jobs' program
    capsys.readouterr()
    events = [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]
    started = max(i for i, e in enumerate(events) if e["event"] == "pending.start")
    assert {e["error"]["error_class"] for e in events[started:] if e["event"] == "attempt"} == {"ProverNotFoundError"}
    assert main(["prove-pending", str(run), "prover=ezkl"]) == 2
    assert "prover=ezkl: a run keeps the prover it was trained with (config.yaml)" in capsys.readouterr().err
    assert main(["prove-pending", str(run), "mode=production"]) == 2  # review23: mode has no keys of its own to override
    assert capsys.readouterr().err.strip().endswith("mode=production: a run keeps the mode it was trained with (config.yaml)")
