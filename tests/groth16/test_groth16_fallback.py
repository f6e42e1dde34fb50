"""``prover=groth16 handler=fallback``: a failed exact proof falls back to a labelled ``reexec``
certificate, which the verifier checks with the statement's own integer step (no tolerance);
``freivalds`` (a float update within a tolerance) cannot stand in for an exact proof and is
refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from pot_zk.backends.certificates.reexec import verify_reexec
from pot_zk.backends.certificates.revealed import CERTIFICATE, WITNESS, commitment_of
from pot_zk.backends.registry import spec_from_dict
from pot_zk.config import build, compose_config
from pot_zk.exceptions import ConfigurationError, ProofVerificationError
from pot_zk.runs import bundle as files
from pot_zk.runs.train import train
from pot_zk.verify.run import verify_run

TINY = ["prover=groth16", "model=tiny_mlp", "model.loss=mse", "data=synthetic", "train.batch_size=2", "train.max_steps=3", "train.progress=false"]


@pytest.fixture(scope="module")
def fallback_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("g16-fallback")
    overrides = [*TINY, "policy=every_step", "handler=fallback", "retry=none", "prover.binary=/bin/false",
                 f"cache_dir={root / 'cache'}", f"run_dir={root / 'run'}"]
    summary = train(compose_config(overrides), sleep=lambda seconds: None)
    assert summary.progress["proof_types"] == {"reexec": 3}, summary.progress
    return root / "run"


def test_a_failed_exact_proof_falls_back_to_a_reexec_certificate_that_verifies(fallback_run, tmp_path):
    outcomes = [json.loads(line) for line in (fallback_run / files.PROOFS).read_text().splitlines()]
    assert {(r["step"], r["status"], r["proof_type"]) for r in outcomes if r["status"] == "proved"} == {(s, "proved", "reexec") for s in range(3)}
    report = verify_run(fallback_run, cache_dir=tmp_path / "verifier")
    assert report.ok, report.summary()
    assert report.coverage.get("reexec") == 3


def test_a_reexec_certificate_one_grid_step_off_the_exact_update_is_rejected(fallback_run, tmp_path):
    """The certificate's W_t+1 moved by one unit of 2**-scale and recommitted (so the revealed
    values bind to the commitments it is checked against): exact means no tolerance."""
    spec = spec_from_dict(json.loads((fallback_run / files.MANIFEST).read_text())["circuit"])
    record = next(r for r in map(json.loads, (fallback_run / files.PROOFS).read_text().splitlines()) if r["step"] == 1)
    certificate = fallback_run / record["proof"]
    forged = tmp_path / "forged"
    forged.mkdir()
    tensors = load_file(str(certificate.parent / WITNESS))
    verify_reexec(spec, commitment_of({name: tensors[name] for name in spec.input_names}, spec), certificate)  # the honest one holds
    tensors["w_after"] = tensors["w_after"].clone()
    tensors["w_after"][0] += 2.0**-spec.scale
    save_file(tensors, str(forged / WITNESS))
    commitment = commitment_of({name: tensors[name] for name in spec.input_names}, spec)
    header = json.loads(certificate.read_text())
    (forged / CERTIFICATE).write_text(json.dumps({**header, "commitment": commitment.to_dict()}))
    with pytest.raises(ProofVerificationError) as rejected:
        verify_reexec(spec, commitment, forged / CERTIFICATE)
    assert rejected.value.reason == "update-out-of-tolerance"
    assert "differs from the recomputed update by 1 ulps (tolerance 0)" in rejected.value.message


def test_freivalds_cannot_stand_in_for_an_exact_proof(tmp_path):
    with pytest.raises(ConfigurationError, match="freivalds cannot serve the groth16 sgd statement") as refused:
        build(compose_config([*TINY, "handler=fallback", "handler.fallback_chain=[freivalds,reexec]"], run_dir=tmp_path / "run"))
    assert refused.value.context["key"] == "handler.fallback_chain"
    assert not (tmp_path / "run").exists()
    runtime = build(compose_config([*TINY, "handler=fallback"], run_dir=tmp_path / "run"))
    assert runtime.config["handler"]["fallback_chain"] == ["reexec"]
