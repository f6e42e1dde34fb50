"""The proofs.jsonl / audit trail agreement rule and the auditor's references as values (no
prover: whole bundles are in tests/zk/test_trust.py and test_reliability.py)."""

from __future__ import annotations

import pytest

from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.backends.ezkl.sgd import SgdCircuitSpec
from pot_zk.verify.references import Expectations, check_tolerance, default_tolerance
from pot_zk.verify.run import RunReport
from pot_zk.verify.run_checks import check_outcomes_recorded


def _outcome(step: int, status: str = "proved", proof_type: str | None = "zk-halo2", strategy: str | None = "zk-halo2") -> dict:
    return {"step": step, "status": status, "proof_type": proof_type, "strategy": strategy}


def _mismatches(proofs: list[dict], audited: list[dict]) -> list[int | None]:
    report = RunReport(run=None)
    events = [{"event": "run.start"}, *({"event": "proof.result", **a} for a in audited)]
    check_outcomes_recorded(report, proofs, events)
    assert {(f.check, f.reason) for f in report.findings} <= {("proofs", "record-mismatch")}
    return [f.step for f in report.findings]


def test_an_outcome_the_audit_trail_did_not_record_is_a_record_mismatch():
    honest = [_outcome(0), _outcome(75, "failed", None, None), _outcome(150, "proved", "reexec", "reexec")]
    assert _mismatches(honest, honest) == []
    assert _mismatches([honest[0], _outcome(75, "proved"), honest[2]], honest) == [75]
    assert _mismatches([_outcome(s["step"], "failed", None, None) for s in honest], honest) == [0, 150]
    assert _mismatches([honest[0], _outcome(150, "proved", "zk-halo2", "zk-halo2")], honest) == [75, 150]


def test_a_step_proven_again_after_a_resume_may_have_an_earlier_audit_record_but_not_a_missing_one():
    resumed = [_outcome(0), _outcome(0)]  # killed after the audit record, before proofs.jsonl; proven again
    assert _mismatches([_outcome(0)], resumed) == []
    parked_then_proved = [_outcome(3, "parked", None, None), _outcome(3)]
    assert _mismatches(parked_then_proved, parked_then_proved) == []
    assert _mismatches(parked_then_proved, [_outcome(3)]) == [3]


def test_without_an_intact_audit_trail_there_is_nothing_to_compare():
    report = RunReport(run=None)
    check_outcomes_recorded(report, [_outcome(0)], [])
    assert report.findings == []


@pytest.mark.parametrize(
    "bad", [{"expect_head": "12"}, {"expect_root": "g" * 64}, {"expect_base": "0x" + "ab" * 31}, {"expect_base": "0y" + "ab" * 32}, {"max_tolerance_ulps": -1}, {"min_proven": -1}]
)
def test_malformed_references_are_refused(bad):
    with pytest.raises(ConfigurationError):
        Expectations(**bad)


def test_hex_references_are_compared_in_lower_case():
    assert Expectations(expect_head="AB" * 32).expect_head == "ab" * 32


def test_the_tolerance_limit_defaults_to_the_statements_default_not_the_manifests():
    spec = SgdCircuitSpec(MlpArchitecture((4, 3, 2)), 2, 0.1, tolerance_ulps=64)
    assert default_tolerance(spec) == 4
    report = RunReport(run=None)
    check_tolerance(report, spec, None)
    assert [(f.check, f.reason) for f in report.findings] == [("statement", "tolerance-above-limit")]
    report = RunReport(run=None)
    check_tolerance(report, spec, 64)
    assert report.findings == [] and report.references["max_tolerance_ulps"] == 64


def test_a_report_with_no_proven_step_is_unproven():
    report = RunReport(run=None, coverage={"commitment-only": 3, "failed": 1})
    assert report.ok and report.verdict == "UNPROVEN"
    report.coverage["zk-groth16"] = 1  # a bucket's name is no proof: only steps verified here count
    assert report.verdict == "UNPROVEN" and report.proven == 0
    report.verified_steps.add(0)
    assert report.verdict == "VERIFIED" and report.proven == 1
    report.fail("proofs", "record-mismatch", "x")
    assert report.verdict == "FAILED"


def test_a_bundle_that_makes_a_check_raise_is_failed_with_its_report_written(tmp_path, capsys, monkeypatch):
    """The manifest's policy is a string, not the declared settings (every record and the audit
    trail agreeing): the policy check raised, and verify crashed with a traceback. Then it was
    FAILED (verifier-error); since review51 verify names the plan and stops before a check reads
    it. A check that raises all the same (here one made to raise: the crash path is what is under
    test) is FAILED (verifier-error) with --json written; a malformed option of the auditor's own
    is still bad input (exit 2)."""
    import json

    from pot_zk.cli.main import main
    from pot_zk.config import compose_config
    from pot_zk.runs.train import train
    from pot_zk.testing.bundle_edit import read_json, sync_audit, write_json
    from pot_zk.verify import run as verify_module

    run = tmp_path / "run"
    overrides = ["mode=disabled", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=2", "train.progress=false", f"run_dir={run}"]
    assert train(compose_config(overrides)).status == "completed"
    out = tmp_path / "report.json"

    def raising(*args, **kwargs):
        raise TypeError("a check met a value it did not expect")

    with monkeypatch.context() as patched:
        patched.setattr(verify_module, "check_models", raising)
        assert main(["verify", str(run), "--cache-dir", str(tmp_path / "cache"), "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "FAILED verify (verifier-error): checking the bundle raised TypeError: a check met a value it did not expect" in printed, printed
    assert {(f["check"], f["reason"]) for f in json.loads(out.read_text())["findings"]} == {("verify", "verifier-error")}
    manifest = read_json(run / "manifest.json")
    manifest["policy"] = "every_k"
    write_json(run / "manifest.json", manifest)
    sync_audit(run)
    assert main(["verify", str(run), "--cache-dir", str(tmp_path / "cache"), "--json", str(out)]) == 1
    assert {(f["check"], f["reason"]) for f in json.loads(out.read_text())["findings"]} == {("statement", "plan-not-canonical")}
    assert main(["verify", str(run), "--cache-dir", str(tmp_path / "cache"), "--accept-setting", "batch_order=seeded"]) == 2
