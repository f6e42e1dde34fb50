"""The tamper kinds (pot_zk/testing/tamper.py) name every finding their alteration must produce,
by step where it is about one, and `judge` holds a tampered bundle rejected only when verify
names all of them: a check that goes quiet fails its tamperings even while another check still
rejects the bundle. Applied here, two seeds each, to a bundle whose selected steps fell back to
freivalds certificates (no prover runs); the kinds that edit a zk proof file run on real zk-halo2
and zk-groth16 bundles (tests/zk/test_reliability.py, tests/zk/test_momentum_run.py,
tests/groth16/test_groth16_run.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.runs.train import train
from pot_zk.testing.tamper import KINDS, Finding, Tampering, judge, tampered_copy
from pot_zk.verify.run import RunReport, verify_run

ZK_PROOF_FILES = {
    "flip-proof-byte": "edits the bytes of a zk proof",
    "alter-public-commitment": "edits the public inputs inside a zk proof",
    "swap-proofs": "moves certificate.json without its witness, which the verifier recommits from the records",
    "replay-proof": "moves certificate.json without its witness, which the verifier recommits from the records",
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> tuple[Path, Path]:
    """An honest run (steps 0 and 2 proven with freivalds certificates; the prover program is
    /bin/false) and another run of the same statement (seed 7, step 0 proven)."""
    root = tmp_path_factory.mktemp("certified")
    for name, extra in (("honest", []), ("other", ["train.seed=7", "train.max_steps=2"])):
        overrides = [
            "prover=ezkl", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=4", "policy=every_k", "policy.k=2",
            "handler=fallback", "retry=none", "prover.binary=/bin/false", "train.progress=false",
            f"cache_dir={root / 'cache'}", f"run_dir={root / name}", *extra,
        ]
        assert set(train(compose_config(overrides), sleep=lambda seconds: None).progress["proof_types"]) == {"freivalds"}
    return root / "honest", root / "other"


@pytest.mark.parametrize("seed", [1, 3])  # break-chain: the last link, then the first
@pytest.mark.parametrize("kind", sorted(set(KINDS) - set(ZK_PROOF_FILES)))
def test_each_tampering_names_every_finding_it_must(kind, seed, bundles, tmp_path):
    honest, other = bundles
    tampering = tampered_copy(honest, tmp_path / "tampered", kind, random.Random(f"{kind}-{seed}"), other)
    report = verify_run(tmp_path / "tampered", cache_dir=tmp_path / "verifier-cache", **tampering.options)
    right, why = judge(report, tampering)
    assert right, f"{tampering.detail}: {why}"


def _report(*findings: tuple[str, str, int | None]) -> RunReport:
    report = RunReport(run=Path("tampered"))
    for check, reason, step in findings:
        report.fail(check, reason, "a finding", step)
    return report


EDITED_W_AFTER = Tampering("alter-commitment-record", "step 1: w_after replaced",
                           frozenset({Finding("commitment-chain", "chain-broken", 2), Finding("steps", "audit-mismatch", 1)}))


def test_a_check_that_goes_quiet_fails_the_tampering_though_another_rejects_the_bundle():
    right, why = judge(_report(("steps", "audit-mismatch", 1)), EDITED_W_AFTER)
    assert not right and why.startswith("did not name ['commitment-chain/chain-broken@2']")


def test_a_finding_at_another_step_is_not_the_one_expected():
    right, why = judge(_report(("steps", "audit-mismatch", 1), ("commitment-chain", "chain-broken", 1)), EDITED_W_AFTER)
    assert not right and "commitment-chain/chain-broken@1" in why


def test_every_expected_finding_named_passes_whatever_else_is_named():
    report = _report(("steps", "audit-mismatch", 1), ("commitment-chain", "chain-broken", 2), ("proofs", "too-few-proven", None))
    assert judge(report, EDITED_W_AFTER) == (True, "")


def test_a_tampering_must_name_a_finding():
    with pytest.raises(ValueError, match="names no finding"):
        Tampering("nothing", "no alteration", frozenset())
