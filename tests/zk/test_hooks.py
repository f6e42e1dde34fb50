"""pot_zk.hooks: a user's own loop, wrapped, gives a bundle `pot-zk verify` accepts; its
recorded batch order is checked; modes decide what a failing prover does to the loop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from pot_zk.runs.bundle import RunBundle
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError, PotZkError, WitnessBuilderError
from pot_zk.hooks import proven_training
from pot_zk.verify.run import verify_run

pytestmark = pytest.mark.prover

USER_ORDER = [2, 0, 2, 1]  # steps 0 and 2 are proven (every_k, k=2)


def _pins(run: Path, handed_over: Path | None = None) -> dict:
    """What the auditor pins for a user loop (it declares no seed): the dataset root and W_0 the
    trainer handed over (``handed_over``: the honest run they came from), the recorded order accepted."""
    source = RunBundle.open(handed_over or run)
    return {"accept_settings": {"batch_order": "recorded"}, "expect_root": source.manifest()["dataset"]["root"],
            "expect_initial": source.commitments()[0]["w_before"]}


def _model_and_data(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(seed + 1)
    batches = [(torch.rand(2, 4, generator=generator) * 2 - 1, torch.rand(2, 2, generator=generator) - 0.5) for _ in range(3)]
    return model, optimizer, batches


def _overrides(cache_dir: Path, *extra: str) -> list[str]:
    return ["prover=ezkl", f"cache_dir={cache_dir}", "policy=every_k", "policy.k=2", *extra]


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()]


def _rewrite_commitments(run: Path, change) -> None:
    path = run / "commitments.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    change(records)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


@pytest.fixture(scope="module")
def hook_run(tmp_path_factory, zk_cache):
    run = tmp_path_factory.mktemp("hooks") / "run"
    model, optimizer, batches = _model_and_data()
    losses = []
    with proven_training(model, optimizer, batches, run_dir=run, overrides=_overrides(zk_cache)) as handle:
        for index in USER_ORDER:
            losses.append(handle.step(*batches[index]))
    return run, handle, losses


def test_a_user_loop_wrapped_by_the_hook_gives_a_bundle_that_verifies(hook_run, zk_cache):
    run, handle, losses = hook_run
    assert handle.summary.status == "completed"
    assert handle.summary.progress["proof_types"] == {"zk-halo2": 2}
    bundle = RunBundle.open(run)
    assert bundle.manifest()["training"]["batch_order"] == "recorded"
    records = bundle.commitments()
    assert [r["batch_index"] for r in records] == USER_ORDER
    assert [r["loss"] for r in records] == losses
    report = verify_run(run, cache_dir=zk_cache, **_pins(run))
    assert report.ok, report.summary()
    assert report.coverage == {"zk-halo2": 2, "commitment-only": 2}
    assert any("batch order: recorded" in note for note in report.notes)
    unpinned = {f.reason for f in verify_run(run, cache_dir=zk_cache).findings}
    assert unpinned == {"setting-not-default", "root-not-pinned", "initial-not-pinned"}


def _swap_unproven_steps(records):
    """Steps 1 and 3 (not proven) trade batches, each record kept self-consistent."""
    for key in ("batch_index", "batch"):
        records[1][key], records[3][key] = records[3][key], records[1][key]


def _point_at_another_leaf(records):
    records[1]["batch_index"] = 2


def _move_a_proven_step_to_another_batch(records):
    records[2]["batch_index"], records[2]["batch"] = records[1]["batch_index"], records[1]["batch"]


@pytest.mark.parametrize(
    ("tamper", "reasons"),
    [
        (_swap_unproven_steps, {"audit-mismatch"}),
        (_point_at_another_leaf, {"batch-not-in-dataset", "audit-mismatch"}),
        (_move_a_proven_step_to_another_batch, {"audit-mismatch", "commitment-mismatch", "too-few-proven"}),
    ],
)
def test_verify_rejects_a_hook_bundle_whose_recorded_batches_were_altered(hook_run, zk_cache, tmp_path, tamper, reasons):
    run = tmp_path / "run"
    shutil.copytree(hook_run[0], run)
    _rewrite_commitments(run, tamper)
    report = verify_run(run, cache_dir=zk_cache, **_pins(run, hook_run[0]))
    assert not report.ok
    assert {f.reason for f in report.findings} == reasons, report.summary()


def test_verify_rejects_a_hook_bundle_relabelled_as_seeded(hook_run, zk_cache, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(hook_run[0], run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["training"]["batch_order"] = "seeded"
    (run / "manifest.json").write_text(json.dumps(manifest))
    report = verify_run(run, cache_dir=zk_cache)
    assert "schedule-missing" in {f.reason for f in report.findings}, report.summary()


def test_fail_fast_raises_out_of_step_and_ends_the_run_halted(tmp_path, zk_cache, make_prover):
    run = tmp_path / "run"
    crash = make_prover("crash")
    model, optimizer, batches = _model_and_data()
    finished = []
    overrides = _overrides(zk_cache, "mode=production", "srs.allow_dev_srs=true", f"prover.binary={crash}")
    with pytest.raises(PotZkError):
        with proven_training(model, optimizer, batches, run_dir=run, overrides=overrides) as handle:
            for index in USER_ORDER:
                handle.step(*batches[index])
                finished.append(index)
    assert finished == []
    assert handle.summary.status == "halted"
    assert len(RunBundle.open(run).commitments()) == 1
    assert _events(run)[-1]["event"] == "run.end" and _events(run)[-1]["status"] == "halted"
    assert not (run / "model_final.safetensors").exists()
    assert "run-not-completed" in {f.reason for f in verify_run(run, cache_dir=zk_cache).findings}


def test_continue_finishes_the_loop_with_the_gap_recorded(tmp_path, zk_cache, make_prover):
    run = tmp_path / "run"
    crash = make_prover("crash")
    model, optimizer, batches = _model_and_data()
    overrides = _overrides(zk_cache, "mode=development", "retry=none", f"prover.binary={crash}")
    with proven_training(model, optimizer, batches, run_dir=run, overrides=overrides) as handle:
        for index in USER_ORDER:
            handle.step(*batches[index])
    assert handle.summary.status == "completed"
    assert handle.summary.progress["outcomes"] == {"failed": 2}
    report = verify_run(run, cache_dir=zk_cache, min_proven=0, **_pins(run))
    assert report.ok and report.verdict_line == "UNPROVEN: 2 of 2 selected steps have no proof (steps 0, 2)", report.summary()
    assert report.coverage == {"failed": 2, "commitment-only": 2}
    assert "too-few-proven" in {f.reason for f in verify_run(run, cache_dir=zk_cache, **_pins(run)).findings}


def test_a_batch_that_was_not_declared_is_refused_and_not_committed(tmp_path, zk_cache):
    run = tmp_path / "run"
    model, optimizer, batches = _model_and_data()
    stranger = (batches[0][0] + 0.25, batches[0][1])
    with proven_training(model, optimizer, batches, run_dir=run, overrides=_overrides(zk_cache, "mode=disabled")) as handle:
        weights = [p.detach().clone() for p in model.parameters()]
        with pytest.raises(WitnessBuilderError, match="not one of the batches declared"):
            handle.step(*stranger)
        assert all(torch.equal(a, b.detach()) for a, b in zip(weights, model.parameters())), "a refused batch must not train"
        handle.step(*batches[1])
    assert [r["batch_index"] for r in RunBundle.open(run).commitments()] == [1]
    assert handle.summary.status == "completed"


def test_an_exception_in_the_users_loop_ends_the_run_aborted(tmp_path, zk_cache):
    run = tmp_path / "run"
    model, optimizer, batches = _model_and_data()
    with pytest.raises(KeyError, match="user bug"):
        with proven_training(model, optimizer, batches, run_dir=run, overrides=_overrides(zk_cache, "mode=disabled")) as handle:
            handle.step(*batches[0])
            raise KeyError("user bug")
    assert handle.summary.status == "aborted"
    events = _events(run)
    assert [e["event"] for e in events[-2:]] == ["run.aborted", "run.end"] and events[-1]["status"] == "aborted"
    assert not (run / "model_final.safetensors").exists()


def test_an_unsupported_optimizer_is_refused_before_anything_is_written(tmp_path, zk_cache):
    run = tmp_path / "run"
    model, _, batches = _model_and_data()
    rmsprop = torch.optim.RMSprop(model.parameters())
    with pytest.raises(InvalidModelStateError, match="SGD"):
        with proven_training(model, rmsprop, batches, run_dir=run, overrides=_overrides(zk_cache)):
            pass
    assert not run.exists()
    adam = torch.optim.Adam(model.parameters())  # an adamw step: proven by zk-groth16 only
    with pytest.raises(ConfigurationError, match="^the ezkl backend proves lora, momentum, sgd steps, not adamw steps"):
        with proven_training(model, adam, batches, run_dir=run, overrides=_overrides(zk_cache)):
            pass
    assert not run.exists()


def test_a_run_dir_that_holds_a_run_is_refused(hook_run, zk_cache):
    model, optimizer, batches = _model_and_data()
    with pytest.raises(PotZkError, match="already holds a run"):
        with proven_training(model, optimizer, batches, run_dir=hook_run[0], overrides=_overrides(zk_cache)):
            pass
