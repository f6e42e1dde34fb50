"""review34: tests that decide the verify-side checks added since 2a60572 (each kills a mutation
that the earlier tests let survive; review/mutations.py in the review34 branch names them).

* ``pot-zk verify`` of an export: the unpacked size is the sum of its members (not its largest),
  a small archive that expands more than 100 times but stays under 64 MiB still unpacks, and the
  free space is that of the directory it unpacks into.
* Every file verify reads is refused as a link, not only the audit trail.
* The files verify only takes notes from (the lock record, an export's inventory) are not read
  when they are a pipe or a link (review34 found verify blocking or reading /dev/zero there).
* ``export``'s ``ended`` is the last ``run.end`` (a run interrupted, then resumed to completion, is
  complete).
* ``--expect-base RUN``'s held-out check (trained-by-base): another data set, another synthetic
  seed, a base that chose its own batches, a base held out of the same part with the same
  held-out set, an unrecomputable declaration.
* trained-on-held-out: ``dataset-reference`` is not also said to pass.
* ``--expect-root``/``--expect-head`` take 64 hex digits only, never a file's path.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import shutil
import tarfile
from pathlib import Path

import pytest

from pot_zk.config import compose_config
from pot_zk.exceptions import ConfigurationError
from pot_zk.runs import bundle as files
from pot_zk.runs import export as export_module
from pot_zk.runs.export import export_run, unpack_export
from pot_zk.runs.train import train
from pot_zk.testing.bundle_edit import audit_records, read_json, rewrite_audit
from pot_zk.verify.references import BaseRun
from pot_zk.verify.report import RunReport
from pot_zk.verify.run import verify_run

from test_verify_each_check import honest  # noqa: F401 -- that module's fixture


def _findings(report) -> set[tuple[str, str, int | None]]:
    return {(f.check, f.reason, f.step) for f in report.findings}


def _with_members(archive: Path, extra: dict[str, bytes], out: Path) -> Path:
    """``archive`` with more files under its run directory."""
    with tarfile.open(archive) as source, tarfile.open(out, "w:gz") as target:
        top = source.getmembers()[0].name.split("/")[0]
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
        for name, data in extra.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    return out


# ---- export unpacking ------------------------------------------------------------------------


def test_the_unpacked_size_is_the_sum_of_the_members_not_the_largest(honest, tmp_path):
    """Two 40 MiB members (each under the 64 MiB floor) unpack to 80 MiB from a small archive."""
    archive = export_run(honest, tmp_path / "run.tar.gz").archive
    crafted = _with_members(archive, {"proofs/pad-a.bin": bytes(40 << 20), "proofs/pad-b.bin": bytes(40 << 20)}, tmp_path / "crafted.tar.gz")
    assert crafted.stat().st_size < 1 << 20
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(ConfigurationError, match=r"is not a pot-zk export: it unpacks to 80 MiB, over 100 times its size \(64 MiB\)"):
        unpack_export(crafted, into)
    assert list(into.iterdir()) == []


def test_a_small_archive_expanding_over_a_hundred_times_but_under_the_floor_unpacks(honest, tmp_path):
    """Zeros compress a thousand times over (a LoRA B matrix starts at zero): the 64 MiB floor
    keeps such an honest export readable."""
    archive = export_run(honest, tmp_path / "run.tar.gz").archive
    crafted = _with_members(archive, {"proofs/zeros.bin": bytes(8 << 20)}, tmp_path / "crafted.tar.gz")
    assert crafted.stat().st_size * 100 < 8 << 20
    into = tmp_path / "into"
    into.mkdir()
    assert unpack_export(crafted, into).name == honest.name
    assert (into / honest.name / "proofs" / "zeros.bin").stat().st_size == 8 << 20


def test_the_free_space_checked_is_where_the_export_unpacks(honest, tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    archive = export_run(honest, tmp_path / "elsewhere" / "run.tar.gz").archive
    into = tmp_path / "into"
    into.mkdir()
    real = shutil.disk_usage

    def full_into(path):
        usage = real(path)
        return usage._replace(free=1000) if Path(path).resolve() == into.resolve() else usage

    monkeypatch.setattr(export_module.shutil, "disk_usage", full_into)
    with pytest.raises(ConfigurationError, match=r"more than the 0 MiB free in .*into"):
        unpack_export(archive, into)
    assert list(into.iterdir()) == []


def test_a_run_interrupted_then_resumed_to_completion_exports_as_completed(honest, tmp_path):
    run = Path(shutil.copytree(honest, tmp_path / "run", ignore=shutil.ignore_patterns(".pot-zk.lock*")))
    events = audit_records(run)
    end = max(i for i, e in enumerate(events) if e.get("event") == "run.end" and "command" not in e)
    events.insert(end, {**copy.deepcopy(events[end]), "status": "interrupted"})
    rewrite_audit(run, events)
    assert export_run(run, tmp_path / "run.tar.gz").ended == "completed"


# ---- files verify reads ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["manifest.json", "dataset.json", "commitments.jsonl", "proofs.jsonl", "evaluations.jsonl",
                                                "audit.jsonl", "model_initial.safetensors", "model_final.safetensors"])
def test_every_file_verify_reads_is_refused_as_a_link(honest, tmp_path, name):
    """review24/33 tested audit.jsonl (and challenge/report's records): a model file that is a
    link (or a named pipe, which blocks safetensors) is the bundle's no more than a record."""
    run = Path(shutil.copytree(honest, tmp_path / "run", ignore=shutil.ignore_patterns(".pot-zk.lock*")))
    outside = tmp_path / name
    shutil.move(run / name, outside)
    (run / name).symlink_to(outside)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert _findings(report) == {("statement", "unreadable-bundle", None)}, report.summary()
    assert f"{name} is a symbolic link" in report.summary()


@pytest.mark.parametrize("target", ["pipe", "/dev/zero"])
def test_a_lock_record_that_is_a_pipe_or_a_link_is_not_read(honest, tmp_path, target):
    """review34: verify read the lock record for its in-use note unguarded: a named pipe there
    blocked it for ever, a link to /dev/zero read until memory ran out. Run in a process of its
    own with a time limit, as a user would meet it."""
    import os
    import subprocess
    import sys

    run = Path(shutil.copytree(honest, tmp_path / "run", ignore=shutil.ignore_patterns(".pot-zk.lock*")))
    record = run / ".pot-zk.lock.json"
    if target == "pipe":
        os.mkfifo(record)
    else:
        record.symlink_to(target)
    done = subprocess.run(
        [sys.executable, "-m", "pot_zk.cli.main", "verify", str(run), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120,
    )
    assert "result: VERIFIED" in done.stdout and "in use by" not in done.stdout, done.stdout + done.stderr


def test_an_export_inventory_linked_to_a_large_file_is_not_read_whole(honest, tmp_path):
    """review34: EXPORT.json as a link to a large file outside the run was read whole (a 4 GiB
    file: MemoryError). Now it is not read; the inventory note says it names no head."""
    run = Path(shutil.copytree(honest, tmp_path / "run", ignore=shutil.ignore_patterns(".pot-zk.lock*")))
    large = tmp_path / "large"
    with open(large, "wb") as handle:
        handle.truncate(1 << 40)  # sparse: a tebibyte that takes no disk
    (run / "EXPORT.json").symlink_to(large)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert report.verdict == "VERIFIED", report.summary()
    assert any(note.startswith("EXPORT.json names commitment head None") for note in report.notes), report.notes


# ---- trained-by-base (check_base_holdout) ----------------------------------------------------

COMMON = ["prover=ezkl", "mode=disabled", "data=synthetic", "train.batch_size=2", "train.max_steps=2", "train.progress=false", "model.loss=mse"]


@pytest.fixture(scope="module")
def adapted(tmp_path_factory) -> tuple[Path, Path]:
    """A base trained on all the samples and a LoRA run adapting it on the second half."""
    root = tmp_path_factory.mktemp("adapted")
    base, lora = root / "base", root / "lora"
    assert train(compose_config(["model=tiny_mlp", *COMMON, "data.part=all", f"run_dir={base}"])).status == "completed"
    assert train(compose_config(["model=lora_tiny", f"model.base_run={base}", *COMMON, "data.part=adapt", f"run_dir={lora}"])).status == "completed"
    return base, lora


def _base_holdout(adapted, change) -> RunReport:
    """check_base_holdout of the LoRA run against its base run, the base's manifest changed."""
    from pot_zk.backends.registry import spec_from_dict
    from pot_zk.verify.holdout import check_base_holdout

    base, lora = adapted
    theirs = copy.deepcopy(read_json(base / files.MANIFEST))
    ours = read_json(lora / files.MANIFEST)
    change(theirs, ours)
    report = RunReport(run=lora)
    check_base_holdout(report, ours, spec_from_dict(ours["circuit"]), dataclasses.replace(BaseRun.read(base), manifest=theirs))
    return report


def _trained_by_base(report) -> bool:
    return any(f.reason == "trained-by-base" for f in report.findings)


def test_the_unchanged_base_trained_on_the_held_out_samples(adapted):
    """The reference for the tests below: the base (data.part=all) trained on some of them."""
    assert _trained_by_base(_base_holdout(adapted, lambda theirs, ours: None))


def test_a_base_trained_on_another_data_set_shares_no_sample(adapted):
    def other(theirs, ours):
        theirs["dataset"]["name"] = "digits"

    report = _base_holdout(adapted, other)
    assert not report.findings, report.findings


def test_a_data_set_verify_cannot_recompute_is_noted_not_checked(adapted):
    """review34: a data set that is not built in returned without the note the docstring promised."""
    def own_data(theirs, ours):
        theirs["dataset"]["name"] = ours["dataset"]["name"] = "my-own-data"

    report = _base_holdout(adapted, own_data)
    assert not report.findings, report.findings
    assert any("is not a data set verify can recompute" in note for note in report.notes), report.notes


def test_a_base_trained_on_synthetic_samples_of_another_seed_shares_no_sample(adapted):
    def other(theirs, ours):
        theirs["dataset"]["seed"] = int(ours["dataset"].get("seed", 0)) + 1

    report = _base_holdout(adapted, other)
    assert not report.findings, report.findings


def test_a_base_that_chose_its_own_batches_is_noted_not_checked(adapted):
    def streamed(theirs, ours):
        theirs["training"]["batch_order"] = "streamed"

    report = _base_holdout(adapted, streamed)
    assert not report.findings, report.findings
    assert any("chose its own batches" in note for note in report.notes), report.notes


def test_a_base_run_whose_manifest_has_no_batch_order_is_checked_as_the_seeded_run_it_reads_as(adapted):
    """review43: without ``training.batch_order`` a run reads as seeded everywhere (run_checks), but
    this check took it for a loop's, skipped the samples and noted a falsehood: VERIFIED."""
    def without_order(theirs, ours):
        del theirs["training"]["batch_order"]

    report = _base_holdout(adapted, without_order)
    assert _trained_by_base(report), report.findings
    assert not any("chose its own batches" in note for note in report.notes), report.notes


def test_a_base_holding_out_the_same_samples_of_the_same_part_trained_on_none_of_them(adapted):
    """The base held out exactly what the LoRA run holds out, of the same part (adapt, which
    does not start at 0): none of the held-out samples is in its training split."""
    def same(theirs, ours):
        theirs["dataset"]["part"] = ours["dataset"]["part"]
        theirs["dataset"]["holdout"] = copy.deepcopy(ours["dataset"]["holdout"])

    assert read_json(adapted[1] / files.MANIFEST)["dataset"]["part"] == "adapt"
    report = _base_holdout(adapted, same)
    assert not report.findings, report.findings


def test_a_base_declaration_that_cannot_be_recomputed_is_trained_by_base(adapted):
    def malformed(theirs, ours):
        theirs["dataset"]["holdout"]["fraction"] = "a fifth"

    report = _base_holdout(adapted, malformed)
    assert [(f.check, f.reason) for f in report.findings] == [("holdout", "trained-by-base")]
    assert "cannot be recomputed" in report.findings[0].message


def test_a_base_declaring_no_held_out_set_trained_on_every_sample_of_its_part(adapted):
    def none_held(theirs, ours):
        del theirs["dataset"]["holdout"]

    report = _base_holdout(adapted, none_held)
    held = read_json(adapted[1] / files.MANIFEST)["dataset"]["holdout"]["samples"]
    assert _trained_by_base(report) and f"{held} of the {held} held-out samples" in report.findings[0].message, report.findings


def test_a_base_trained_on_the_other_half_only_shares_no_sample(adapted):
    """A base on the first half (all of it trained on), the LoRA run holding out samples of the
    second: the positions are the whole data set's (each part's start added)."""
    def first_half(theirs, ours):
        theirs["dataset"]["part"] = "base"
        del theirs["dataset"]["holdout"]

    report = _base_holdout(adapted, first_half)
    assert not report.findings, report.findings


# ---- trained-on-held-out ---------------------------------------------------------------------


def test_a_held_out_set_of_another_seed_fails_dataset_root_and_passes_no_dataset_check(honest, tmp_path):
    import random

    from pot_zk.testing.tamper import tampered_copy

    tampered_copy(honest, tmp_path / "tampered", "holdout-seed-split", random.Random(1), None)
    report = verify_run(tmp_path / "tampered", cache_dir=tmp_path / "cache")
    assert ("dataset-root", "trained-on-held-out", None) in _findings(report), report.summary()
    assert "dataset-reference" not in report.passed, report.passed


# ---- expectations ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["expect_root", "expect_head"])
def test_only_expect_initial_takes_a_model_file(key, tmp_path):
    from pot_zk.verify.references import Expectations

    model = tmp_path / "model.safetensors"
    model.write_bytes(b"not hex")
    assert Expectations(expect_initial=str(model)).expect_initial == str(model)
    with pytest.raises(ConfigurationError, match="must be 64 hex digits"):
        Expectations(**{key: str(model)})


def test_a_base_holding_out_among_more_positions_than_its_data_set_has_is_refused_without_drawing_them(adapted, monkeypatch):
    """review49: the base run's ``of`` sized a permutation (10**9 positions: gigabytes, before
    anything compared it with the data set)."""
    from pot_zk.verify import holdout

    drawn = []
    real = holdout.holdout_indices
    monkeypatch.setattr(holdout, "holdout_indices", lambda of, *rest: drawn.append(of) or real(of, *rest))

    def huge(theirs, ours):
        theirs["dataset"]["holdout"]["of"] = 10**9

    report = _base_holdout(adapted, huge)
    assert [(f.check, f.reason) for f in report.findings] == [("holdout", "trained-by-base")]
    assert "chosen among 1,000,000,000 positions" in report.findings[0].message
    assert 10**9 not in drawn, drawn
