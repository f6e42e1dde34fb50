"""What the auditor brings to `pot-zk verify` (issue 13): the references it recomputes or is
given, the UNPROVEN verdict, and a verifier that derives its circuits and keys itself.

The tamper kinds themselves (each rejected with its named reason, with the auditor's option it
takes) run in test_reliability's campaign; here are the CLI, the verdicts, the poisoned cache,
and the edits that the bundle alone cannot show."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from pot_zk.cli.main import main
from pot_zk.config import compose_config
from pot_zk.backends.registry import spec_from_dict
from pot_zk.runs.train import train
from pot_zk.runs.bundle import MANIFEST
from pot_zk.testing.bundle_edit import read_json, sync_audit, write_json
from pot_zk.testing.tamper import judge, tampered_copy
from pot_zk.verify.run import verify_run

from run_support import UNSHARED

pytestmark = pytest.mark.prover


def _verify(capsys, *argv: str) -> tuple[int, str]:
    code = main(["verify", *argv])
    return code, capsys.readouterr().out


def test_verify_prints_the_dataset_root_and_commitment_head_and_checks_the_ones_you_expect(honest_runs, zk_cache, capsys):
    run, head = str(honest_runs.run), honest_runs.head
    root = read_json(honest_runs.run / MANIFEST)["dataset"]["root"]
    code, out = _verify(capsys, run, "--cache-dir", str(zk_cache), "--expect-head", head, "--expect-root", root)
    assert code == 0 and "result: VERIFIED" in out, out
    assert f"commitment head: {head}" in out and f"dataset root: {root}" in out
    assert "passed: commitment-head" in out and "passed: dataset-reference" in out and "passed: initial-reference" in out

    code, out = _verify(capsys, run, "--cache-dir", str(zk_cache), "--json", "-")
    report = json.loads(out)
    assert code == 0 and report["verdict"] == "VERIFIED" and report["proven"] == 2
    assert report["references"]["commitment_head"] == head and report["references"]["dataset_root"] == root

    other_head = "ab" * 32
    code, out = _verify(capsys, run, "--cache-dir", str(zk_cache), "--expect-head", other_head, "--expect-root", "CD" * 32)
    assert code == 1 and "result: FAILED" in out
    assert "FAILED commitment-head (unexpected-head)" in out and "FAILED dataset-root (unexpected-root)" in out


@pytest.mark.parametrize("option", [["--expect-head", "xyz"], ["--expect-root", "ab" * 31], ["--max-tolerance-ulps", "-1"], ["--min-proven", "-2"]])
def test_a_malformed_reference_is_refused_before_anything_is_checked(option, honest_runs, zk_cache, capsys):
    assert main(["verify", str(honest_runs.run), "--cache-dir", str(zk_cache), *option]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("pot-zk verify: ") and option[0] in captured.err
    assert captured.err.count("\n") == 1, "one line"


def test_min_proven_and_max_tolerance_are_the_auditors_bounds(honest_runs, zk_cache):
    assert verify_run(honest_runs.run, cache_dir=zk_cache, min_proven=2, max_tolerance_ulps=4).verdict == "VERIFIED"
    report = verify_run(honest_runs.run, cache_dir=zk_cache, min_proven=3, max_tolerance_ulps=3)
    assert {(f.check, f.reason) for f in report.findings} == {("proofs", "too-few-proven"), ("statement", "tolerance-above-limit")}


def test_a_run_with_no_proven_step_is_unproven_exit_3_and_its_digits_batches_are_recomputed(tmp_path, zk_cache, capsys):
    run = tmp_path / "run"
    overrides = [f"run_dir={run}", f"cache_dir={zk_cache}", "train.max_steps=2", "mode=disabled", "train.progress=false"]
    train(compose_config(overrides))  # digits, the 16-8-10 MLP
    code, out = _verify(capsys, str(run), "--cache-dir", str(zk_cache))
    assert code == 3 and "result: UNPROVEN" in out, out
    assert "passed: dataset-reference" in out and "passed: initial-reference" in out
    code, out = _verify(capsys, str(run), "--cache-dir", str(zk_cache), "--min-proven", "1")
    assert code == 1 and "FAILED proofs (too-few-proven)" in out


def test_a_verifier_cache_holding_the_old_circuit_under_the_new_circuit_id_is_not_used(honest_runs, zk_cache, tmp_path):
    """The manifest's learning rate changed (audit trail rewritten to match) while the cache
    verify is pointed at holds the old circuit and keys under the new circuit id."""
    run = tmp_path / "run"
    shutil.copytree(honest_runs.run, run)
    manifest = read_json(run / MANIFEST)
    old_id = manifest["circuit_id"]
    manifest["circuit"]["learning_rate"] = 0.1
    manifest["circuit_id"] = spec_from_dict(manifest["circuit"]).circuit_id()
    write_json(run / MANIFEST, manifest)
    sync_audit(run)
    cache = tmp_path / "cache"
    shutil.copytree(zk_cache / "srs", cache / "srs", ignore=UNSHARED)
    for planted in ("verifier/circuits", "circuits"):
        shutil.copytree(zk_cache / "circuits" / old_id, cache / planted / manifest["circuit_id"], ignore=UNSHARED)
    report = verify_run(run, cache_dir=cache)
    assert report.verdict == "FAILED", report.summary()
    assert {f.reason for f in report.findings} <= {"invalid-proof", "wrong-circuit", "update-out-of-tolerance", "too-few-proven"}
    assert {f.step for f in report.findings if f.reason != "too-few-proven"} == {0, 2}


@pytest.mark.parametrize(
    ("kind", "seed"),
    [("truncate", 1), ("final-is-initial", 1), ("policy-edit", 1), ("drift-within-tolerance", 1)],
)
def test_an_edit_the_bundle_cannot_show_is_caught_only_by_the_auditors_option(kind, seed, honest_runs, zk_cache, tmp_path):
    """docs/runs.md lists these: every record agrees, so verify alone says VERIFIED; the
    option the docs name (the anchored commitment head, a minimum of proven steps, a tolerance
    limit) rejects the edit with its named reason."""
    tampering = tampered_copy(honest_runs.run, tmp_path / "run", kind, random.Random(f"{kind}-{seed}"), honest_runs.other)
    assert tampering.options
    assert verify_run(tmp_path / "run", cache_dir=zk_cache).verdict == "VERIFIED"
    right, why = judge(verify_run(tmp_path / "run", cache_dir=zk_cache, **tampering.options), tampering)
    assert right, f"{tampering.detail} with {dict(tampering.options)}: {why}"
