"""Challenge, respond, verify --challenge from the CLI on tiny real runs (4-3-2 MLP, 4 steps,
steps 0 and 2 proven by the policy): an honest run answers; a run with an altered step that
the challenge picks, or whose witness was edited, does not; a challenge for another run is
refused by name."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from pot_zk.backends.ezkl.backend import EZKL
from pot_zk.cli.main import main
from pot_zk.core.challenge import Challenge, choose_steps, commitment_head
from pot_zk.backends.registry import commit_step
from pot_zk.kinds.base import ModelSettings
from pot_zk.kinds.sgd.kind import SGD
from pot_zk.kinds.registry import load_training_step, save_training_step
from pot_zk.runs.bundle import RunBundle, load_model, save_model
from pot_zk.data.datasets import load_dataset, split_holdout
from pot_zk.runs.evaluation import evaluate
from pot_zk.testing.tamper import chain_lines
from pot_zk.verify.run import verify_run

from run_support import run_tiny

pytestmark = pytest.mark.prover

UNPROVEN = (1, 3)


@pytest.fixture(scope="module")
def honest(tmp_path_factory, zk_cache) -> Path:
    run = tmp_path_factory.mktemp("honest") / "run"
    assert run_tiny(run, zk_cache).status == "completed"
    return run


@pytest.fixture
def run(honest, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(honest, copy)
    return copy


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]


def _nonce_picking(run: Path, count: int, wanted: set[int]) -> str:
    """The first nonce whose challenge of ``count`` steps includes every step in ``wanted``."""
    bundle = RunBundle.open(run)
    head = commitment_head(bundle.manifest(), bundle.commitments())
    return next(f"{n:08x}" for n in range(10_000) if wanted <= set(choose_steps(head, f"{n:08x}", count, 4)))


def _challenge(run: Path, out: Path, count: int, wanted: set[int], cache: Path) -> dict:
    """The auditor's challenge, recorded in the trust store of ``cache`` (verify's --cache-dir)."""
    nonce = _nonce_picking(run, count, wanted)
    assert main(["challenge", str(run), "--count", str(count), "--nonce", nonce, "--out", str(out), "--cache-dir", str(cache)]) == 0
    return json.loads(out.read_text())


def _verify(run: Path, cache: Path, *extra: str) -> int:
    return main(["verify", str(run), "--cache-dir", str(cache), *extra])


def test_an_honest_run_answers_its_challenge(run, tmp_path, zk_cache, capsys):
    c_json = tmp_path / "C.json"
    steps = _challenge(run, c_json, 2, {3}, zk_cache)["steps"]
    assert main(["respond", str(run), str(c_json)]) == 0
    out = capsys.readouterr().out
    assert "step 3: proved (zk-halo2)" in out and "2 of 2 challenged steps proven" in out
    answers = [r for r in RunBundle.open(run).proofs() if "challenge" in r]
    assert {r["step"] for r in answers} == set(steps) - {0, 2}
    assert all(r["status"] == "proved" and r["challenge"]["nonce"] == json.loads(c_json.read_text())["nonce"] for r in answers)
    events = _events(run)
    start = next(i for i, e in enumerate(events) if e["event"] == "challenge.start")
    assert [e["event"] for e in events[start:]][-1] == "run.end" and events[-1]["command"] == "respond"
    assert {e["step"] for e in events[start:] if e["event"] == "attempt"} == {r["step"] for r in answers}
    assert len(list((run / "witness").glob("*.safetensors"))) == 4, "a respond keeps the witnesses"
    assert _verify(run, zk_cache, "--challenge", str(c_json)) == 0
    out = capsys.readouterr().out
    assert "result: VERIFIED" in out and "passed: challenge" in out


def test_a_challenge_answered_by_a_certificate_is_said_to_reveal_its_witness(run, tmp_path, zk_cache, capsys):
    """A review: a challenged step answered by the fallback's certificate (the prover failing)
    passed with only the coverage line showing it; verify now says which answers reveal their
    witness instead of being zero-knowledge proofs (sound: the certificate is checked)."""
    c_json = tmp_path / "C.json"
    _challenge(run, c_json, 1, {3}, zk_cache)
    assert main(["respond", str(run), str(c_json), "handler.name=fallback", "retry.max_attempts=1", "handler.fallback_chain=[reexec]", "prover.binary=/bin/false"]) == 0
    capsys.readouterr()
    report = verify_run(run, cache_dir=zk_cache, challenge=Challenge.load(c_json))
    assert report.ok and "challenge" in report.passed, report.summary()
    assert "challenge: steps [3] were answered by certificates that reveal their witness (['reexec']), not zero-knowledge proofs" in report.notes


def _alter_last_step(run: Path) -> None:
    """A cheater's run: step 3's W_t+1 is not the SGD update of its W_t (one weight off by 0.05,
    far beyond the tolerance), with every record made consistent (commitments, the final model
    and its held-out score, audit trail rewritten, witness)."""
    state, metadata = load_model(run / "model_final.safetensors")
    key = next(iter(state))
    state[key] = state[key].clone()
    state[key].view(-1)[0] += 0.05
    save_model(state, run / "model_final.safetensors", metadata)
    witness = run / "witness" / "step-00000003.safetensors"
    step = load_training_step(witness, "sgd")
    after = {name: value.clone() for name, value in step.weights_after.items()}
    after[key].view(-1)[0] = float(state[key].view(-1)[0])
    step = dataclasses.replace(step, weights_after=after)
    save_training_step(step, witness)
    w_after = commit_step(step, EZKL.statement_for_step(step)).w_after
    records = RunBundle.open(run).commitments()
    assert records[3]["w_after"] != w_after
    records[3]["w_after"] = w_after
    (run / "commitments.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    score = _held_out_score(state, after_step=4)
    scores = [score if r["after_step"] == 4 else r for r in RunBundle.open(run).evaluations()]
    (run / "evaluations.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in scores))
    events = _events(run)
    for event in events:
        if event["event"] == "commitment" and event["step"] == 3:
            event["w_after"] = w_after
        if event["event"] == "evaluation" and event["after_step"] == 4:
            event.update(score)
    (run / "audit.jsonl").write_bytes(chain_lines(events))


def _held_out_score(state: dict, after_step: int) -> dict:
    """The altered final model's score on the tiny run's held-out samples, as the run records it."""
    inputs, targets = load_dataset("synthetic", 4, 2, 64, 0)
    _, _, held_out = split_holdout(inputs, targets, 0.2, 0)
    model = SGD.build_model(SGD.architecture(ModelSettings("sgd", (4, 3, 2))), None)
    model.load_state_dict(state)
    return evaluate(model, held_out, "mse", False, after_step).to_record()


def test_an_altered_step_passes_plain_verify_but_fails_its_challenge(run, tmp_path, zk_cache, capsys):
    _alter_last_step(run)
    assert verify_run(run, cache_dir=zk_cache).ok, "an unproven altered step is invisible without a challenge"
    c_json = tmp_path / "C.json"
    assert _challenge(run, c_json, 1, {3}, zk_cache)["steps"] == [3]
    assert main(["respond", str(run), str(c_json)]) == 1
    assert "step 3: failed" in capsys.readouterr().out
    failed = [r for r in RunBundle.open(run).proofs() if r["step"] == 3]
    assert [r["status"] for r in failed] == ["failed"] and failed[0]["error"]["error_class"] == "WitnessBuilderError"
    assert _verify(run, zk_cache, "--challenge", str(c_json)) == 1
    assert "FAILED challenge (challenge-unanswered) step 3" in capsys.readouterr().out


def test_a_challenged_witness_edited_after_the_run_is_refused_before_proving(run, tmp_path, zk_cache, capsys):
    c_json = tmp_path / "C.json"
    _challenge(run, c_json, 1, {1}, zk_cache)
    witness = run / "witness" / "step-00000001.safetensors"
    step = load_training_step(witness, "sgd")
    save_training_step(dataclasses.replace(step, inputs=step.inputs + 0.25), witness)
    audit_before = (run / "audit.jsonl").read_bytes()
    assert main(["respond", str(run), str(c_json)]) == 2
    err = capsys.readouterr().err
    assert "ChallengeError: witness-mismatch" in err and "batch commitment" in err
    assert (run / "audit.jsonl").read_bytes() == audit_before, "nothing may be proven or recorded"
    assert _verify(run, zk_cache, "--challenge", str(c_json)) == 1
    assert "FAILED challenge (challenge-unanswered) step 1" in capsys.readouterr().out


def test_a_challenge_for_another_run_is_refused_by_name(run, honest, tmp_path, zk_cache, capsys):
    other = tmp_path / "other"
    assert run_tiny(other, zk_cache, "mode=disabled", "train.seed=1").status == "completed"
    c_json = tmp_path / "C.json"
    _challenge(other, c_json, 2, set(), zk_cache)
    audit_before = (run / "audit.jsonl").read_bytes()
    assert main(["respond", str(run), str(c_json)]) == 2
    assert "ChallengeError: challenge-head-mismatch" in capsys.readouterr().err
    assert (run / "audit.jsonl").read_bytes() == audit_before
    assert _verify(run, zk_cache, "--challenge", str(c_json)) == 1
    assert "FAILED challenge (challenge-head-mismatch)" in capsys.readouterr().out


def test_a_run_that_kept_no_witness_answers_by_replay(tmp_path, zk_cache, capsys):
    run = tmp_path / "run"
    assert run_tiny(run, zk_cache, "witness.retain=scheduled").status == "completed"
    assert not list((run / "witness").glob("*"))
    c_json = tmp_path / "C.json"
    _challenge(run, c_json, 2, {1, 3}, zk_cache)
    assert main(["respond", str(run), str(c_json)]) == 0
    assert "2 of 2 challenged steps proven" in capsys.readouterr().out
    assert next(e for e in _events(run) if e["event"] == "challenge.start")["replayed"] == [1, 3]
    assert not list((run / "witness").glob("*")), "a scheduled-witness run drops replayed witnesses once proven"
    assert _verify(run, zk_cache, "--challenge", str(c_json)) == 0


def test_a_replay_that_does_not_reproduce_the_records_is_refused(run, tmp_path, zk_cache, capsys):
    shutil.rmtree(run / "witness")
    records = RunBundle.open(run).commitments()
    records[1]["w_after"] = records[2]["w_before"] = "00" * 32
    (run / "commitments.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    c_json = tmp_path / "C.json"
    _challenge(run, c_json, 1, {3}, zk_cache)
    assert main(["respond", str(run), str(c_json)]) == 2
    assert "ChallengeError: replay-mismatch: replaying step 1" in capsys.readouterr().err
    assert not (run / "witness" / "step-00000003.safetensors").exists()
