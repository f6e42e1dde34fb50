"""The seed's two usage examples, verbatim (only the import path changed), with the real prover
on a tiny model: each prints a proof type or a success rate, and the proof verifies."""

from __future__ import annotations

import json

import pytest

from pot_zk.auto_prover import AutoProver, training_step

from seed_examples import LEARNING_RATE, SEED_AUDITOR_INTEGRATION, SEED_AUTO_PROVER, run_example, seed_namespace

pytestmark = pytest.mark.prover


@pytest.fixture
def seed_dir(tmp_path, monkeypatch, zk_cache):
    """An empty working directory; the configured cache_dir (POT_ZK_CACHE) holds the keys."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("POT_ZK_CACHE", str(zk_cache))
    monkeypatch.delenv("POT_ZK_PROVER", raising=False)
    return work


def verifies(namespace: dict, zk_cache, tmp_path) -> bool:
    step = training_step(namespace["model_before"], namespace["model_after"], namespace["batch_data"], LEARNING_RATE)
    with AutoProver(tmp_path / "verifier", [f"cache_dir={zk_cache}"]) as verifier:
        return verifier.verify(step, namespace["result"]).ok


def test_the_auto_prover_example_prints_the_proof_type_of_a_real_proof(seed_dir, zk_cache, tmp_path, capsys):
    namespace = run_example(SEED_AUTO_PROVER, seed_namespace())
    assert capsys.readouterr().out.strip().splitlines()[-1] == "Proof generated: zk-halo2"
    (run,) = (seed_dir / "outputs" / "auto_prover").iterdir()
    assert namespace["result"].proof_path.parent == run / "proofs" / "step-00000000"
    assert verifies(namespace, zk_cache, tmp_path)


def test_the_auditor_integration_example_prints_the_success_rate_of_a_real_proof(seed_dir, zk_cache, tmp_path, capsys):
    namespace = run_example(SEED_AUDITOR_INTEGRATION, seed_namespace())
    assert capsys.readouterr().out.strip().splitlines()[-1] == "Success rate: 100.0%"
    result = namespace["result"]
    assert (result["proof_type"], result["step"], result["epoch"], result["attempts"]) == ("zk-halo2", 1, 1, 1)
    (run,) = (seed_dir / "outputs" / "zk_integration").iterdir()
    request_cache = json.loads((run / "audit.jsonl").read_text().splitlines()[0])["config"]["cache_dir"]
    assert request_cache == str(zk_cache) and not (run / "cache").exists()
    assert verifies(namespace, zk_cache, tmp_path)
