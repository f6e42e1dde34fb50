"""`pot-zk train prover=groth16` end to end on digits (a small model): exact training, every step
committed with the zk-groth16 scheme, the selected steps proven through the prover program and its
key holder; `pot-zk verify` accepts the run and names what is wrong with a flipped proof byte, an
edited commitment and W_t+1 moved by one grid step; production refuses dev keys; an auditor's
keys verify only runs proven with them; `train.record_loss=false` hands over no training loss; a
run whose key is gone is not resumed, proven pending or answered with a new one, and goes on with
its key named where it is now, or with nothing left to prove."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
import torch

from pot_zk.backends.groth16.integers import quantise_weights
from pot_zk.backends.groth16.scheme import PackedPoseidon
from pot_zk.backends.registry import spec_from_dict
from pot_zk.config import compose_config
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.runs.bundle import RunBundle, load_model, save_model
from pot_zk.runs.session import RunSummary
from pot_zk.runs.train import train
from pot_zk.runs.summary import proved_line
from pot_zk.testing.bundle_edit import sync_audit
from pot_zk.testing.record_rewrites import _rescore
from pot_zk.testing.tamper import KINDS, chain_lines, judge, tampered_copy
from pot_zk.core.digest import file_sha256
from pot_zk.verify.run import verify_run

from groth16_support import NOT_FOR_EXACT, stop_holders

pytestmark = pytest.mark.prover

PROVEN = (0, 3)


def overrides(run: Path, cache: Path, *extra: str) -> list[str]:
    """Digits (16 features, 10 classes) on a 16-4-10 MLP, batch 4, 6 steps, steps 0 and 3 proven."""
    return [
        "prover=groth16", "model=digits_mlp", "model.loss=mse", "train.learning_rate=0.05", "model.dims=[16,4,10]", "train.batch_size=4", "train.max_steps=6",
        "policy=every_k", "policy.k=3", f"run_dir={run}", f"cache_dir={cache}", "train.progress=false", *extra,
    ]


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    root = tmp_path_factory.mktemp("groth16-run")
    cache, run = root / "cache", root / "run"
    summary = train(compose_config(overrides(run, cache)), sleep=lambda seconds: None)
    stop_holders(cache, RunBundle.open(run).manifest()["circuit"])
    assert summary.status == "completed", summary
    return run, cache


def _copy(honest, tmp_path: Path) -> Path:
    run, _ = honest
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def _findings(report) -> set[tuple[str, str, int | None]]:
    return {(f.check, f.reason, f.step) for f in report.findings}


def test_the_run_trains_exactly_commits_every_step_and_verifies(honest):
    run, cache = honest
    bundle = RunBundle.open(run)
    manifest = bundle.manifest()
    assert manifest["backend"] == "groth16" and manifest["training"]["arithmetic"] == "exact"
    assert manifest["keys"]["provenance"] == "dev"
    spec = spec_from_dict(manifest["circuit"])
    proofs = [r for r in bundle.proofs() if r["status"] == "proved"]
    assert sorted(r["step"] for r in proofs) == list(PROVEN) and {r["proof_type"] for r in proofs} == {"zk-groth16"}
    assert all((run / r["proof"]).stat().st_size == 256 for r in proofs)
    scheme = PackedPoseidon(spec.scale, spec.value_bits)
    kind = STEP_KINDS.get(spec.kind)
    for name, record in (("model_initial.safetensors", bundle.commitments()[0]), ("model_final.safetensors", bundle.commitments()[-1])):
        weights = kind.model_tensors(load_model(run / name)[0], spec.architecture)["weights"]
        quantise_weights(weights.numpy(), spec.scale, spec.value_bits)  # on the grid, or this raises
        assert scheme.commit(weights, name) == record["w_before" if "initial" in name else "w_after"]
    for proof in proofs:  # the circuit's public outputs are the run's commitments
        recorded = next(r for r in bundle.commitments() if r["step"] == proof["step"])
        assert {k: proof["public"]["commitment"][k] for k in ("w_before", "batch", "w_after")} == {k: recorded[k] for k in ("w_before", "batch", "w_after")}
    report = verify_run(run, cache_dir=cache)
    assert report.ok, report.summary()
    assert report.coverage == {"zk-groth16": 2, "commitment-only": 4}
    assert report.verifier_keys["zk-groth16"]["provenance"] == "dev" and any("dev key" in note for note in report.notes)
    line = proved_line(RunSummary(run, "completed", {"steps": 6}, {}))
    assert line.startswith(
        "in short: 2 of 6 steps proven, 2 with zk-groth16 (zero-knowledge; dev keys: whoever made them could forge such proofs): "
        "steps 0, 3, each the declared update of its committed weights on its committed batch"
    ), line


def test_a_proof_that_does_not_verify_for_its_step_is_not_counted_as_proved(honest, tmp_path, make_prover):
    """The trainer checks each zk-groth16 proof its prover program answers with against the
    commitments it recorded for the step, before the step counts as proved. A program that
    answers every request with the honest run's real proof of step 3 (the same statement and
    seed, so the right proof for step 3): step 3 is proved, step 0's answer is a failed attempt
    (the mode's handler: continue), not "proved" with a proof only verify would reject."""
    honest_run, cache = honest
    step_3 = next(r for r in RunBundle.open(honest_run).proofs() if r["step"] == 3 and r["status"] == "proved")
    (tmp_path / "public.json").write_text(json.dumps(step_3["public"]))  # the real program's answer, the key it proved with among it
    lying = make_prover("copied-proof", str(honest_run / step_3["proof"]), str(tmp_path / "public.json"))
    run = tmp_path / "run"
    summary = train(compose_config(overrides(run, cache, f"prover.binary={lying}")), sleep=lambda seconds: None)
    assert summary.status == "completed", summary
    outcomes = {r["step"]: r for r in RunBundle.open(run).proofs()}
    assert {step: (r["status"], r["proof_type"]) for step, r in outcomes.items()} == {0: ("failed", None), 3: ("proved", "zk-groth16")}
    assert outcomes[0]["error"]["error_class"] == "RetryExhaustedError"  # retried, as any program's protocol error is
    assert "ProverProtocolError: the prover program answered ok for step 0, but its zk-groth16 proof does not verify against the step's recorded commitments (invalid-proof" in outcomes[0]["error"]["message"]
    attempts = [e for e in _jsonl(run / "audit.jsonl") if e["event"] == "attempt"]
    assert {(e["step"], e["outcome"], e.get("checked_on_receipt")) for e in attempts} == {(0, "failed", None), (3, "ok", True)}
    [checked] = [e for e in attempts if e["outcome"] == "ok"]
    assert checked["checked_sha256"] == file_sha256(run / outcomes[3]["proof"])
    assert sum(e["step"] == 0 for e in attempts) == 4
    assert verify_run(run, cache_dir=cache).coverage["zk-groth16"] == 1


@pytest.mark.parametrize(
    ("lie", "refusal"),
    [
        ("relabel:zk-halo2", "the zk-groth16 strategy answered step 0 with a proof of type 'zk-halo2', not 'zk-groth16'"),
        ("relabel:reexec", "the zk-groth16 strategy answered step 0 with a proof of type 'reexec', not 'zk-groth16'"),
        ("misreport-key", "(foreign-keys: the program reports verifying key 0000000000000000... for this proof"),
        ("swap-key", "(keys-unavailable: the key in "),
    ],
    ids=["another-proof-type", "a-certificate-s-type", "another-key-reported", "a-key-of-its-own"],
)
def test_a_real_proof_the_program_lies_about_is_not_counted_as_proved(honest, tmp_path, make_prover, lie, refusal):
    """review55: a program that proves for real and then lies. Relabelled as another proof type,
    the answer skipped the check and was recorded, unchecked, as a proof of that type; a proof
    made under a setup of the program's own (which it would know the trapdoor of), swapped into
    the cache, was checked under that key and counted. Each is now a failed attempt: the answer
    must be the strategy's proof type, the key the run declares and the one the response reports."""
    honest_run, honest_cache = honest
    cache = tmp_path / "cache"
    shutil.copytree(honest_cache, cache, ignore=shutil.ignore_patterns("locks"))
    lying = make_prover("wrapped", lie)
    run = tmp_path / "run"
    summary = train(compose_config(overrides(run, cache, f"prover.binary={lying}", "prover.args=[]", "train.max_steps=1", "retry=none")), sleep=lambda seconds: None)
    assert summary.status == "completed", summary
    [outcome] = RunBundle.open(run).proofs()
    assert (outcome["step"], outcome["status"], outcome["proof_type"]) == (0, "failed", None)
    assert refusal in outcome["error"]["message"], outcome["error"]["message"]
    assert verify_run(run, cache_dir=cache).coverage.get("zk-groth16", 0) == 0


def test_a_run_whose_provers_find_no_key_holder_says_so_once(honest, tmp_path, monkeypatch, caplog):
    """review53 O1: when no key holder can be used (here its directory is not private to this
    user), each proof loads its key itself, which costs a key load per proof. The program's
    response carries a note; the run shows it once (two proofs), and each attempt records it."""
    _, cache = honest
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    (temporary / f"pot-zk-groth16-{os.getuid()}").mkdir(mode=0o777)
    (temporary / f"pot-zk-groth16-{os.getuid()}").chmod(0o777)
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", None)  # and back to the session's afterwards: tempfile caches the directory it finds
    run = tmp_path / "run"
    with caplog.at_level("WARNING", logger="pot_zk.console"):
        summary = train(compose_config(overrides(run, cache)), sleep=lambda seconds: None)
    assert summary.status == "completed" and summary.progress["outcomes"]["proved"] == 2, summary
    notes = [r.getMessage() for r in caplog.records if "no key holder" in r.getMessage()]
    assert len(notes) == 1 and notes[0].startswith("zk-groth16: no key holder: the key holders' directory"), caplog.text
    assert "as each proof will until a holder starts" in notes[0]
    attempts = [e for e in _jsonl(run / "audit.jsonl") if e["event"] == "attempt"]
    assert len(attempts) == 2 and all(len(e["notes"]) == 1 for e in attempts)


def test_pot_zk_verify_accepts_it_on_the_command_line(honest):
    run, cache = honest
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pot-zk"), "verify", str(run)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "POT_ZK_CACHE": str(cache)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result: VERIFIED" in done.stdout and "coverage: zk-groth16=2, commitment-only=4" in done.stdout


def test_a_run_with_record_loss_false_hands_over_no_training_loss_and_verifies(honest, tmp_path):
    """``train.record_loss=false``: no step's loss on its private batch in commitments.jsonl, the
    audit trail or the export; the run verifies and its report says the loss is not recorded."""
    from pot_zk.report.run_report import write_report
    from pot_zk.runs.export import export_run

    run = tmp_path / "quiet"
    train(compose_config(overrides(run, honest[1], "train.max_steps=3", "train.record_loss=false")), sleep=lambda seconds: None)
    stop_holders(honest[1], RunBundle.open(run).manifest()["circuit"])
    with tarfile.open(export_run(run, tmp_path / "quiet.tar.gz").archive) as archive:
        handed = {Path(m.name).name: archive.extractfile(m).read().decode() for m in archive.getmembers() if m.name.endswith(".jsonl")}
    commitments = [json.loads(line) for line in handed["commitments.jsonl"].splitlines()]
    events = [json.loads(line) for line in handed["audit.jsonl"].splitlines()]
    steps = [e for e in events if e.get("event") == "commitment"]
    assert len(commitments) == len(steps) == 3 and not [r for r in commitments + steps if "loss" in r]
    held_out = [e for e in events if e.get("event") == "evaluation"]  # the public held-out set's loss stays
    assert held_out and all("loss" in e for e in held_out)
    assert not [e["event"] for e in events if e.get("event") not in ("evaluation", "run.start") and '"loss"' in json.dumps(e)]
    report = verify_run(run, cache_dir=honest[1])
    assert report.ok and report.coverage == {"zk-groth16": 1, "commitment-only": 2}, report.summary()
    markdown = next(p for p in write_report(run, tmp_path / "report") if p.name == "report.md").read_text()
    assert "not in the records (a run with train.record_loss=false)" in markdown


def _own_cache(honest, tmp_path: Path) -> Path:
    """A cache of the run's own holding a copy of the honest run's dev key (no setup)."""
    cache = tmp_path / "cache"
    shutil.copytree(honest[1] / "groth16", cache / "groth16")
    return cache


def _interrupted(run: Path, cache: Path, monkeypatch, at: int, *extra: str) -> Path:
    """The run of ``overrides`` interrupted (a KeyboardInterrupt, as Ctrl-C) as its step ``at - 1`` is checkpointed."""
    from pot_zk.runs import session
    from pot_zk.runs.train import RunInterrupted

    saves, checkpoint = [], session.save_checkpoint

    def interrupting(*args, **kwargs):
        saves.append(1)
        if len(saves) == at:
            raise KeyboardInterrupt
        return checkpoint(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(session, "save_checkpoint", interrupting)
        with pytest.raises(RunInterrupted):
            train(compose_config(overrides(run, cache, *extra)), sleep=lambda s: None)
    stop_holders(cache, RunBundle.open(run).manifest()["circuit"])
    return run


def test_with_its_key_named_where_it_is_now_or_nothing_left_to_prove_a_run_goes_on(honest, tmp_path, monkeypatch):
    """review42: prove-pending's cache_dir= was not used (refused at the cache the jobs were parked
    with), and a resumed run with no step left to prove was refused for a key it does not need."""
    from pot_zk.cli.commands import prove_pending_in_run

    cache = _own_cache(honest, tmp_path)
    parked = tmp_path / "parked"
    train(compose_config(overrides(parked, cache, "handler=retry", "retry=none", "prover.binary=/bin/false")), sleep=lambda s: None)
    done = _interrupted(tmp_path / "done", cache, monkeypatch, 6, "executor=inline")  # steps 0 and 3 proven, 4 and 5 not selected
    assert {r["step"] for r in RunBundle.open(done).proofs() if r["status"] == "proved"} == set(PROVEN)
    moved = tmp_path / "moved-cache"
    cache.rename(moved)
    assert train(compose_config(overrides(done, cache)), resume=True, sleep=lambda s: None).status == "completed"
    assert not cache.exists(), "no key made: none was needed"
    assert prove_pending_in_run(parked, ["prover.binary=pot-zk-groth16-prover", f"cache_dir={moved}"]) == 0
    stop_holders(moved, RunBundle.open(parked).manifest()["circuit"])
    for run in (done, parked):
        assert verify_run(run, cache_dir=moved).ok


def test_a_run_whose_dev_key_is_gone_is_not_resumed_proven_pending_or_answered_with_a_new_key(honest, tmp_path, monkeypatch):
    """review40: with the run's dev key cleared from the cache (a reboot's /tmp, a cleanup),
    resume and prove-pending ran a new setup, reported success, and left a run no verifier
    accepts (every proof under another key than the one the manifest declares, the earlier ones
    without theirs). Now each, and respond, refuses in one line before proving (prove-pending
    before its first audit record); with the key back, each goes on."""
    from pot_zk.cli.commands import prove_pending_in_run
    from pot_zk.core.challenge import new_challenge
    from pot_zk.runs.respond import respond

    cache = _own_cache(honest, tmp_path)
    key_dir = next((cache / "groth16").iterdir())
    parked = tmp_path / "parked"  # every proof parked: the prover program fails, retry=none
    train(compose_config(overrides(parked, cache, "handler=retry", "retry=none", "prover.binary=/bin/false")), sleep=lambda s: None)
    assert [r["status"] for r in RunBundle.open(parked).proofs()] == ["parked", "parked"]
    stopped = _interrupted(tmp_path / "stopped", cache, monkeypatch, 3)  # step 3 still to prove
    shutil.move(key_dir, tmp_path / "kept-key")
    declared = json.loads((stopped / "manifest.json").read_text())["keys"]["vk_sha256"]
    outcomes = lambda: {run: sorted(p.name for p in run.rglob("*")) + [(run / "proofs.jsonl").read_text() if (run / "proofs.jsonl").exists() else ""] for run in (parked, stopped)}  # noqa: E731
    before = outcomes()
    trail = (parked / "audit.jsonl").read_bytes()
    with pytest.raises(ConfigurationError) as refused:
        prove_pending_in_run(parked, [])
    assert (parked / "audit.jsonl").read_bytes() == trail, "review42: the refused prove-pending wrote its session's records first"
    assert refused.value.message.startswith(f"the run's zk-groth16 key (vk sha256 {declared[:16]}...) is not in the cache ({key_dir}: cache_dir): no key is there;")
    with pytest.raises(ConfigurationError) as refused:
        train(compose_config(overrides(stopped, cache)), resume=True)
    assert "no key is there" in refused.value.message
    bundle = RunBundle.open(parked)
    with pytest.raises(ConfigurationError) as refused:  # an auditor's challenge of every step: the parked ones are to prove
        respond(parked, new_challenge(bundle.manifest(), bundle.commitments(), 6, "0f" * 32), sleep=lambda s: None)
    assert "no key is there" in refused.value.message
    assert not key_dir.exists() and outcomes() == before, "nothing made, proven or written"
    shutil.move(tmp_path / "kept-key", key_dir)
    assert prove_pending_in_run(parked, ["prover.binary=pot-zk-groth16-prover"]) == 0
    assert train(compose_config(overrides(stopped, cache)), resume=True, sleep=lambda s: None).status == "completed"
    stop_holders(cache, RunBundle.open(stopped).manifest()["circuit"])
    for run in (parked, stopped):
        assert verify_run(run, cache_dir=cache).ok


def test_a_flipped_proof_byte_is_rejected(honest, tmp_path):
    copy = _copy(honest, tmp_path)
    proof = copy / next(r["proof"] for r in _jsonl(copy / "proofs.jsonl") if r["step"] == 3 and r["status"] == "proved")
    data = bytearray(proof.read_bytes())
    data[37] ^= 0x10
    proof.write_bytes(bytes(data))
    findings = _findings(verify_run(copy, cache_dir=honest[1]))
    assert findings & {("proofs", "invalid-proof", 3), ("proofs", "malformed-proof", 3)}, findings


def _rewrite(copy: Path, step: int, field: str, value: str, also_next: str | None = None) -> None:
    """Replace a commitment in commitments.jsonl and the audit trail (its hash chain rewritten, as
    a tamperer with the whole bundle can)."""
    records = _jsonl(copy / "commitments.jsonl")
    for record in records:
        if record["step"] == step:
            record[field] = value
        if also_next and record["step"] == step + 1:
            record[also_next] = value
    _write_jsonl(copy / "commitments.jsonl", records)
    events = _jsonl(copy / "audit.jsonl")
    for event in events:
        if event.get("event") == "commitment" and event.get("step") == step:
            event[field] = value
        if also_next and event.get("event") == "commitment" and event.get("step") == step + 1:
            event[also_next] = value
    (copy / "audit.jsonl").write_bytes(chain_lines(events))


def test_an_edited_commitment_is_rejected_by_the_proof(honest, tmp_path):
    copy = _copy(honest, tmp_path)
    scheme = PackedPoseidon(12, 16)
    _rewrite(copy, 3, "batch", scheme.commit(torch.zeros(4 * 26, dtype=torch.float64), "zeros"))
    findings = _findings(verify_run(copy, cache_dir=honest[1]))
    assert ("proofs", "invalid-proof", 3) in findings, findings


def test_w_after_moved_by_one_grid_step_is_rejected_by_the_proof(honest, tmp_path):
    """The cheater trains honestly but records W_1 (after step 0) with one weight one grid step
    off, and chains it into step 1: everything but step 0's proof is consistent."""
    copy = _copy(honest, tmp_path)
    run, _ = honest
    witness = RunBundle.open(run).witness_path(0)
    from pot_zk.kinds.registry import load_training_step

    after = load_training_step(witness).flat_after().clone()
    after[5] += 2.0**-12
    moved = PackedPoseidon(12, 16).commit(after, "moved W_1")
    _rewrite(copy, 0, "w_after", moved, also_next="w_before")
    report = verify_run(copy, cache_dir=honest[1])
    findings = _findings(report)
    assert ("proofs", "invalid-proof", 0) in findings, findings
    assert "commitment-chain" in report.passed  # the chain is consistent: only the proof can tell


@pytest.mark.parametrize("name, check", [("model_final.safetensors", "final-model"), ("model_initial.safetensors", "initial-model")])
def test_a_model_file_off_the_grid_by_less_than_half_a_step_is_not_the_proven_model(honest, tmp_path, name, check):
    """review31: the commitment rounds onto the grid, so a model file moved by up to 0.49 grid
    step in every value hashed to the proven W and passed (its held-out scores were those of the
    moved model). An exact statement's weights are its integers: verify names the file."""
    copy = _copy(honest, tmp_path)
    state, metadata = load_model(copy / name)
    generator = torch.Generator().manual_seed(1)
    moved = {key: (t.double() + (torch.rand(t.shape, generator=generator, dtype=torch.float64) - 0.5) * 0.98 * 2.0**-12).to(t.dtype)
             for key, t in state.items()}
    save_model(moved, copy / name, metadata or None)
    _rescore(copy)
    sync_audit(copy)
    report = verify_run(copy, cache_dir=honest[1])
    assert _findings(report) == {(check, "model-off-grid", None)}, report.summary()
    assert f"FAILED {check} (model-off-grid)" in report.summary()


def test_a_float64_model_file_off_the_grid_below_float32_precision_is_not_the_proven_model(honest, tmp_path):
    """review34: model-off-grid is decided in the model file's own precision (checked in float32,
    a float64 file off the grid by less than half a float32 ulp passed)."""
    copy = _copy(honest, tmp_path)
    state, metadata = load_model(copy / "model_final.safetensors")
    moved = {key: t.double() * (1 + 2.0**-30) for key, t in state.items()}  # each non-zero weight off its grid point in float64 only
    assert any(not torch.equal(m, t.double()) for m, t in zip(moved.values(), state.values()))
    assert all(torch.equal(m.float(), t.float()) for m, t in zip(moved.values(), state.values()))
    save_model(moved, copy / "model_final.safetensors", metadata or None)
    _rescore(copy)
    sync_audit(copy)
    report = verify_run(copy, cache_dir=honest[1])
    assert ("final-model", "model-off-grid", None) in _findings(report), report.summary()


def test_a_proof_file_of_a_gibibyte_is_malformed_without_being_read_whole(honest, tmp_path):
    """review31: the proof file was read whole before its 256 bytes were checked (a 512 MiB one:
    785 MB of verify's memory). Peak memory measured in a verify process of its own, against the
    same process verifying the honest run."""
    copy = _copy(honest, tmp_path)
    proof = copy / next(r["proof"] for r in _jsonl(copy / "proofs.jsonl") if r["step"] == 3 and r["status"] == "proved")
    with open(proof, "r+b") as grown:
        grown.truncate(1 << 30)  # sparse: no disk used
    script = (  # VmHWM: this process's own peak (getrusage's ru_maxrss keeps the forking worker's across exec)
        "import re, sys; from pathlib import Path; from pot_zk.verify.run import verify_run; "
        "report = verify_run(Path(sys.argv[1]), cache_dir=Path(sys.argv[2])); "
        "print(sorted((f.reason, f.step) for f in report.findings)); "
        "print(re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text()).group(1))"
    )
    peaks = {}
    for name, run in (("honest", honest[0]), ("grown", copy)):
        done = subprocess.run([sys.executable, "-c", script, str(run), str(honest[1])], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        findings, peak = done.stdout.splitlines()[-2:]
        peaks[name] = int(peak) * 1024
        if name == "grown":
            assert "('malformed-proof', 3)" in findings, findings
    assert peaks["grown"] - peaks["honest"] < 256 << 20, peaks


def test_production_refuses_dev_keys_at_training_and_at_verification(honest, tmp_path):
    run, cache = honest
    with pytest.raises(ConfigurationError, match="refuses dev Groth16 keys") as raised:
        train(compose_config(overrides(tmp_path / "prod", cache, "mode=production")))
    assert raised.value.context["key"] == "srs.path" and not (tmp_path / "prod" / "manifest.json").exists()
    # review24: the dev key directory named as srs.path trained to the end, then failed verify
    dev_dir = cache / "groth16" / json.loads((run / "manifest.json").read_text())["circuit_id"]
    with pytest.raises(ConfigurationError, match=r"refuses dev Groth16 keys \(srs.path=.* holds one: its provenance.json says dev\)"):
        train(compose_config(overrides(tmp_path / "prod", cache, "mode=production", f"srs.path={dev_dir}")))
    assert not (tmp_path / "prod" / "manifest.json").exists()
    copy = _copy(honest, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["mode"] = "production"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    findings = _findings(verify_run(copy, cache_dir=cache))
    assert ("proofs", "dev-keys-refused", None) in findings
    assert ("proofs", "dev-keys-refused", None) not in _findings(verify_run(copy, cache_dir=cache, allow_dev_srs=True))


def test_a_verifier_without_the_run_s_key_cannot_check_it(honest, tmp_path):
    """An export verified on another machine: the finding says what to pass (review23: it did
    not, and the summary's auditor command failed there)."""
    run, cache = honest
    report = verify_run(run, cache_dir=tmp_path / "empty-cache")
    assert ("proofs", "keys-unavailable", None) in _findings(report)
    assert any("pass yours with --keys DIR, or the trainer's dev key directory with --srs DIR" in f.message for f in report.findings)
    key_dir = cache / "groth16" / json.loads((run / "manifest.json").read_text())["circuit_id"]
    handed = verify_run(run, cache_dir=tmp_path / "empty-cache", srs_path=key_dir)
    assert handed.ok and any("dev key" in note for note in handed.notes), handed.summary()


def test_auditor_keys_prove_a_run_only_they_verify(honest, tmp_path):
    run, cache = honest
    spec_overrides = overrides(tmp_path / "unused", cache)[:7]
    pot_zk = str(Path(sys.executable).parent / "pot-zk")
    keys_dir = tmp_path / "auditor-keys"
    done = subprocess.run([pot_zk, "keys", "new", *spec_overrides, "--out", str(keys_dir), "--cache-dir", str(tmp_path / "auditor-cache")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    handed = next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("the trainer proves with"))
    assert handed.startswith("srs.path=")
    # the trainer receives exactly the files listed (review25: without provenance.json its srs.path was refused)
    listed = [Path(p) for p in next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("hand the trainer")).split(", ")]
    received = tmp_path / "received"
    received.mkdir()
    for path in listed:
        shutil.copy(path, received / path.name)
    handed = f"srs.path={received}"
    audited = tmp_path / "audited"
    summary = train(compose_config(overrides(audited, tmp_path / "trainer-cache", handed, "mode=production")), sleep=lambda s: None)
    stop_holders(Path(handed.split("=", 1)[1]), RunBundle.open(audited).manifest()["circuit"])
    assert summary.progress["proof_types"] == {"zk-groth16": 2}
    assert RunBundle.open(audited).manifest()["keys"]["provenance"] == "auditor"
    assert "2 with zk-groth16 (zero-knowledge): steps 0, 3, each the declared update of" in proved_line(summary)
    from pot_zk.backends.keys import KeySet

    keys = KeySet.load(keys_dir)
    report = verify_run(audited, cache_dir=tmp_path / "auditor-cache", keys=keys)
    assert report.ok, report.summary()
    assert "keys" in report.passed and report.verifier_keys["zk-groth16"]["provenance"] == "auditor"
    assert "certificates" not in report.keys["said"]
    # review25: a trust store recorded before file names counted in the fingerprint still knows these keys
    from pot_zk.verify.trust import _legacy_fingerprint, keys_fingerprint

    store = tmp_path / "auditor-cache" / "trust" / "keys"
    (store / f"{keys_fingerprint(keys)}.json").rename(store / f"{_legacy_fingerprint(keys)}.json")
    earlier = verify_run(audited, cache_dir=tmp_path / "auditor-cache", keys=keys)
    assert earlier.ok and ", by an earlier pot-zk;" in earlier.keys["said"], earlier.summary()
    failed = _copy((audited, None), tmp_path / "failed-step")  # step 3's outcome recorded failed (a handler=continue run)
    records = _jsonl(failed / "proofs.jsonl")
    next(r for r in records if r["step"] == 3).update(status="failed", proof=None, proof_type=None)
    (failed / "proofs.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    sync_audit(failed)
    partial = verify_run(failed, cache_dir=tmp_path / "auditor-cache", keys=keys, min_proven=1)
    assert partial.proven == 1 and "certificates" not in partial.keys["said"], partial.keys  # a review: the failed step counted as one
    findings = _findings(verify_run(run, cache_dir=cache, keys=keys))  # the dev-key run, checked with the auditor's keys
    assert ("keys", "foreign-keys", None) in findings and ("proofs", "invalid-proof", 0) in findings


def _as_production(honest, tmp_path: Path) -> Path:
    """A copy of the honest run declaring mode=production (manifest and audit trail rewritten)."""
    copy = _copy(honest, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["mode"] = "production"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    events = _jsonl(copy / "audit.jsonl")
    next(e for e in events if e["event"] == "run.start")["manifest"] = manifest
    (copy / "audit.jsonl").write_bytes(chain_lines(events))
    return copy


def test_a_dev_key_directory_named_with_srs_is_still_a_dev_key(honest, tmp_path):
    """The auditor names the trainer's dev key directory (--srs DIR) instead of holding keys of its
    own: its provenance says dev, so a production run is refused as with the cached key."""
    run, cache = honest
    copy = _as_production(honest, tmp_path)
    directory = cache / "groth16" / json.loads((copy / "manifest.json").read_text())["circuit_id"]
    assert ("proofs", "dev-keys-refused", None) in _findings(verify_run(copy, cache_dir=tmp_path / "empty", srs_path=directory))
    allowed = verify_run(copy, cache_dir=tmp_path / "empty", srs_path=directory, allow_dev_srs=True)
    assert allowed.ok and any("dev key" in note for note in allowed.notes), allowed.summary()


def test_a_key_directory_named_with_srs_that_says_auditor_is_its_own_word_and_verify_says_so(honest, tmp_path):
    """review24: `verify --srs DIR` printed "key provenance (zk-groth16): auditor" from DIR's
    provenance.json as a fact. It is DIR's word: the line and a note say so (--keys is the check).
    review57: the trainer's dev key directory relabelled "auditor" lifted the production run's
    refusal of dev keys (VERIFIED, exit 0): a word verify cannot check does not lift it."""
    run, cache = honest
    copy = _as_production(honest, tmp_path)
    circuit_id = json.loads((copy / "manifest.json").read_text())["circuit_id"]
    relabelled = tmp_path / "keys-dir"
    shutil.copytree(cache / "groth16" / circuit_id, relabelled)
    record = json.loads((relabelled / "provenance.json").read_text())
    (relabelled / "provenance.json").write_text(json.dumps({**record, "provenance": "auditor"}))
    refused = verify_run(copy, cache_dir=tmp_path / "empty", srs_path=relabelled)
    assert not refused.ok and ("proofs", "dev-keys-refused", None) in _findings(refused), refused.summary()
    assert any("whose provenance 'auditor' is its own word, not checked" in f.message and "--allow-dev-srs" in f.message for f in refused.findings)
    assert verify_run(run, cache_dir=tmp_path / "empty", srs_path=relabelled).ok  # a development run: its word, said as such (below)
    report = verify_run(copy, cache_dir=tmp_path / "empty", srs_path=relabelled, allow_dev_srs=True)
    assert report.ok and report.verifier_keys["zk-groth16"]["provenance_checked"] is False, report.summary()
    lines = report.summary().splitlines()
    assert "key provenance (zk-groth16): auditor (the key directory says so, not checked)" in lines
    assert any(line.startswith("note: the zk-groth16 key's provenance 'auditor' is what") and "--keys DIR" in line for line in lines)
    own = verify_run(run, cache_dir=tmp_path / "empty", srs_path=cache / "groth16" / circuit_id, allow_dev_srs=True)
    assert "provenance_checked" not in own.verifier_keys["zk-groth16"]  # dev is said as dev, with its own note


def test_a_cached_dev_key_relabelled_auditor_is_still_a_dev_key(honest, tmp_path):
    """The trainer's dev setup sits in the verifier's cache (a shared machine); the trainer rewrites
    its provenance.json to say "auditor" (vk.bin untouched, so the key still opens). verify takes
    no label from a cache, which only ever holds setups run there: a production run proven with it
    is still refused without --allow-dev-srs, and the report says dev."""
    run, cache = honest
    copy = _as_production(honest, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    relabelled = tmp_path / "cache" / "groth16" / manifest["circuit_id"]
    shutil.copytree(cache / "groth16" / manifest["circuit_id"], relabelled)
    record = json.loads((relabelled / "provenance.json").read_text())
    assert record["provenance"] == "dev"
    (relabelled / "provenance.json").write_text(json.dumps({**record, "provenance": "auditor"}))
    assert ("proofs", "dev-keys-refused", None) in _findings(verify_run(copy, cache_dir=tmp_path / "cache"))
    allowed = verify_run(copy, cache_dir=tmp_path / "cache", allow_dev_srs=True)
    assert allowed.ok, allowed.summary()
    assert allowed.verifier_keys["zk-groth16"]["provenance"] == "dev" and any("dev key" in note for note in allowed.notes)


@pytest.fixture(scope="module")
def other_run(honest, tmp_path_factory) -> Path:
    """Another honest run of the same statement (seed 7) whose proofs a tamperer can replay."""
    run, cache = honest
    other = tmp_path_factory.mktemp("groth16-other") / "run"
    assert train(compose_config(overrides(other, cache, "train.seed=7")), sleep=lambda seconds: None).status == "completed"
    stop_holders(cache, RunBundle.open(other).manifest()["circuit"])
    return other


@pytest.mark.parametrize("kind", sorted(set(KINDS) - set(NOT_FOR_EXACT)))
def test_each_tampering_of_a_groth16_bundle_is_rejected_with_its_named_reason(kind, honest, other_run, tmp_path):
    run, cache = honest
    tampering = tampered_copy(run, tmp_path / "tampered", kind, random.Random(f"groth16-{kind}"), other_run)
    report = verify_run(tmp_path / "tampered", cache_dir=cache, **tampering.options)
    right, why = judge(report, tampering)
    assert right, f"{tampering.detail}: {why}"


@pytest.mark.parametrize("planted", ["provenance-pipe", "source-sparse", "vk-large"])
def test_a_key_directory_whose_files_are_pipes_or_huge_is_refused_without_reading_them(honest, tmp_path, planted):
    """review49: `pot-zk verify RUN --srs DIR`, the trainer's key directory as the messages
    suggest, hung on a provenance.json that was a named pipe and read a 2 GB sparse circuit.circom
    whole (4.4 GB RSS). Each is refused now, named as the keys' finding, and verify returns."""
    import os
    import threading
    import tracemalloc

    directory = next((_own_cache(honest, tmp_path) / "groth16").iterdir())
    if planted == "provenance-pipe":
        (directory / "provenance.json").unlink()
        os.mkfifo(directory / "provenance.json")
    elif planted == "source-sparse":
        with open(directory / "circuit.circom", "r+b") as source:
            source.truncate(2 << 30)
    else:
        with open(directory / "vk.bin", "ab") as vk:
            vk.truncate(2 << 20)
        record = json.loads((directory / "provenance.json").read_text())
        record["vk_sha256"] = file_sha256(directory / "vk.bin")  # the trainer's record names whatever is there
        (directory / "provenance.json").write_text(json.dumps(record))
    done: list = []
    tracemalloc.start()
    try:
        checking = threading.Thread(target=lambda: done.append(verify_run(honest[0], cache_dir=tmp_path / "mine", srs_path=directory)), daemon=True)
        checking.start()
        checking.join(120)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert done, "verify did not return"
    assert peak < 256 << 20, f"verify allocated {peak >> 20} MiB"  # the sparse source was read whole: 4 GiB
    report = done[0]
    assert not report.ok and not any(f.reason == "verifier-error" for f in report.findings), report.summary()
    assert any(f.check == "proofs" for f in report.findings), report.summary()


def test_a_rate_coarse_on_the_grid_is_noted_and_a_usual_one_is_not(honest, tmp_path):
    """review57: at a learning rate under which most updates are below one grid step (lr 4e-6 on
    its 4-3-2 run), each exact step is nearly a sign step on the grid; a schedule falling under
    1 % of its base was noted, a fixed rate was not. Here lr 2e-4: 0.82 grid steps a unit."""
    run, cache = honest
    assert not [note for note in verify_run(run, cache_dir=cache).notes if note.startswith("learning rate:")]  # lr 0.05: 205 grid steps a unit
    coarse = tmp_path / "coarse"
    summary = train(compose_config(overrides(coarse, cache, "train.learning_rate=2e-4", "train.max_steps=1", "policy=every_step")), sleep=lambda s: None)
    stop_holders(cache, RunBundle.open(coarse).manifest()["circuit"])
    assert summary.status == "completed", summary
    report = verify_run(coarse, cache_dir=cache)
    assert report.ok, report.summary()
    [note] = [note for note in report.notes if note.startswith("learning rate:")]
    assert note.startswith("learning rate: at the declared rate, 0.0002, a weight's update is under one grid step (2^-12) wherever what the "
                           "rate multiplies (its gradient; momentum's velocity) is under 1.22 in magnitude")


def test_srs_path_that_is_not_there_or_names_the_key_set_is_one_line_before_the_run(honest, tmp_path):
    """review58: docs/scaling.md named the key set (`keys new --out DIR`) as srs.path, and the
    error said only "not a groth16 key directory"; a path that is not there said the same."""
    run, cache = honest
    missing = tmp_path / "nope"
    with pytest.raises(ConfigurationError) as raised:
        train(compose_config(overrides(tmp_path / "a", cache, f"srs.path={missing}")))
    assert raised.value.context["key"] == "srs.path" and raised.value.message.startswith(f"srs.path={missing}: no such directory")
    circuit_id = RunBundle.open(run).manifest()["circuit_id"]
    with pytest.raises(ConfigurationError) as raised:
        train(compose_config(overrides(tmp_path / "b", cache, f"srs.path={cache / 'groth16'}")))
    assert raised.value.message == f"srs.path={cache / 'groth16'} holds key directories, one per circuit: this run's is srs.path={cache / 'groth16' / circuit_id}"
    assert not (tmp_path / "a" / "manifest.json").exists() and not (tmp_path / "b" / "manifest.json").exists()
