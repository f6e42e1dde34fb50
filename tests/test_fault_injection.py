"""Fault injection with real prover programs that fail at random (seeded): every fault is
classified, retried only per the schedule, acted on as the mode says, and audited once per
attempt. The full campaign is scripts/fault_campaign.py; this runs a reduced one."""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path

import pytest

from pot_zk.exceptions import ProverCrashError, ProverProtocolError
from pot_zk.core.runner import run_prover

ROOT = Path(__file__).resolve().parent.parent


def _campaign_module():
    spec = importlib.util.spec_from_file_location("fault_campaign", ROOT / "scripts" / "fault_campaign.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fault_campaign"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


fc = _campaign_module()


def test_a_prover_killed_mid_write_of_its_response_is_a_crash_by_sigkill(make_prover, job):
    with pytest.raises(ProverCrashError) as raised:
        run_prover(str(make_prover("partial-kill")), job, timeout_s=10)
    assert raised.value.context["signal"] == signal.Signals.SIGKILL.name and raised.value.retryable


def test_a_response_naming_a_proof_file_that_was_never_written_is_a_protocol_error(make_prover, job):
    with pytest.raises(ProverProtocolError, match="proof"):
        run_prover(str(make_prover("missing-proof", "zk-halo2")), job, timeout_s=10)


@pytest.mark.parametrize("how", ["a-path", "a-link"])
def test_a_response_naming_a_proof_outside_the_requests_output_directory_is_a_protocol_error(make_prover, job, tmp_path, how):
    """review53: a fake key holder answered "ok" naming a file of its own outside the run; train
    recorded it and said the step was proven (verify caught it: missing-proof-file)."""
    elsewhere = tmp_path / "elsewhere.bin"
    with pytest.raises(ProverProtocolError, match=f"the artifact\\(s\\) proof it names are not under the request's output directory {job.output_dir}"):
        run_prover(str(make_prover("outside-proof", str(elsewhere), *(["link"] if how == "a-link" else []))), job, timeout_s=10)


def test_a_corrupt_proof_file_passes_the_runner_and_is_left_to_verify(make_prover, job):
    response = run_prover(str(make_prover("corrupt-proof", "zk-halo2")), job, timeout_s=10)
    assert Path(response.artifacts["proof"]).stat().st_size == 64


def test_a_random_prover_does_what_its_seeded_choice_says(make_prover, job, tmp_path):
    program = make_prover("random", "seed-7", str(tmp_path / "state"))
    for run in range(6):
        behaviour = fc.fake.choose("seed-7", run)
        if behaviour == "hang":
            continue  # covered by the campaign (costs a timeout)
        try:
            run_prover(str(program), job, timeout_s=5)
            observed = None
        except Exception as error:  # noqa: BLE001 - the class is what is compared
            observed = type(error).__name__
        expected = None if behaviour == "ok" else fc.EXPECTED_CLASS[behaviour][0]
        assert observed == expected, (run, behaviour)
    assert (tmp_path / "state").read_text() == "6" or fc.fake.choose("seed-7", 5) == "hang"


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    return fc.campaign(36, 11, tmp_path_factory.mktemp("faults"), timeout_s=1.5)


def test_reduced_campaign_classifies_acts_and_audits_every_fault(figures):
    assert figures["faults_injected"] >= 36
    assert figures["misclassified"] == 0, figures["problems"]
    assert figures["audit_records_lost"] == 0 and figures["audit_records_duplicated"] == 0
    done, total = figures["audit_chains_intact"].split("/")
    assert done == total and int(total) >= 12  # every mode x failure action ran
    assert len(figures["faults_by_kind"]) >= 8


def test_the_campaign_notices_a_misclassification(tmp_path, monkeypatch):
    """The checker itself can fail: tell it a crash should be a protocol error."""
    monkeypatch.setitem(fc.EXPECTED_CLASS, "crash", ("ProverProtocolError", False))
    monkeypatch.setitem(fc.EXPECTED_CLASS, "exit 75", ("ProverProtocolError", False))
    result = fc.campaign(12, 11, tmp_path, timeout_s=1.5)
    assert result["misclassified"] > 0


def test_the_campaign_notices_a_lost_audit_record(tmp_path, monkeypatch):
    real_event = fc.AuditLog.event
    dropped = []

    def lossy(self, event, **fields):
        if event == "attempt" and not dropped:
            dropped.append(fields)
            return
        real_event(self, event, **fields)

    monkeypatch.setattr(fc.AuditLog, "event", lossy)
    result = fc.campaign(6, 11, tmp_path, timeout_s=1.5)
    assert dropped and result["audit_records_lost"] >= 1
