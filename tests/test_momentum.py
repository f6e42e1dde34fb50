"""SGD with momentum (and weight decay): the velocity is captured, committed and chained next to
the weights; the statement, the certificates and verify cover its update (no prover runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pot_zk.backends.ezkl.backend import EZKL
from pot_zk.backends.certificates.freivalds import FreivaldsCertificate, verify_freivalds
from pot_zk.backends.certificates.reexec import ReexecCertificate, verify_reexec
from pot_zk.backends.certificates.revealed import commitment_of
from pot_zk.config import build, compose_config
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError, ProofVerificationError
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import capture_step, load_training_step, save_training_step
from pot_zk.core.protocol import ProverRequest
from pot_zk.runs import bundle as files
from pot_zk.runs.checkpoint import restore_checkpoint, save_checkpoint
from pot_zk.runs.train import train
from pot_zk.testing.tamper import chain_lines
from pot_zk.verify.run import verify_run

CERTIFICATES = {"reexec": (ReexecCertificate, verify_reexec), "freivalds": (FreivaldsCertificate, verify_freivalds)}


def momentum_steps(count: int = 3, weight_decay: float = 0.01, labels: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    model = MlpArchitecture((6, 5, 3)).build()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=weight_decay)
    steps = []
    for _ in range(count):
        targets = torch.randint(0, 3, (4,)) if labels else torch.randn(4, 3)
        steps.append(capture_step(model, optimizer, torch.rand(4, 6), targets))
    return steps, model, optimizer


def residual_ulps(spec, inputs) -> float:
    return float(spec.reference_output(inputs).abs().max()) * 2**spec.scale


def test_a_momentum_step_carries_the_velocity_torch_keeps():
    steps, model, optimizer = momentum_steps()
    first, second, third = steps
    assert first.kind == "momentum" and first.architecture.momentum == 0.9 and first.architecture.weight_decay == 0.01
    assert all(float(v.abs().max()) == 0.0 for v in first.velocity_before.values())  # torch starts from none
    assert all(torch.equal(second.velocity_before[k], first.velocity_after[k]) for k in first.velocity_after)
    buffers = {name: optimizer.state[p]["momentum_buffer"].double() for name, p in model.named_parameters()}
    assert all(torch.equal(third.velocity_after[k], buffers[k]) for k in buffers)


@pytest.mark.parametrize("labels", [True, False], ids=["cross_entropy", "mse"])
def test_the_statement_holds_for_torchs_update_and_not_for_another_velocity_or_weights(labels):
    step = momentum_steps(labels=labels)[0][-1]
    spec = EZKL.statement_for_step(step)
    assert spec.kind == "momentum" and spec.num_outputs == 2 * spec.architecture.num_params
    inputs = [x.values for x in spec.encode(step)]
    assert residual_ulps(spec, inputs) < 0.01  # float32 training against the float64 statement
    names = list(spec.input_names)
    for name, index in (("v_after", 3), ("w_after", 7), ("v_before", 0)):
        tampered = list(inputs)
        tampered[names.index(name)] = inputs[names.index(name)].clone()
        tampered[names.index(name)][index] += 0.01
        assert residual_ulps(spec, tampered) > 5 * spec.tolerance_ulps, name


def test_weight_decay_is_part_of_the_statement():
    step = momentum_steps()[0][-1]
    spec = EZKL.statement_for_step(step)
    undecayed = type(spec)(type(spec.architecture)(spec.architecture.mlp, 0.9, 0.0), spec.batch_size, spec.learning_rate)
    assert undecayed.circuit_id() != spec.circuit_id()
    assert residual_ulps(undecayed, [x.values for x in spec.encode(step)]) > spec.tolerance_ulps


def test_the_step_file_keeps_the_velocity(tmp_path):
    step = momentum_steps()[0][-1]
    save_training_step(step, tmp_path / "step.safetensors")
    loaded = load_training_step(tmp_path / "step.safetensors", "momentum")
    assert loaded.architecture == step.architecture
    assert all(torch.equal(loaded.velocity_after[k], step.velocity_after[k]) for k in step.velocity_after)


def test_dampening_and_nesterov_are_refused_before_the_step_runs():
    torch.manual_seed(0)
    model = MlpArchitecture((6, 5, 3)).build()
    for options in ({"dampening": 0.1}, {"nesterov": True}, {"differentiable": True}):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, **options)
        (key, value), = options.items()
        with pytest.raises(InvalidModelStateError, match=f"without dampening, Nesterov or maximize; this optimizer has {key}={value!r}"):
            capture_step(model, optimizer, torch.rand(4, 6), torch.tensor([0, 1, 2, 0]))
        assert not optimizer.state, "the step must not have run"
    plain = torch.optim.SGD(model.parameters(), lr=0.1, differentiable=True)  # a review: a raw RuntimeError from torch before
    with pytest.raises(InvalidModelStateError, match="only plain SGD is supported"):
        capture_step(model, plain, torch.rand(4, 6), torch.tensor([0, 1, 2, 0]))


@pytest.mark.parametrize("kind", sorted(CERTIFICATES))
def test_certificates_cover_the_velocity(kind, tmp_path):
    strategy, verify = CERTIFICATES[kind]
    step = momentum_steps()[0][-1]
    spec = EZKL.statement_for_step(step)
    save_training_step(step, tmp_path / "step.safetensors")
    job = ProverRequest(0, "momentum", spec.to_dict(), str(tmp_path / "step.safetensors"), str(tmp_path / "cache"), str(tmp_path / kind))
    response = strategy()(job)
    commitment = StepCommitment.from_dict(response.public["commitment"])
    assert commitment.v_before is not None and commitment.v_after is not None
    certificate = Path(response.artifacts["proof"])
    verify(spec, commitment, certificate)
    tensors = load_file(str(certificate.parent / "witness.safetensors"))
    tensors["v_after"][5] += 0.01  # another velocity, committed honestly
    save_file(tensors, str(certificate.parent / "witness.safetensors"))
    with pytest.raises(ProofVerificationError) as wrong_velocity:
        verify(spec, commitment_of({name: tensors[name] for name in spec.input_names}, spec), certificate)
    assert wrong_velocity.value.reason == "update-out-of-tolerance"


def test_optimizer_momentum_makes_momentum_steps_and_weight_decay_needs_it(tmp_path):
    runtime = build(compose_config(["optimizer.momentum=0.9", "optimizer.weight_decay=0.001", f"run_dir={tmp_path}"]))
    assert runtime.plan.spec.kind == "momentum" and runtime.plan.spec.architecture.weight_decay == 0.001
    with pytest.raises(ConfigurationError) as alone:
        build(compose_config(["optimizer.weight_decay=0.001", f"run_dir={tmp_path}"]))
    assert alone.value.key == "optimizer.weight_decay"
    with pytest.raises(ConfigurationError) as lora:
        build(compose_config(["model=lora_tiny", "model.base_run=/nonexistent", "optimizer.momentum=0.9", f"run_dir={tmp_path}"]))
    assert lora.value.key == "optimizer.momentum"
    exact = build(compose_config(["prover=groth16", "optimizer.momentum=0.9", f"run_dir={tmp_path}"])).plan.spec
    assert (exact.backend, exact.kind, exact.architecture.momentum) == ("groth16", "momentum", 0.9)


def test_a_resumed_run_continues_with_the_velocity_it_had(tmp_path):
    steps, model, optimizer = momentum_steps(count=2, seed=1)
    save_checkpoint(tmp_path / "checkpoint.safetensors", model, optimizer, 2)
    fresh = MlpArchitecture((6, 5, 3)).build()
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    assert restore_checkpoint(tmp_path / "checkpoint.safetensors", fresh, fresh_optimizer) == 2
    batch = (torch.rand(4, 6), torch.tensor([2, 0, 1, 1]))
    resumed = capture_step(fresh, fresh_optimizer, *batch)
    original = capture_step(model, optimizer, *batch)
    assert all(torch.equal(resumed.velocity_before[k], steps[-1].velocity_after[k]) for k in resumed.velocity_before)
    assert all(torch.equal(resumed.weights_after[k], original.weights_after[k]) for k in original.weights_after)


@pytest.fixture(scope="module")
def momentum_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("momentum") / "run"
    overrides = ["prover=ezkl", "mode=disabled", "model=tiny_mlp", "model.loss=cross_entropy", "data=synthetic", "train.batch_size=2",
                 "train.max_steps=4", "optimizer.momentum=0.9", "train.progress=false", f"run_dir={run}"]
    assert train(compose_config(overrides)).status == "completed"
    return run


def _rewrite_commitments(run: Path, change) -> None:
    records = [json.loads(line) for line in (run / files.COMMITMENTS).read_text().splitlines()]
    events = [json.loads(line) for line in (run / files.AUDIT).read_text().splitlines()]
    for record in records + [e for e in events if e["event"] == "commitment"]:
        change(record)
    (run / files.COMMITMENTS).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    (run / files.AUDIT).write_bytes(chain_lines(events))


def _findings(run: Path, tmp_path: Path) -> set[tuple[str, str]]:
    return {(f.check, f.reason) for f in verify_run(run, cache_dir=tmp_path / "cache").findings}


def test_a_momentum_run_chains_its_velocity_and_verifies(momentum_run, tmp_path):
    records = [json.loads(line) for line in (momentum_run / files.COMMITMENTS).read_text().splitlines()]
    assert all(a["v_after"] == b["v_before"] and a["w_after"] == b["w_before"] for a, b in zip(records, records[1:]))
    report = verify_run(momentum_run, cache_dir=tmp_path / "cache")
    assert not report.findings, report.summary()
    assert "commitment-chain" in report.passed


def test_a_broken_velocity_chain_and_a_velocity_that_did_not_start_at_zero_are_found(momentum_run, tmp_path):
    broken = Path(shutil.copytree(momentum_run, tmp_path / "broken"))
    other = json.loads((broken / files.COMMITMENTS).read_text().splitlines()[3])["v_after"]
    _rewrite_commitments(broken, lambda r: r.update(v_before=other) if r["step"] == 2 else None)
    assert ("commitment-chain", "chain-broken") in _findings(broken, tmp_path)
    started = Path(shutil.copytree(momentum_run, tmp_path / "started"))
    _rewrite_commitments(started, lambda r: r.update(v_before=other) if r["step"] == 0 else None)
    assert ("commitment-chain", "state-not-zero") in _findings(started, tmp_path)


def test_a_replay_or_a_kept_witness_whose_velocity_is_not_the_recorded_one_is_refused(momentum_run, tmp_path):
    """Answering a challenge: a replayed step, and a kept witness, must reproduce every recorded
    commitment, the velocity's included. The records carry another V_2 (step 1's v_after, step 2's
    v_before), the weights untouched: the replay stops at step 1 instead of writing step 3's
    witness, and a witness of step 1 is refused against the edited record."""
    from pot_zk.exceptions import ChallengeError
    from pot_zk.runs.bundle import RunBundle
    from pot_zk.runs.replay import replay_witnesses
    from pot_zk.runs.respond import check_witness, run_config

    run = Path(shutil.copytree(momentum_run, tmp_path / "run"))
    shutil.rmtree(run / "witness", ignore_errors=True)
    bundle = RunBundle.open(run)
    spec = EZKL.statement_for_step(load_training_step(_replayed(bundle, 1), "momentum"))
    honest_record = next(r for r in bundle.commitments() if r["step"] == 1)
    check_witness(bundle, spec, honest_record)
    other = json.loads((run / files.COMMITMENTS).read_text().splitlines()[0])["v_after"]
    _rewrite_commitments(run, lambda r: r.update(v_after=other) if r["step"] == 1 else r.update(v_before=other) if r["step"] == 2 else None)
    with pytest.raises(ChallengeError) as witness:
        check_witness(bundle, spec, next(r for r in bundle.commitments() if r["step"] == 1))
    assert witness.value.reason == "witness-mismatch" and witness.value.context["fields"] == ["v_after"]
    with pytest.raises(ChallengeError) as replay:
        replay_witnesses(bundle, run_config(bundle, []), [3])
    assert replay.value.reason == "replay-mismatch" and replay.value.context["step"] == 1
    assert replay.value.context["fields"] == ["v_after"] and not bundle.witness_path(3).exists()


def _replayed(bundle, step: int) -> Path:
    from pot_zk.runs.replay import replay_witnesses
    from pot_zk.runs.respond import run_config

    replay_witnesses(bundle, run_config(bundle, []), [step])
    return bundle.witness_path(step)


def test_the_commitment_head_covers_the_velocity(momentum_run, tmp_path):
    """The head the trainer hands over fixes every step's velocity commitments too: otherwise,
    after a challenge, the trainer could rewrite V_t and V_t+1 of a challenged step (and its
    unproven neighbours) so that any W_t+1 is a momentum update (V_t+1 = (W_t - W_t+1) / lr,
    V_t from it), without moving the head the challenge was drawn from."""
    from pot_zk.core.challenge import commitment_head
    from pot_zk.runs.bundle import RunBundle

    bundle = RunBundle.open(momentum_run)
    head = commitment_head(bundle.manifest(), bundle.commitments())
    rewritten = Path(shutil.copytree(momentum_run, tmp_path / "rewritten"))
    other = json.loads((rewritten / files.COMMITMENTS).read_text().splitlines()[0])["v_after"]
    _rewrite_commitments(rewritten, lambda r: r.update(v_after=other) if r["step"] == 1 else r.update(v_before=other) if r["step"] == 2 else None)
    assert _findings(rewritten, tmp_path) == set()  # a consistent chain at steps no proof covers
    report = verify_run(rewritten, cache_dir=tmp_path / "cache", expect_head=head)
    assert {(f.check, f.reason) for f in report.findings} == {("commitment-head", "unexpected-head")}
    assert not verify_run(momentum_run, cache_dir=tmp_path / "cache", expect_head=head).findings


def test_a_momentum_run_whose_records_leave_the_velocity_out_is_refused(momentum_run, tmp_path):
    """Only step 0's V_t kept (zero, as required), every other velocity field dropped: absent
    fields must not chain to absent fields (nor drop out of the commitment head)."""
    stripped = Path(shutil.copytree(momentum_run, tmp_path / "stripped"))

    def strip(record: dict) -> None:
        record.pop("v_after", None)
        if record["step"]:
            record.pop("v_before", None)

    _rewrite_commitments(stripped, strip)
    findings = {(f.check, f.reason, f.step) for f in verify_run(stripped, cache_dir=tmp_path / "cache").findings}
    assert findings == {("commitment-chain", "chain-broken", s) for s in range(4)} | {("steps", "record-not-canonical", s) for s in range(4)}


def _stopped_after_two_steps(tmp_path: Path, velocity_scale: float) -> tuple[Path, list[str]]:
    """A 4-step momentum run as a kill after step 1 leaves it (records of steps 0-1, the trail cut
    before step 2, no final model), its checkpoint the state after step 1 with the velocity
    multiplied by ``velocity_scale``."""
    from pot_zk.runs.bundle import load_model, save_model
    from pot_zk.runs.checkpoint import OPTIMIZER_PREFIX

    common = ["mode=disabled", "model=tiny_mlp", "model.loss=cross_entropy", "data=synthetic", "train.batch_size=2",
              "optimizer.momentum=0.9", "train.progress=false"]
    run, shorter = tmp_path / "run", tmp_path / "shorter"
    overrides = [*common, "train.max_steps=4", f"run_dir={run}"]
    assert train(compose_config(overrides)).status == "completed"
    assert train(compose_config([*common, "train.max_steps=2", f"run_dir={shorter}"])).status == "completed"
    lines = (run / files.COMMITMENTS).read_text().splitlines()
    (run / files.COMMITMENTS).write_text("".join(line + "\n" for line in lines[:2]))
    audit = (run / files.AUDIT).read_text().splitlines()
    cut = next(i for i, line in enumerate(audit) if json.loads(line)["event"] == "commitment" and json.loads(line)["step"] == 2)
    (run / files.AUDIT).write_text("".join(line + "\n" for line in audit[:cut]))
    scores = [line for line in (run / files.EVALUATIONS).read_text().splitlines() if json.loads(line)["after_step"] == 0]
    (run / files.EVALUATIONS).write_text("".join(line + "\n" for line in scores))
    (run / files.FINAL_MODEL).unlink()
    state, metadata = load_model(shorter / files.CHECKPOINT)
    save_model({k: v * velocity_scale if k.startswith(OPTIMIZER_PREFIX + "momentum_buffer.") else v for k, v in state.items()}, run / files.CHECKPOINT, metadata)
    return run, overrides


def test_a_resumed_run_continues_from_the_recorded_velocity_or_refuses(tmp_path):
    from pot_zk.runs.summary import proved_line

    run, overrides = _stopped_after_two_steps(tmp_path / "honest", 1.0)
    summary = train(compose_config(overrides), resume=True)
    assert summary.status == "completed" and summary.progress["steps"] == 2  # this process trained 2 of them
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert not report.findings, report.summary()
    said = proved_line(summary)  # the run's own count, from the bundle
    assert said.startswith("in short: none of the 4 steps proven") and "held-out accuracy" in said, said
    run, overrides = _stopped_after_two_steps(tmp_path / "edited", 2.0)
    with pytest.raises(InvalidModelStateError) as refused:
        train(compose_config(overrides), resume=True)
    assert refused.value.context["step"] == 2 and "v_after" in refused.value.message
    assert len((run / files.COMMITMENTS).read_text().splitlines()) == 2, "nothing recorded for a step that does not continue the run"


def test_a_statement_field_the_proofs_do_not_have_is_refused_not_printed(momentum_run, tmp_path):
    """The trainer adds ``nesterov: true`` (and a note) to the manifest's circuit spec, the audit
    trail rewritten to match: the parsed statement ignores them (same circuit id), so verify
    would print them as if verified. It names the difference and prints the statement it read."""
    edited = Path(shutil.copytree(momentum_run, tmp_path / "edited"))
    manifest = json.loads((edited / files.MANIFEST).read_text())
    manifest["circuit"]["architecture"]["nesterov"] = True
    manifest["circuit"]["reviewed_by"] = "an independent party"
    (edited / files.MANIFEST).write_text(json.dumps(manifest))
    events = [json.loads(line) for line in (edited / files.AUDIT).read_text().splitlines()]
    next(e for e in events if e["event"] == "run.start")["manifest"] = manifest
    (edited / files.AUDIT).write_bytes(chain_lines(events))
    report = verify_run(edited, cache_dir=tmp_path / "cache")
    assert {(f.check, f.reason) for f in report.findings} == {("statement", "statement-not-canonical")}
    assert "nesterov" not in report.statement["architecture"] and "reviewed_by" not in report.statement
