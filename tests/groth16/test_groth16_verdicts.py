"""What VERIFIED means (issue 22), on real zk-groth16 bundles: only proofs verify itself verified
count; the plan is in the commitment head; the weaker statement (batch_order: recorded) is the
auditor's choice; the selected steps are proven or the verdict says so; no bundle makes verify
crash. Each attack is a real bundle edit (pot_zk/testing/verdict_rewrites.py, bundle_edit.py)
and each is FAILED with a named finding."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from jsonschema import Draft202012Validator
from safetensors.torch import save_file

from pot_zk.backends.registry import spec_from_dict
from pot_zk.config import compose_config
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train
from pot_zk.testing.bundle_edit import head_of, jsonl, read_json, sync_audit, write_json, write_jsonl
from pot_zk.testing.verdict_rewrites import launder_status, relabel_recorded
from pot_zk.verify.run import verify_run

from groth16_support import stop_holders

pytestmark = pytest.mark.prover

POT_ZK = str(Path(sys.executable).parent / "pot-zk")


def overrides(run: Path, cache: Path, *extra: str) -> list[str]:
    """Digits on a 16-4-10 MLP (MSE), batch 4, 6 steps, steps 0 and 3 selected."""
    return [
        "prover=groth16", "model=digits_mlp", "model.loss=mse", "train.learning_rate=0.05", "model.dims=[16,4,10]", "train.batch_size=4",
        "train.max_steps=6", "policy=every_k", "policy.k=3", f"run_dir={run}", f"cache_dir={cache}", "train.progress=false", *extra,
    ]


@pytest.fixture(scope="module")
def honest(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("verdicts")
    cache, run = root / "cache", root / "run"
    assert train(compose_config(overrides(run, cache)), sleep=lambda s: None).status == "completed"
    stop_holders(cache, RunBundle.open(run).manifest()["circuit"])
    return run, cache


@pytest.fixture(scope="module")
def failing(honest, tmp_path_factory) -> Path:
    """The same run, its prover program crashing on every attempt: both selected steps failed
    (development mode: recorded, training went on)."""
    _, cache = honest
    root = tmp_path_factory.mktemp("failing")
    crash = root / "crashing-prover"
    crash.write_text("#!/bin/sh\necho 'prover crashed' >&2\nexit 1\n")
    crash.chmod(0o755)
    run = root / "run"
    summary = train(compose_config(overrides(run, cache, f"prover.binary={crash}")), sleep=lambda s: None)
    assert summary.status == "completed" and summary.progress["outcomes"] == {"failed": 2}, summary
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def _named(report) -> set[tuple[str, str, int | None]]:
    return {(f.check, f.reason, f.step) for f in report.findings}


def _verify_cli(run: Path, cache: Path, *args: str, out: Path | None = None) -> tuple[int, str, dict]:
    """``pot-zk verify RUN --json FILE``: exit code, terminal output, the JSON report."""
    out = out or run.parent / "report.json"
    done = subprocess.run([POT_ZK, "verify", str(run), "--cache-dir", str(cache), "--json", str(out), *args],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "POT_ZK_CACHE": str(cache)})
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout + done.stderr, json.loads(out.read_text())


def test_a_failed_run_whose_statuses_are_laundered_to_the_proof_type_is_not_proven(failing, honest, tmp_path):
    """Every proof failed; the trainer rewrites each outcome's status from failed to
    'zk-groth16' and re-chains the audit trail. Before, verify counted the bucket as proven
    (VERIFIED, coverage zk-groth16=2). A status is not a proof."""
    copy = _copy(failing, tmp_path)
    launder_status(copy, random.Random(0), None)
    report = verify_run(copy, cache_dir=honest[1], min_proven=0)
    assert report.verdict == "FAILED" and report.proven == 0
    assert {("proofs", "unknown-status", 0), ("proofs", "unknown-status", 3)} <= _named(report), report.summary()
    assert report.coverage == {"unknown-status": 2, "commitment-only": 4}


def test_the_failed_run_itself_is_failed_by_default_and_unproven_only_when_the_auditor_opts_out(failing, honest):
    report = verify_run(failing, cache_dir=honest[1])
    assert ("proofs", "too-few-proven", None) in _named(report) and report.verdict == "FAILED"
    assert report.selected_steps == [0, 3] and report.selected_without_proof == [0, 3]
    assert report.coverage == {"failed": 2, "commitment-only": 4}
    opted_out = verify_run(failing, cache_dir=honest[1], min_proven=0)
    assert opted_out.verdict == "UNPROVEN" and opted_out.verdict_line == "UNPROVEN: 2 of 2 selected steps have no proof (steps 0, 3)"


def test_proofs_of_steps_the_policy_did_not_select_do_not_stand_in_for_selected_ones(honest, tmp_path):
    """The run proved steps 0 and 3 (every_k, k=3); the trainer declares every_k k=4 (steps 0
    and 4) with the records and audit trail made to agree. Two proofs verify, as many as the
    policy selects, but selected step 4 has none: too-few-proven by default, naming it."""
    copy = _copy(honest[0], tmp_path)
    manifest = read_json(copy / "manifest.json")
    manifest["policy"] = {**manifest["policy"], "k": 4}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    records = jsonl(copy / "commitments.jsonl")
    for record in records:
        record["scheduled"] = record["step"] % 4 == 0
    write_jsonl(copy / "commitments.jsonl", records)
    sync_audit(copy)
    report = verify_run(copy, cache_dir=honest[1])
    assert report.verified_steps == {0, 3} and report.selected_steps == [0, 4], report.summary()
    assert ("proofs", "too-few-proven", None) in _named(report) and report.verdict == "FAILED", report.summary()
    assert any("[4]" in f.message and "do not stand in" in f.message for f in report.findings if f.reason == "too-few-proven")


def test_a_selected_step_without_a_proof_is_named_in_the_verdict(honest, tmp_path):
    """Step 3's proof failed (outcome rewritten, audit re-chained): by default too few proven;
    an auditor who accepts one proof still never reads a bare VERIFIED."""
    copy = _copy(honest[0], tmp_path)
    records = jsonl(copy / "proofs.jsonl")
    for record in records:
        if record["step"] == 3:
            record.update(status="failed", proof=None, error={"error_class": "ProofGenerationError", "message": "prover crashed"})
    write_jsonl(copy / "proofs.jsonl", records)
    sync_audit(copy)
    report = verify_run(copy, cache_dir=honest[1])
    assert ("proofs", "too-few-proven", None) in _named(report), report.summary()
    accepted = verify_run(copy, cache_dir=honest[1], min_proven=1)
    steps = len(jsonl(copy / "commitments.jsonl"))
    line = f"VERIFIED: 1 of {steps} steps proven; 1 of 2 selected steps has no proof (steps 3)"
    assert accepted.ok and accepted.verdict_line == line, accepted.summary()
    code, printed, data = _verify_cli(copy, honest[1], "--min-proven", "1")
    assert code == 0 and f"result: {line}" in printed.splitlines()
    assert data["selected_without_proof"] == [3] and data["verified_steps"] == [0]


def _certificate(copy: Path, step: int, proof_type: str) -> None:
    """A certificate of ``proof_type`` (header and tensors of the run's statement) in place of the
    step's zk-groth16 proof, every record and the audit trail agreeing."""
    spec = spec_from_dict(read_json(copy / "manifest.json")["circuit"])
    directory = copy / "proofs" / f"step-{step:08d}"
    shutil.rmtree(directory)
    directory.mkdir()
    record = next(r for r in jsonl(copy / "commitments.jsonl") if r["step"] == step)
    commitment = {k: record[k] for k in ("w_before", "batch", "w_after", "scale")}
    (directory / "certificate.json").write_text(json.dumps({"proof_type": proof_type, "circuit": spec.to_dict(), "commitment": commitment}))
    save_file({name: torch.zeros(size, dtype=torch.float64) for name, size in spec.input_sizes().items()}, str(directory / "witness.safetensors"))
    records = jsonl(copy / "proofs.jsonl")
    for outcome in records:
        if outcome["step"] == step:
            outcome.update(proof_type=proof_type, strategy=proof_type, proof=f"proofs/step-{step:08d}/certificate.json")
    write_jsonl(copy / "proofs.jsonl", records)
    sync_audit(copy)


def test_a_certificate_type_a_zk_groth16_run_does_not_state_is_a_proof_type_mismatch_and_the_report_is_written(honest, tmp_path):
    """A freivalds certificate checks a float update within a tolerance, not an exact statement:
    the groth16 backend states zk-groth16 and reexec only. (Before the backends' restructure a
    reexec certificate here made the verifier raise AttributeError: a traceback, no --json.)"""
    copy = _copy(honest[0], tmp_path)
    _certificate(copy, 3, "freivalds")
    code, printed, data = _verify_cli(copy, honest[1])
    assert code == 1 and "result: FAILED" in printed
    assert {"check": "proofs", "reason": "proof-type-mismatch", "step": 3} in [{k: f[k] for k in ("check", "reason", "step")} for f in data["findings"]]
    assert data["coverage"] == {"zk-groth16": 1, "rejected": 1, "commitment-only": 4}


def test_a_verifier_that_raises_is_a_finding_of_its_step_and_the_report_is_still_written(honest, tmp_path, monkeypatch, capsys):
    """A verifier bug (here: one that raises on every proof) is a finding of each step it
    checked, never a traceback: the summary and --json are written, the verdict is FAILED."""
    from pot_zk.backends.groth16.backend import Groth16Backend
    from pot_zk.cli.main import main

    def broken(self, statement, proof, keys, cache_dir):
        raise RuntimeError("verifier bug")

    monkeypatch.setattr(Groth16Backend, "verify", broken)
    out = tmp_path / "report.json"
    assert main(["verify", str(honest[0]), "--cache-dir", str(honest[1]), "--json", str(out)]) == 1
    assert "result: FAILED" in capsys.readouterr().out
    findings = {(f["check"], f["reason"], f["step"]) for f in json.loads(out.read_text())["findings"]}
    assert {("proofs", "verifier-error", 0), ("proofs", "verifier-error", 3)} <= findings


def test_a_relabel_to_recorded_after_hand_over_fails_with_the_head_and_without_it(honest, tmp_path):
    """A run trained on a poisoned batch, relabelled batch_order: recorded after its head was
    handed over, so that the data set and initial model are not recomputed. Before, the head did
    not cover the plan and the relabel left notes only: VERIFIED."""
    copy = _copy(honest[0], tmp_path)
    tampering = relabel_recorded(copy, random.Random(1), None)
    cache = honest[1]
    assert ("commitment-head", "unexpected-head", None) in _named(verify_run(copy, cache_dir=cache, **tampering.options))
    bare = _named(verify_run(copy, cache_dir=cache))
    assert {("steps", "setting-not-default", None), ("dataset-root", "root-not-pinned", None), ("initial-model", "initial-not-pinned", 0)} <= bare
    first = jsonl(copy / "commitments.jsonl")[0]["w_before"]
    pinned = verify_run(copy, cache_dir=cache, accept_settings={"batch_order": "recorded"}, expect_root=read_json(copy / "manifest.json")["dataset"]["root"],
                        expect_initial=first)
    assert _named(pinned) == {("dataset-root", "dataset-samples", None)}, pinned.summary()


def test_the_head_printed_at_the_end_of_training_covers_the_plan(honest, tmp_path):
    """The head the trainer handed over is the one verify recomputes, and a policy or schedule
    edit after hand-over moves it."""
    run, cache = honest
    handed_over = next(e for e in jsonl(run / "audit.jsonl") if e.get("event") == "run.end")["head"]
    assert head_of(run) == handed_over and verify_run(run, cache_dir=cache, expect_head=handed_over).ok
    copy = _copy(run, tmp_path)
    manifest = read_json(copy / "manifest.json")
    manifest["training"]["epochs"] = 2
    (copy / "manifest.json").write_text(json.dumps(manifest))
    sync_audit(copy)
    assert ("commitment-head", "unexpected-head", None) in _named(verify_run(copy, cache_dir=cache, expect_head=handed_over))


def test_a_keys_directory_the_trainer_sent_back_is_not_the_auditors(honest, tmp_path):
    """The trainer runs `pot-zk keys new` itself (it knows the setup's trapdoor), proves with
    those keys and hands the directory to the auditor as if it were the auditor's own. Before,
    verify --keys printed "generated by you" from its keys.json and said VERIFIED. The auditor's
    trust store never saw those keys: keys-untrusted. The same directory recorded by the auditor
    (its own keys new) is trusted."""
    _, cache = honest
    keys_dir = tmp_path / "trainers-keys"
    made = subprocess.run([POT_ZK, "keys", "new", *overrides(tmp_path / "unused", cache)[:7], "--out", str(keys_dir),
                           "--cache-dir", str(tmp_path / "trainer-cache")], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"recorded in your trust store: {tmp_path / 'trainer-cache' / 'trust'}" in made.stdout
    handed = next(line.split(": ", 1)[1] for line in made.stdout.splitlines() if line.startswith("the trainer proves with"))
    run = tmp_path / "run"
    assert train(compose_config(overrides(run, tmp_path / "trainer-cache", handed)), sleep=lambda s: None).status == "completed"
    stop_holders(Path(handed.split("=", 1)[1]), RunBundle.open(run).manifest()["circuit"])
    auditor = tmp_path / "auditor-cache"
    code, printed, data = _verify_cli(run, auditor, "--keys", str(keys_dir))
    assert code == 1 and ("keys", "keys-untrusted", None) in {(f["check"], f["reason"], f["step"]) for f in data["findings"]}
    assert "generated by you" not in printed and "NOT in your trust store" in printed and data["keys"]["in_trust_store"] is False
    from pot_zk.backends.keys import KeySet

    trainers = verify_run(run, cache_dir=tmp_path / "trainer-cache", keys=KeySet.load(keys_dir))
    assert trainers.ok and trainers.keys["said"].startswith("generated by you"), trainers.summary()
    # review60: the same keys for a production-mode run: their provenance ("auditor") is keys.json's word, as with --srs
    production = Path(shutil.copytree(run, tmp_path / "production"))
    write_json(production / "manifest.json", {**read_json(production / "manifest.json"), "mode": "production"})
    sync_audit(production)
    refused = _named(verify_run(production, cache_dir=auditor, keys=KeySet.load(keys_dir)))
    assert {("keys", "keys-untrusted", None), ("proofs", "dev-keys-refused", None)} <= refused, refused
    assert verify_run(production, cache_dir=tmp_path / "trainer-cache", keys=KeySet.load(keys_dir)).ok  # trusted where they were made


FAKE_CIRCUIT = """pragma circom 2.0.0;
template Nothing(n) { signal input p[n]; signal sq[n]; for (var i = 0; i < n; i++) { sq[i] <== p[i] * p[i]; } }
component main {public [p]} = Nothing(%d);
"""


def test_dev_keys_are_the_trainers_word_and_the_auditors_own_keys_close_it(honest, tmp_path):
    """What verify deliberately does not check (docs/proofs.md, "with dev keys"): whoever ran the
    dev setup can prove anything. The trainer puts the keys of a circuit that checks nothing
    into its dev key directory, rewrites the run as "trained nothing" (every W_t+1 = W_0) and
    proves it: verify with that cache says VERIFIED, with the dev-key note -- the mode that
    would refuse dev keys (production) is the trainer's declaration. The auditor's own keys
    (--keys, from `pot-zk keys new`) close it: the forged proofs are foreign and invalid."""
    from pot_zk.backends.groth16 import adapter
    from pot_zk.core.digest import file_sha256
    from pot_zk.testing.bundle_edit import write_json

    run, cache = _copy(honest[0], tmp_path), tmp_path / "trainer-cache"
    shutil.copytree(honest[1], cache)
    manifest = read_json(run / "manifest.json")
    key_dir = cache / "groth16" / manifest["circuit_id"]
    count = adapter.public_count(adapter.load_verifying_key(key_dir / "vk.bin"))
    (tmp_path / "fake.circom").write_text(FAKE_CIRCUIT % count)
    fake_pk, fake_vk, _ = adapter.setup(tmp_path / "fake.circom")
    adapter.save_keys(fake_pk, fake_vk, key_dir)
    provenance = read_json(key_dir / "provenance.json")
    provenance["vk_sha256"] = manifest["keys"]["vk_sha256"] = file_sha256(key_dir / "vk.bin")
    write_json(key_dir / "provenance.json", provenance)
    write_json(run / "manifest.json", manifest)
    records = jsonl(run / "commitments.jsonl")
    for record in records:
        record["w_before"] = record["w_after"] = records[0]["w_before"]
    write_jsonl(run / "commitments.jsonl", records)
    shutil.copy(run / "model_initial.safetensors", run / "model_final.safetensors")
    scores = jsonl(run / "evaluations.jsonl")
    write_jsonl(run / "evaluations.jsonl", [{**score, **{k: v for k, v in scores[0].items() if k != "after_step"}} for score in scores])
    spec = spec_from_dict(manifest["circuit"])
    for proof in jsonl(run / "proofs.jsonl"):
        commitments = next(r for r in records if r["step"] == proof["step"])
        public = [int(value, 16) for value in spec.public_values(commitments, None).values()]
        (run / proof["proof"]).write_bytes(adapter.prove(fake_pk, {"p": public}))
    sync_audit(run)
    forged = verify_run(run, cache_dir=cache)
    assert forged.ok and forged.verified_steps == {0, 3}, forged.summary()
    assert any("dev key" in note and "could forge" in note for note in forged.notes)
    made = subprocess.run([POT_ZK, "keys", "new", *overrides(tmp_path / "unused", tmp_path / "auditor-cache")[:7], "--out", str(tmp_path / "keys"),
                           "--cache-dir", str(tmp_path / "auditor-cache")], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stdout + made.stderr
    from pot_zk.backends.keys import KeySet

    closed = verify_run(run, cache_dir=tmp_path / "auditor-cache", keys=KeySet.load(tmp_path / "keys"))
    assert closed.verdict == "FAILED" and {("proofs", "invalid-proof", 0), ("proofs", "invalid-proof", 3)} <= _named(closed), closed.summary()

    # review24: the trainer hands back a key directory rebuilt from the auditor's files it was
    # given: keys.json lists the auditor's SHA-256s but points `vk` (and `provenance`) at copies,
    # while vk.bin beside them is the trainer's key of the circuit that checks nothing; the forged
    # run declares the auditor's key. Before: VERIFIED, "generated by you".
    auditors = KeySet.load(tmp_path / "keys")
    cid = manifest["circuit_id"]
    back = tmp_path / "handed-back"
    shutil.copytree(tmp_path / "keys", back)
    for name in ("vk", "provenance"):
        suffix = ".bin" if name == "vk" else ".json"
        shutil.copy(back / cid / f"{name}{suffix}", back / cid / f"{name}.auditor{suffix}")
    listed = read_json(back / "keys.json")
    listed["files"].update(vk=f"{cid}/vk.auditor.bin", provenance=f"{cid}/provenance.auditor.json")
    write_json(back / "keys.json", listed)
    shutil.copy(key_dir / "vk.bin", back / cid / "vk.bin")
    provenance = read_json(back / cid / "provenance.json")
    write_json(back / cid / "provenance.json", {**provenance, "vk_sha256": file_sha256(back / cid / "vk.bin")})
    manifest["keys"]["vk_sha256"] = auditors.sha256["vk"]
    write_json(run / "manifest.json", manifest)
    proofs = jsonl(run / "proofs.jsonl")
    for proof in proofs:
        proof["public"]["keys"]["vk_sha256"] = auditors.sha256["vk"]
    write_jsonl(run / "proofs.jsonl", proofs)
    sync_audit(run)
    redirected = verify_run(run, cache_dir=tmp_path / "auditor-cache", keys=KeySet.load(back))
    assert redirected.verdict == "FAILED" and {("keys", "keys-untrusted", None), ("keys", "keys-layout", None)} <= _named(redirected), redirected.summary()
    assert not redirected.keys["said"].startswith("generated by you")


SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "verify.schema.json").read_text())


def test_the_json_report_of_every_verdict_fits_the_published_schema(honest, failing, tmp_path):
    """docs/verify.schema.json against real `pot-zk verify --json` outputs: VERIFIED, FAILED,
    UNPROVEN and one with a challenge; and the schema rejects a report that breaks it."""
    Draft202012Validator.check_schema(SCHEMA)
    validator = Draft202012Validator(SCHEMA)
    run, cache = honest
    challenge = tmp_path / "C.json"
    issued = subprocess.run([POT_ZK, "challenge", str(run), "--count", "2", "--out", str(challenge), "--cache-dir", str(cache)],
                            capture_output=True, text=True, timeout=300)
    assert issued.returncode == 0, issued.stderr
    outputs = {
        "VERIFIED": _verify_cli(run, cache, out=tmp_path / "verified.json"),
        "FAILED": _verify_cli(failing, cache, out=tmp_path / "failed.json"),
        "UNPROVEN": _verify_cli(failing, cache, "--min-proven", "0", out=tmp_path / "unproven.json"),
        "challenge": _verify_cli(run, cache, "--challenge", str(challenge), out=tmp_path / "challenge.json"),
    }
    for kind, (code, printed, report) in outputs.items():
        assert not list(validator.iter_errors(report)), (kind, [e.message for e in validator.iter_errors(report)])
        assert code == {"VERIFIED": 0, "FAILED": 1, "UNPROVEN": 3}[report["verdict"]] and f"result: {report['verdict_line']}" in printed
    assert [outputs[kind][2]["verdict"] for kind in ("VERIFIED", "FAILED", "UNPROVEN")] == ["VERIFIED", "FAILED", "UNPROVEN"]
    assert outputs["challenge"][2]["challenge"]["issued_by_you"] and outputs["challenge"][2]["challenge"]["steps"]
    verified = outputs["VERIFIED"][2]
    for broken in (
        {**verified, "findings": [{"check": "proofs", "reason": "invalid-proof", "message": "x", "step": 3}]},
        {**verified, "proven": 0, "verified_steps": []},
        {**verified, "coverage": {"zk-groth16": 0}},
        {**verified, "verdict_line": "VERIFIED!"},
        {**verified, "surprise": True},
    ):
        assert list(validator.iter_errors(broken)), broken


def test_pot_zk_verify_of_a_run_loads_none_of_the_trainers_modules(honest):
    """The registries import by name: only running verify shows what it loads."""
    from test_architecture import trainer_modules

    run, cache = honest
    code = (f"import contextlib, io\nfrom pot_zk.cli.main import main\nwith contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['verify', {str(run)!r}, '--cache-dir', {str(cache)!r}]) == 0")
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('pot_zk'))))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert "pot_zk.backends.groth16.verifier" in loaded and trainer_modules(loaded) == [], loaded


