"""Challenges after the fact without a prover: which steps a challenge picks, the commitment
head it is bound to, C.json, witness retention, and `verify --challenge` on runs trained with
proving off (their challenged steps have no proofs). The prover round trips are in
tests/zk/test_challenge_run.py."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

from pot_zk.cli.main import main
from pot_zk.config import compose_config
from pot_zk.core.challenge import (
    HEAD_FIELDS,
    Challenge,
    challenge_problems,
    choose_steps,
    commitment_head,
    detection_probability,
    new_challenge,
)
from pot_zk.exceptions import ChallengeError, ConfigurationError
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train
from pot_zk.runs.witnesses import step_witness_bytes, witness_retention
from pot_zk.verify.run import verify_run

ROOT = Path(__file__).resolve().parent.parent
HEAD = "ab" * 32


def _unproven_run(run_dir: Path, *extra: str) -> Path:
    """A 4-3-2 MLP, 6 steps, proving off (fast): every step committed, no proof."""
    overrides = [
        "mode=disabled", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=6",
        f"run_dir={run_dir}", f"cache_dir={run_dir.parent / 'cache'}", "train.progress=false", *extra,
    ]
    assert train(compose_config(overrides), sleep=lambda s: None).status == "completed"
    return run_dir


@pytest.fixture(scope="module")
def unproven(tmp_path_factory) -> Path:
    return _unproven_run(tmp_path_factory.mktemp("unproven") / "run")


def test_the_choice_is_fixed_by_head_and_nonce_and_changes_with_the_nonce():
    first = choose_steps(HEAD, "01" * 32, 10, 224)
    assert first == choose_steps(HEAD, "01" * 32, 10, 224)
    assert len(set(first)) == 10 and list(first) == sorted(first) and all(0 <= s < 224 for s in first)
    others = {choose_steps(HEAD, f"{n:064x}", 10, 224) for n in range(20)}
    assert len(others) == 20, "different nonces must give different choices"
    assert choose_steps("cd" * 32, "01" * 32, 10, 224) != first
    assert choose_steps(HEAD, "", 224, 224) == tuple(range(224))


def test_the_choice_is_uniform_so_the_detection_table_holds():
    total, altered, count, trials = 20, {3, 11}, 3, 4000
    hits = sum(bool(altered & set(choose_steps(HEAD, f"{n:08x}", count, total))) for n in range(trials))
    expected = detection_probability(total, len(altered), count)
    assert expected == pytest.approx(1 - 816 / 1140)
    assert abs(hits / trials - expected) < 0.03
    picks = [0] * total
    for n in range(trials):
        for step in choose_steps(HEAD, f"{n:08x}", count, total):
            picks[step] += 1
    assert max(picks) - min(picks) < 0.25 * trials * count / total


@pytest.mark.parametrize("count", [0, -1, 7])
def test_a_count_outside_the_run_is_refused(count):
    with pytest.raises(ChallengeError) as error:
        choose_steps(HEAD, "", count, 6)
    assert error.value.reason == "challenge-malformed"


def _records(n: int) -> list[dict]:
    return [
        {"step": s, "batch_index": s % 3, "w_before": f"{s:064x}", "batch": f"{s + 100:064x}", "w_after": f"{s + 1:064x}",
         "scale": 12, "loss": 0.5, "scheduled": False, "epoch": 0}
        for s in range(n)
    ]


def test_the_head_covers_every_committed_value_and_no_free_field():
    manifest = {"circuit_id": "c1", "dataset": {"root": "r1"}}
    records = _records(5)
    head = commitment_head(manifest, records)
    assert commitment_head(manifest, list(reversed(records))) == head
    for key in HEAD_FIELDS:
        changed = [dict(r) for r in records]
        changed[4][key] = "other"
        assert commitment_head(manifest, changed) != head, key
    for key in ("loss", "scheduled", "epoch", "recorded_at"):
        changed = [dict(r) for r in records]
        changed[2][key] = 0.25
        assert commitment_head(manifest, changed) == head, f"{key} is free for the trainer and must not move the head"
    assert commitment_head({**manifest, "circuit_id": "c2"}, records) != head
    assert commitment_head({**manifest, "dataset": {"root": "r2"}}, records) != head
    assert commitment_head(manifest, records[:4]) != head
    for free in ({"created": "later"}, {"versions": {"torch": "x"}}, {"executor": {"name": "dask"}}):
        assert commitment_head({**manifest, **free}, records) == head, f"{free} is free for the trainer and must not move the head"


def test_the_head_covers_the_declared_plan():
    """The data set, the batch order, the schedule, the policy, the mode: a relabel after the
    head was handed over (batch_order: recorded, to stop the data set being recomputed) moves it."""
    manifest = {
        "circuit_id": "c1", "mode": "development", "proving_enabled": True, "policy": {"name": "every_k", "k": 3},
        "dataset": {"name": "digits", "part": "all", "num_batches": 179, "root": "r1", "holdout": {"fraction": 0.2}},
        "training": {"batch_order": "seeded", "epochs": 1, "max_steps": None, "seed": 0},
    }
    records = _records(5)
    head = commitment_head(manifest, records)
    edits = [
        {"dataset": {**manifest["dataset"], "name": "synthetic"}},
        {"dataset": {**manifest["dataset"], "part": "base"}},
        {"dataset": {**manifest["dataset"], "num_batches": 178}},
        {"dataset": {**manifest["dataset"], "holdout": {"fraction": 0.1}}},
        {"training": {**manifest["training"], "batch_order": "recorded"}},
        {"training": {**manifest["training"], "seed": 1}},
        {"training": {**manifest["training"], "epochs": 2}},
        {"training": {**manifest["training"], "max_steps": 4}},
        {"policy": {"name": "every_k", "k": 1000}},
        {"mode": "production"},
        {"proving_enabled": False},
        {"base": {"commitment": "b2"}},
    ]
    for edit in edits:
        assert commitment_head({**manifest, **edit}, records) != head, edit


def test_a_challenge_fits_only_its_own_run():
    manifest = {"circuit_id": "c1", "dataset": {"root": "r1"}, "created": "t"}
    records = _records(8)
    challenge = new_challenge(manifest, records, 3, "0f" * 32)
    assert challenge_problems(challenge, manifest, records) == []
    assert Challenge.from_dict(json.loads(json.dumps(challenge.to_dict()))) == challenge

    altered = [dict(r) for r in records]
    altered[5]["w_after"] = "ff" * 32
    assert [r for r, _ in challenge_problems(challenge, manifest, altered)] == ["challenge-head-mismatch"]
    assert [r for r, _ in challenge_problems(challenge, {**manifest, "created": "u"}, records)] == ["challenge-run-mismatch"]
    others = [s for s in range(8) if s not in challenge.steps][:3]
    edited = Challenge(challenge.run_id, challenge.head, challenge.nonce, 3, 8, tuple(others))
    assert [r for r, _ in challenge_problems(edited, manifest, records)] == ["challenge-steps-mismatch"]
    miscounted = Challenge(challenge.run_id, challenge.head, challenge.nonce, 3, 8, challenge.steps[:2])
    assert [r for r, _ in challenge_problems(miscounted, manifest, records)] == ["challenge-malformed"]


@pytest.mark.parametrize("data", [{}, {"format": "pot-zk-challenge/1"}, {"format": "other", "steps": []}])
def test_a_malformed_challenge_file_is_a_named_error(data, tmp_path):
    path = tmp_path / "C.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ChallengeError) as error:
        Challenge.load(path)
    assert error.value.reason == "challenge-malformed"


def test_the_size_rule_decides_which_witnesses_a_run_keeps():
    spec = compose_config_spec()
    size = step_witness_bytes(spec)
    assert size == 8 * (2 * 23 + 2 * (4 + 2))
    assert witness_retention(spec, "auto", size).keeps_all
    assert not witness_retention(spec, "auto", size - 1).keeps_all
    assert witness_retention(spec, "all", 0).keeps_all
    assert not witness_retention(spec, "scheduled", 1 << 30).keeps_all
    with pytest.raises(ConfigurationError):
        witness_retention(spec, "some", 0)


def compose_config_spec():
    from pot_zk.config import build

    return build(compose_config(["model=tiny_mlp", "data=synthetic", "train.batch_size=2"], run_dir=".")).plan.spec


def test_an_unproven_run_keeps_every_witness_and_declares_it(unproven):
    manifest = RunBundle.open(unproven).manifest()
    assert manifest["witnesses"]["retained"] == "all" and manifest["witnesses"]["step_bytes"] == 464
    assert sorted(p.name for p in (unproven / "witness").iterdir()) == [f"step-{s:08d}.safetensors" for s in range(6)]


def test_a_run_over_the_size_limit_keeps_none_and_challenge_says_so(tmp_path, capsys):
    run = _unproven_run(tmp_path / "run", "witness.max_step_bytes=100")
    assert RunBundle.open(run).manifest()["witnesses"]["retained"] == "scheduled"
    assert not list((run / "witness").glob("*"))
    assert main(["challenge", str(run), "--count", "2", "--out", str(tmp_path / "C.json")]) == 0
    assert "keeps only the witnesses of its scheduled steps" in capsys.readouterr().out


def test_cli_challenge_then_verify_names_every_unanswered_step(unproven, tmp_path, capsys):
    c_json = tmp_path / "C.json"
    assert main(["challenge", str(unproven), "--count", "3", "--out", str(c_json), "--cache-dir", str(tmp_path / "cache")]) == 0
    written = json.loads(c_json.read_text())
    bundle = RunBundle.open(unproven)
    assert written["head"] == commitment_head(bundle.manifest(), bundle.commitments())
    assert len(bytes.fromhex(written["nonce"])) == 32 and written["count"] == 3 and written["total_steps"] == 6
    assert tuple(written["steps"]) == choose_steps(written["head"], written["nonce"], 3, 6)
    assert verify_run(unproven, cache_dir=tmp_path / "cache").ok, "without the challenge the unproven run verifies"
    report = verify_run(unproven, cache_dir=tmp_path / "cache", challenge=Challenge.load(c_json))
    assert {(f.check, f.reason, f.step) for f in report.findings} == {("challenge", "challenge-unanswered", s) for s in written["steps"]}
    assert report.challenge["issued_by_you"] and report.challenge["steps"] == written["steps"]
    capsys.readouterr()
    assert main(["verify", str(unproven), "--challenge", str(c_json), "--cache-dir", str(tmp_path / "cache")]) == 1
    assert "FAILED challenge (challenge-unanswered)" in capsys.readouterr().out


def test_a_challenge_file_the_auditor_did_not_issue_fails(unproven, tmp_path):
    """The trainer makes its own C.json (a nonce of its choosing, e.g. one whose steps miss what
    it altered) and hands it over: the auditor's trust store holds no such challenge. The same
    head and nonce issued by the auditor with another count are not that challenge either."""
    bundle = RunBundle.open(unproven)
    trainers = new_challenge(bundle.manifest(), bundle.commitments(), 2, "0badc0de")
    report = verify_run(unproven, cache_dir=tmp_path / "cache", challenge=trainers)
    assert ("challenge", "challenge-not-issued") in {(f.check, f.reason) for f in report.findings}
    assert not report.challenge["issued_by_you"]
    assert main(["challenge", str(unproven), "--count", "3", "--nonce", "0badc0de", "--out", str(tmp_path / "mine.json"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    report = verify_run(unproven, cache_dir=tmp_path / "cache", challenge=trainers)
    assert ("challenge", "challenge-not-issued") in {(f.check, f.reason) for f in report.findings}
    mine = verify_run(unproven, cache_dir=tmp_path / "cache", challenge=Challenge.load(tmp_path / "mine.json"))
    assert ("challenge", "challenge-not-issued") not in {(f.check, f.reason) for f in mine.findings} and mine.challenge["issued_by_you"]


def test_cli_challenge_with_a_given_nonce_is_reproducible_and_no_nonce_fails_unless_allowed(unproven, tmp_path, capsys):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    for name in ("a", "b"):
        assert main(["challenge", str(unproven), "--count", "2", "--nonce", "0badc0de", "--out", str(tmp_path / f"{name}.json"), *cache]) == 0
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())
    assert main(["challenge", str(unproven), "--count", "2", "--no-nonce", "--out", str(tmp_path / "n.json"), *cache]) == 0
    assert json.loads((tmp_path / "n.json").read_text())["nonce"] == ""
    refused = verify_run(unproven, cache_dir=tmp_path / "cache", challenge=Challenge.load(tmp_path / "n.json"))
    named = {(f.check, f.reason) for f in refused.findings}
    assert ("challenge", "challenge-no-nonce") in named and ("challenge", "challenge-not-issued") not in named
    allowed = verify_run(unproven, cache_dir=tmp_path / "cache", challenge=Challenge.load(tmp_path / "n.json"), allow_no_nonce=True)
    assert {(f.check, f.reason) for f in allowed.findings} == {("challenge", "challenge-unanswered")}
    assert any("no auditor nonce" in note for note in allowed.notes)
    capsys.readouterr()
    assert main(["challenge", str(unproven), "--count", "7", "--out", str(tmp_path / "x.json"), *cache]) == 2
    assert "ChallengeError" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_cli_challenge_never_overwrites_a_file(unproven, tmp_path, capsys):
    """A review: `--out` onto an earlier challenge replaced it (the trainer may hold that one)."""
    cache = tmp_path / "cache"
    earlier = tmp_path / "C.json"
    earlier.write_text('{"earlier": true}')
    assert main(["challenge", str(unproven), "--count", "2", "--out", str(earlier), "--cache-dir", str(cache)]) == 2
    err = capsys.readouterr().err
    assert f"--out {earlier} exists; name a new file for a challenge (nothing is overwritten)" in err
    assert earlier.read_text() == '{"earlier": true}'
    assert not (cache / "trust").exists(), "nothing recorded for a challenge never written"
    assert main(["challenge", str(unproven), "--count", "2", "--out", str(tmp_path / "nowhere" / "C.json"), "--cache-dir", str(cache)]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_verify_names_a_challenge_for_another_run_or_with_edited_steps(unproven, tmp_path):
    other = _unproven_run(tmp_path / "other", "train.seed=1")
    foreign = new_challenge(RunBundle.open(other).manifest(), RunBundle.open(other).commitments(), 2, "aa")
    report = verify_run(unproven, cache_dir=tmp_path / "cache", challenge=foreign)
    assert [(f.check, f.reason) for f in report.findings] == [("challenge", "challenge-head-mismatch")]
    bundle = RunBundle.open(unproven)
    honest = new_challenge(bundle.manifest(), bundle.commitments(), 2, "aa")
    others = tuple(s for s in range(6) if s not in honest.steps)[:2]
    edited = Challenge(honest.run_id, honest.head, honest.nonce, 2, 6, others)
    report = verify_run(unproven, cache_dir=tmp_path / "cache", challenge=edited)
    assert [(f.check, f.reason) for f in report.findings] == [("challenge", "challenge-steps-mismatch")]


def test_respond_refuses_a_run_trained_without_proving(unproven, tmp_path):
    from pot_zk.runs.respond import respond

    bundle = RunBundle.open(unproven)
    with pytest.raises(ConfigurationError):
        respond(unproven, new_challenge(bundle.manifest(), bundle.commitments(), 1, "aa"))


def test_the_detection_tables_in_the_docs_are_the_scripts():
    spec = importlib.util.spec_from_file_location("challenge_detection", ROOT / "scripts" / "challenge_detection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    detection, tries = module.tables(224, [1, 5, 20], [1, 10, 30, 60])
    docs = (ROOT / "docs" / "runs.md").read_text()
    assert detection in docs and tries in docs
    assert "| 20 | 0.089 | 0.615 | 0.951 | 0.999 |" in detection
    rng = random.Random(0)
    for _ in range(20):
        total = rng.randint(2, 300)
        altered, count = rng.randint(1, total), rng.randint(1, total)
        brute = 1 - _miss_all(total, altered, count)
        assert detection_probability(total, altered, count) == pytest.approx(brute)


def _miss_all(total: int, altered: int, count: int) -> float:
    """P(no altered step among count draws without replacement), as a product."""
    p = 1.0
    for i in range(count):
        p *= max(total - altered - i, 0) / (total - i)
    return p


@pytest.mark.parametrize("line", ["{not json", "[1]"])
def test_a_run_with_a_damaged_commitment_record_is_one_line_for_challenge_respond_and_verify(unproven, tmp_path, capsys, line):
    """Last session's leftover: challenge (and respond) of a bundle whose commitments.jsonl holds a
    line that is not a JSON object showed a traceback; verify called a non-object record a
    verifier-error. Now one line each (exit 2, nothing written), and verify's unreadable-records."""
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(unproven, damaged)
    with (damaged / "commitments.jsonl").open("a") as records:
        records.write(line + "\n")
    bundle = RunBundle.open(unproven)
    challenge = tmp_path / "C.json"
    challenge.write_text(json.dumps(new_challenge(bundle.manifest(), bundle.commitments(), 1, "aa").to_dict()))
    capsys.readouterr()
    assert main(["challenge", str(damaged), "--count", "1", "--out", str(tmp_path / "new.json"), "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "commitments.jsonl line 7 is not a JSON" in err[0] and f"pot-zk verify {damaged} says what is wrong" in err[0], err
    assert not (tmp_path / "new.json").exists()
    assert main(["respond", str(damaged), str(challenge)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "commitments.jsonl line 7 is not a JSON" in err[0], err
    report = verify_run(damaged, cache_dir=tmp_path / "cache")
    assert [(f.check, f.reason) for f in report.findings] == [("steps", "unreadable-records")], report.findings


@pytest.mark.parametrize("state", ["no-end", "interrupted", "held-elsewhere", "torn-tail"])
def test_a_run_whose_training_has_not_completed_is_not_challenged(unproven, tmp_path, capsys, state):
    """review53: `pot-zk challenge` of a run still training said "challenged 2 of 2 steps" (of
    10), recorded the challenge, and respond and verify failed it with challenge-head-mismatch
    once training went on. A run whose training has not completed is refused in one line, and
    nothing is written or recorded. A completed run is challenged whoever a lock record names
    (review54: a record of another host's process, which the trainer can plant, made it
    unchallengeable) and with a last line a kill cut short (as resume reads it)."""
    import shutil

    from pot_zk.runs.lock import HOLDER_FILE
    from pot_zk.testing.bundle_edit import audit_records, rewrite_audit

    run = Path(shutil.copytree(unproven, tmp_path / "run"))
    if state == "held-elsewhere":
        (run / HOLDER_FILE).write_text(json.dumps({"pid": 1, "host": "another-host", "command": "pot-zk train", "since": "now"}))
    elif state == "torn-tail":
        with (run / "audit.jsonl").open("ab") as audit:
            audit.write(b'{"event": "challenge.start", "comm')
    else:
        events = audit_records(run)
        if state == "no-end":
            events = events[:-1]
        else:
            events[-1]["status"] = "interrupted"
        rewrite_audit(run, events)
    cache = tmp_path / "cache"
    code = main(["challenge", str(run), "--count", "2", "--out", str(tmp_path / "C.json"), "--cache-dir", str(cache)])
    if state in ("held-elsewhere", "torn-tail"):
        assert code == 0 and (tmp_path / "C.json").is_file(), capsys.readouterr()
        return
    assert code == 2
    how = "has no end recorded (it is training, or was stopped)" if state == "no-end" else "ended interrupted"
    assert f"the run {how}: its commitment head, which a challenge binds, changes when it is resumed" in capsys.readouterr().err
    assert not (tmp_path / "C.json").exists() and not list(cache.rglob("*challenge*"))
