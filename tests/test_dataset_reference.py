"""The batches of a built-in data set are recomputed by the verifier from the declared data set,
batch size and seed: a poisoned batch or a step spliced in from another run, its leaf and the
root rewritten to agree with every record (pot_zk/testing/record_rewrites.py), is
`dataset-root/dataset-root-mismatch` without `--expect-root`, and with it `unexpected-root` as
well. Runs on synthetic data (built in) whose prover program fails, so the selected steps fall
back to freivalds certificates: real, checked proofs made in-process (fast)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.train import train
from pot_zk.testing.tamper import KINDS, tampered_copy
from pot_zk.verify.run import verify_run

MISMATCH = ("dataset-root", "dataset-root-mismatch", None)
UNEXPECTED = ("dataset-root", "unexpected-root", None)


def _run(run: Path, *extra: str) -> dict:
    overrides = [
        "prover=ezkl", "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=4", "policy=every_k", "policy.k=2",
        "handler=fallback", "retry=none", "prover.binary=/bin/false", "train.progress=false",
        f"cache_dir={run.parent / 'cache'}", f"run_dir={run}", *extra,
    ]
    return train(compose_config(overrides), sleep=lambda seconds: None).progress["proof_types"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """The honest run (steps 0 and 2 proven) and another of the same statement (seed 7, step 0 proven)."""
    root = tmp_path_factory.mktemp("dataset")
    assert _run(root / "honest") == {"freivalds": 2}
    assert _run(root / "other", "train.seed=7", "train.max_steps=2") == {"freivalds": 1}
    return root / "honest", root / "other"


def _verify(run: Path, tmp_path: Path, **options):
    return verify_run(run, cache_dir=tmp_path / "cache", **options)


def test_the_honest_run_verifies_with_its_leaves_recomputed(runs, tmp_path):
    report = _verify(runs[0], tmp_path)
    assert report.verdict == "VERIFIED" and "dataset-reference" in report.passed, report.summary()
    assert report.references["dataset_leaves"] == "recomputed from the declared data set"


@pytest.mark.parametrize("kind", ["poison-batch", "splice-step"])
def test_a_rewritten_data_set_is_a_dataset_root_mismatch_without_expect_root(runs, kind, tmp_path):
    honest, other = runs
    tampering = tampered_copy(honest, tmp_path / "tampered", kind, random.Random(kind), other)
    assert tampering.options == {}
    report = _verify(tmp_path / "tampered", tmp_path)
    assert {(f.check, f.reason, f.step) for f in report.findings} == {MISMATCH}, tampering.detail
    assert report.verdict == "FAILED" and "FAILED dataset-root (dataset-root-mismatch)" in report.summary()


@pytest.mark.parametrize("kind", ["poison-batch", "splice-step"])
def test_with_the_honest_root_pinned_it_is_an_unexpected_root_as_well(runs, kind, tmp_path):
    honest, other = runs
    tampering = tampered_copy(honest, tmp_path / "tampered", f"{kind}-expect-root", random.Random(kind), other)
    assert tampering.options == {"expect_root": RunBundle.open(honest).manifest()["dataset"]["root"]}
    report = _verify(tmp_path / "tampered", tmp_path, **tampering.options)
    assert {(f.check, f.reason, f.step) for f in report.findings} == {MISMATCH, UNEXPECTED}, tampering.detail


def test_the_campaign_runs_each_data_set_rewrite_with_and_without_the_root_pinned():
    for kind in ("poison-batch", "splice-step"):
        assert {kind, f"{kind}-expect-root"} <= set(KINDS)