@pytest.mark.parametrize("form", ["uppercase", "no-prefix", "plus-modulus"])
def test_an_unproven_steps_commitment_in_another_form_is_no_new_head(honest, tmp_path, form):
    """review36: the commitments of a step no proof opens (step 1 of this every_k=3 run) were
    checked only against each other, so writing W_1 in another form in both records that hold
    it gave the run another commitment head, verified. Verify accepts only the form pot-zk writes."""
    from pot_zk.backends.groth16.integers import FIELD_MODULUS

    run, cache = honest
    copy = _copy(run, tmp_path)
    records = jsonl(copy / "commitments.jsonl")
    value = records[1]["w_after"]
    other = {"uppercase": "0x" + value[2:].upper(), "no-prefix": value[2:],
             "plus-modulus": f"0x{int(value, 16) + FIELD_MODULUS:064x}"}[form]
    assert int(other.removeprefix("0x"), 16) % FIELD_MODULUS == int(value, 16) % FIELD_MODULUS and len(other) <= 66
    records[1]["w_after"] = records[2]["w_before"] = other
    write_jsonl(copy / "commitments.jsonl", records)
    sync_audit(copy)
    assert head_of(copy) != head_of(run)
    report = verify_run(copy, cache_dir=cache)
    assert _named(report) == {("steps", "record-not-canonical", 1), ("steps", "record-not-canonical", 2)}, report.summary()
