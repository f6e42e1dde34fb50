"""The statement verify checks is the auditor's: the manifest's circuit id is its spec's own,
and a setting other than the statement's default (param_scale, scale, decomposition...) is a
named failure unless the auditor accepts that value. A model file with extra tensors is not
the committed model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pot_zk.backends.registry import spec_from_dict
from pot_zk.cli.main import main
from pot_zk.runs.bundle import FINAL_MODEL, MANIFEST, load_model, save_model
from pot_zk.testing.bundle_edit import read_json, sync_audit, write_json
from pot_zk.verify.run import verify_run

pytestmark = pytest.mark.prover


def _edited(honest: Path, tmp_path: Path, edit) -> Path:
    run = tmp_path / "run"
    shutil.copytree(honest, run)
    manifest = read_json(run / MANIFEST)
    edit(manifest)
    write_json(run / MANIFEST, manifest)
    sync_audit(run)
    return run


def _statement_findings(report) -> set[tuple[str, str]]:
    return {(f.check, f.reason) for f in report.findings if f.check == "statement"}


def test_the_honest_statement_passes_its_settings_check_and_is_printed_whole(honest_runs, zk_cache, capsys):
    report = verify_run(honest_runs.run, cache_dir=zk_cache)
    assert report.verdict == "VERIFIED" and "statement-settings" in report.passed
    assert report.statement["param_scale"] == 20 and "decomp_legs" in report.statement


def test_a_param_scale_that_rounds_the_step_away_is_refused_unless_the_auditor_accepts_it(honest_runs, zk_cache, tmp_path, capsys):
    """param_scale=1 makes c round to 0: the circuit would accept W_t+1 = W_t."""

    def edit(manifest):
        manifest["circuit"]["param_scale"] = 1
        manifest["circuit_id"] = spec_from_dict(manifest["circuit"]).circuit_id()

    run = _edited(honest_runs.run, tmp_path, edit)
    report = verify_run(run, cache_dir=zk_cache)
    assert ("statement", "setting-not-default") in _statement_findings(report)
    assert "param_scale=1" in report.summary()
    accepted = verify_run(run, cache_dir=zk_cache, accept_settings={"param_scale": "1"})
    assert ("statement", "setting-not-default") not in _statement_findings(accepted)

    assert main(["verify", str(run), "--cache-dir", str(zk_cache)]) == 1
    assert "FAILED statement (setting-not-default)" in capsys.readouterr().out
    assert main(["verify", str(run), "--cache-dir", str(zk_cache), "--accept-setting", "nonsense=3"]) == 2
    assert capsys.readouterr().err.startswith("pot-zk verify: --accept-setting names ['nonsense'], not settings of the sgd statement")


def test_a_circuit_id_that_is_not_the_specs_own_is_a_named_failure(honest_runs, zk_cache, tmp_path):
    def edit(manifest):
        manifest["circuit_id"] = "0" * 64

    report = verify_run(_edited(honest_runs.run, tmp_path, edit), cache_dir=zk_cache)
    assert ("statement", "circuit-id-mismatch") in _statement_findings(report)


def test_a_final_model_with_an_extra_tensor_is_not_the_committed_model(honest_runs, zk_cache, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(honest_runs.run, run)
    state, metadata = load_model(run / FINAL_MODEL)
    state["trigger.weight"] = next(iter(state.values())).clone()
    save_model(state, run / FINAL_MODEL, metadata)
    report = verify_run(run, cache_dir=zk_cache)
    assert ("final-model", "missing-model") in {(f.check, f.reason) for f in report.findings}, report.summary()
