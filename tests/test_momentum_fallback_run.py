"""A real momentum run whose prover program fails, so its scheduled steps (0 and 2) fall back to
freivalds certificates: the end-of-run "in short" line says what the bundle supports and no
more, and verify rejects a velocity a cheating trainer edits in a certificate or restarts at
zero, every record rewritten to agree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pot_zk.backends.registry import commitments_of, spec_from_dict
from pot_zk.config import compose_config
from pot_zk.runs import bundle as files
from pot_zk.runs.train import train
from pot_zk.runs.summary import summary_lines
from pot_zk.testing.tamper import chain_lines
from pot_zk.verify.run import verify_run


@pytest.fixture(scope="module")
def fallback_run(tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("fallback")
    overrides = [
        "prover=ezkl", "model=tiny_mlp", "model.loss=cross_entropy", "data=synthetic", "train.batch_size=2", "train.max_steps=4",
        "optimizer.momentum=0.9", "optimizer.weight_decay=0.01", "policy=every_k", "policy.k=2", "handler=fallback",
        "retry=none", "prover.binary=/bin/false", "train.progress=false", f"cache_dir={root / 'cache'}", f"run_dir={root / 'run'}",
    ]
    summary = train(compose_config(overrides), sleep=lambda seconds: None)
    assert summary.progress["proof_types"] == {"freivalds": 2}
    return root / "run", summary


def _findings(run: Path, tmp_path: Path) -> set[tuple[str, str, int | None]]:
    """What verify names, besides the selected steps left without a proof (too-few-proven)."""
    return {(f.check, f.reason, f.step) for f in verify_run(run, cache_dir=tmp_path / "cache").findings if f.reason != "too-few-proven"}


def _rewrite(run: Path, changes: dict[int, dict[str, str]]) -> None:
    """Set commitment fields by step in commitments.jsonl and the audit trail (re-chained)."""
    records = [json.loads(line) for line in (run / files.COMMITMENTS).read_text().splitlines()]
    events = [json.loads(line) for line in (run / files.AUDIT).read_text().splitlines()]
    for record in records + [e for e in events if e["event"] == "commitment"]:
        record.update(changes.get(record["step"], {}))
    (run / files.COMMITMENTS).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    (run / files.AUDIT).write_bytes(chain_lines(events))


def test_certificate_steps_of_a_momentum_run_are_not_called_zero_knowledge(fallback_run, tmp_path, capsys):
    run, summary = fallback_run
    print("\n".join(summary_lines(summary)))
    line = next(text for text in capsys.readouterr().out.splitlines() if text.startswith("in short:"))
    assert line.startswith(
        "in short: 2 of 4 steps proven, 2 with freivalds (witness revealed to the verifier): steps 0, 2, each the declared "
        "update within 4 units of 2^-12 of its committed weights and velocity on its committed batch; all 4 committed; held-out accuracy "
    ), line
    assert line.endswith(", measured, not proven") and "zero-knowledge" not in line
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert report.ok and report.coverage == {"freivalds": 2, "commitment-only": 2}, report.summary()
    assert [note for note in report.notes if note.startswith("momentum:")] == [
        "momentum: proven step(s) [2] start from the velocity V_t no proof covers (the step before is not proven): each shows the "
        "update from the state the trainer committed, and any W_t+1 is the update of some such state; proofs of the steps before "
        "them (a challenge) bind it"
    ]
    assert report.to_dict()["state_unbound_steps"] == [2] and report.to_dict()["verified_steps"] == [0, 2]  # review57: in the JSON too


@pytest.mark.parametrize("also_weights", [False, True], ids=["velocity", "velocity-and-weights"])
def test_a_certificate_s_velocity_edited_and_recommitted_is_out_of_tolerance(fallback_run, tmp_path, also_weights):
    """Step 0's revealed V_1 moved (and W_1 with it, W_1 = W_0 - lr V_1, so the weights' residual
    stays zero), recommitted, the certificate, the records and the audit trail rewritten."""
    run = Path(shutil.copytree(fallback_run[0], tmp_path / "run"))
    spec = spec_from_dict(json.loads((run / files.MANIFEST).read_text())["circuit"])
    record = next(json.loads(line) for line in (run / files.PROOFS).read_text().splitlines() if json.loads(line)["step"] == 0)
    certificate = run / record["proof"]
    tensors = load_file(str(certificate.parent / "witness.safetensors"))
    tensors["v_after"][3] += 0.05
    if also_weights:
        tensors["w_after"][3] -= spec.learning_rate * 0.05
    save_file(tensors, str(certificate.parent / "witness.safetensors"))
    scheme = commitments_of(spec)
    v_after, w_after = scheme.commit(tensors["v_after"], "velocity"), scheme.commit(tensors["w_after"], "weights")
    header = json.loads(certificate.read_text())
    header["commitment"].update(v_after=v_after, w_after=w_after)
    certificate.write_text(json.dumps(header))
    _rewrite(run, {0: {"v_after": v_after, "w_after": w_after}, 1: {"v_before": v_after, "w_before": w_after}})
    assert ("proofs", "update-out-of-tolerance", 0) in _findings(run, tmp_path)


def test_a_velocity_restarted_at_zero_before_a_certificate_step_is_a_commitment_mismatch(fallback_run, tmp_path):
    run = Path(shutil.copytree(fallback_run[0], tmp_path / "run"))
    spec = spec_from_dict(json.loads((run / files.MANIFEST).read_text())["circuit"])
    zeros = commitments_of(spec).commit(torch.zeros(spec.architecture.num_params, dtype=torch.float64), "zero velocity")
    _rewrite(run, {1: {"v_after": zeros}, 2: {"v_before": zeros}})
    assert _findings(run, tmp_path) == {("proofs", "commitment-mismatch", 2)}


@pytest.mark.parametrize("field,value,wrong", [("momentum", 0.5, {2}), ("weight_decay", 0.0, {0, 2})])
def test_a_momentum_or_weight_decay_edited_in_the_statement_is_rejected_by_the_certificates(fallback_run, tmp_path, field, value, wrong):
    """The declared momentum (or weight decay) changed, its circuit id recomputed, the audit trail
    rewritten -- and, the second time, every certificate's statement too: the revealed steps are
    not updates of the declared statement (step 0 starts from V_0 = 0, so any momentum fits it)."""
    run = Path(shutil.copytree(fallback_run[0], tmp_path / "run"))
    manifest = json.loads((run / files.MANIFEST).read_text())
    manifest["circuit"]["architecture"][field] = value
    manifest["circuit_id"] = spec_from_dict(manifest["circuit"]).circuit_id()
    (run / files.MANIFEST).write_text(json.dumps(manifest))
    events = [json.loads(line) for line in (run / files.AUDIT).read_text().splitlines()]
    next(e for e in events if e["event"] == "run.start")["manifest"] = manifest
    (run / files.AUDIT).write_bytes(chain_lines(events))
    assert _findings(run, tmp_path) == {("proofs", "wrong-circuit", 0), ("proofs", "wrong-circuit", 2)}
    for certificate in run.glob("proofs/*/certificate.json"):
        header = json.loads(certificate.read_text())
        certificate.write_text(json.dumps({**header, "circuit": manifest["circuit"]}))
    assert _findings(run, tmp_path) == {("proofs", "update-out-of-tolerance", step) for step in wrong}
