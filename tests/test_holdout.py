"""The held-out split of the declared data set, the scores of the models on it, and what
`pot-zk verify` checks of both (runs without proving: no prover program runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from pot_zk.config import compose_config
from pot_zk.core.merkle import dataset_root
from pot_zk.exceptions import ConfigurationError
from pot_zk.runs import bundle as files
from pot_zk.data.datasets import holdout_indices, load_dataset, split_holdout
from pot_zk.runs.train import train
from pot_zk.runs.summary import summary_lines
from pot_zk.testing.tamper import chain_lines
from pot_zk.verify.run import verify_run


def run_digits(run: Path, *extra: str):
    overrides = ["mode=disabled", "train.max_steps=3", "train.progress=false", f"run_dir={run}", *extra]
    return train(compose_config(overrides))


@pytest.fixture(scope="module")
def honest_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("holdout") / "run"
    return run, run_digits(run)


@pytest.fixture
def honest(honest_run) -> Path:
    return honest_run[0]


def copy_of(honest: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(honest, tmp_path / "copy"))


def findings(run: Path, tmp_path: Path) -> set[tuple[str, str]]:
    report = verify_run(run, cache_dir=tmp_path / "cache")
    return {(f.check, f.reason) for f in report.findings}


def rewrite_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def rewrite_jsonl(path: Path, change) -> None:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        change(record)
    if path.name == files.AUDIT:
        path.write_bytes(chain_lines(records))
    else:
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def test_the_held_out_positions_are_a_seeded_share_of_the_samples():
    chosen = holdout_indices(1797, 0.2, 0)
    assert len(chosen) == 359 and chosen == sorted(set(chosen)) and 0 <= chosen[0] and chosen[-1] < 1797
    assert holdout_indices(1797, 0.2, 0) == chosen and holdout_indices(1797, 0.2, 1) != chosen
    assert holdout_indices(10, 0.0, 0) == []
    with pytest.raises(ConfigurationError) as error:
        holdout_indices(10, 1.0, 0)
    assert error.value.key == "data.holdout"


def test_the_samples_trained_on_and_the_held_out_ones_partition_the_data_set():
    inputs, targets = load_dataset("digits", 16, 10, 0, 0)
    rows = torch.arange(len(inputs), dtype=torch.float32).unsqueeze(1)  # each sample's position
    train_rows, _, held_out = split_holdout(rows, targets, 0.2, 0)
    assert held_out is not None and held_out.of == len(inputs)
    assert held_out.inputs.reshape(-1).long().tolist() == list(held_out.indices)
    assert sorted(train_rows.reshape(-1).long().tolist() + list(held_out.indices)) == list(range(len(inputs)))
    assert torch.equal(held_out.targets, targets[list(held_out.indices)])


def test_a_run_scores_its_initial_and_final_models_and_says_so(honest, capsys):
    scores = [json.loads(line) for line in (honest / files.EVALUATIONS).read_text().splitlines()]
    assert [s["after_step"] for s in scores] == [0, 3]
    assert all(s["samples"] == 359 and 0 <= s["correct"] <= 359 and s["accuracy"] == s["correct"] / 359 for s in scores)
    events = [json.loads(line) for line in (honest / files.AUDIT).read_text().splitlines()]
    assert [e["after_step"] for e in events if e["event"] == "evaluation"] == [0, 3]
    manifest = json.loads((honest / files.MANIFEST).read_text())
    dataset = json.loads((honest / files.DATASET).read_text())
    holdout = manifest["dataset"]["holdout"]
    assert holdout == {k: v for k, v in dataset["holdout"].items() if k != "indices"}
    assert holdout["samples"] == 359 and holdout["of"] == 1797 and holdout["fraction"] == 0.2
    assert manifest["dataset"]["root"] == dataset_root(dataset["leaves"], holdout["commitment"])
    assert manifest["dataset"]["num_batches"] == (1797 - 359) // 8


def test_the_summary_shows_held_out_accuracy_of_the_initial_and_final_model(honest_run, capsys):
    summary = honest_run[1]
    assert [e.after_step for e in summary.evaluations] == [0, 3]
    print("\n".join(summary_lines(summary)))
    first, last = summary.evaluations
    assert f"held-out accuracy: {first.accuracy:.1%} -> {last.accuracy:.1%} (359 samples, initial -> after step 3)" in capsys.readouterr().out


def test_an_epoch_end_is_scored_too(tmp_path):
    summary = run_digits(tmp_path / "run", "data=synthetic", "model=tiny_mlp", "train.batch_size=8", "train.epochs=2", "train.max_steps=null")
    batches = (64 - round(0.2 * 64)) // 8
    assert [e.after_step for e in summary.evaluations] == [0, batches, 2 * batches]
    assert all(e.correct is None and e.accuracy is None for e in summary.evaluations)  # synthetic is a regression set
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache")
    assert report.ok and {"holdout", "evaluation"} <= set(report.passed), report.summary()
    assert f"held-out scores after steps [{batches}]: the trainer's (no model file of those steps to score); only the initial and final models are rescored" in report.notes


def test_no_holdout_means_no_scores_and_a_note(tmp_path):
    summary = run_digits(tmp_path / "run", "data.holdout=0", "data=synthetic", "model=tiny_mlp")
    assert summary.evaluations == ()
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache")
    assert report.ok and "holdout" not in report.passed
    assert any("no held-out set declared" in note for note in report.notes)


def test_the_honest_run_verifies_with_its_held_out_checks(honest, tmp_path):
    report = verify_run(honest, cache_dir=tmp_path / "cache")
    assert report.ok, report.summary()
    assert {"dataset-root", "holdout", "evaluation"} <= set(report.passed)


def test_scores_of_a_data_set_verify_cannot_open_are_not_passed_and_said_to_be_the_trainers(honest, tmp_path):
    """A review: the held-out scores of a data set that is not built in were never rescored, yet
    `evaluation` was listed as passed (the report showed them under VERIFIED)."""
    from pot_zk.testing.bundle_edit import sync_audit

    run = copy_of(honest, tmp_path)
    rewrite_json(run / files.MANIFEST, lambda m: m["dataset"].update(name="mine"))
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache")
    assert "evaluation" not in report.passed
    assert any("the held-out scores (evaluations.jsonl) are the trainer's: no model was scored here" in note for note in report.notes), report.notes


def test_a_recorded_score_better_than_the_models_is_found(honest, tmp_path):
    run = copy_of(honest, tmp_path)

    def flatter(record):
        if record.get("after_step") == 3:
            record.update(correct=record["correct"] + 40, accuracy=(record["correct"] + 40) / 359)

    rewrite_jsonl(run / files.EVALUATIONS, flatter)
    assert findings(run, tmp_path) == {("evaluation", "audit-mismatch"), ("evaluation", "score-mismatch")}
    rewrite_jsonl(run / files.AUDIT, flatter)  # a full rewrite of the trail to match
    assert findings(run, tmp_path) == {("evaluation", "score-mismatch")}


def test_a_recorded_loss_of_nan_is_not_the_rescored_loss(honest, tmp_path):
    """review43: a final score recorded as NaN (JSON readers take it) passed the rescoring, whose
    ``abs(found - recorded) > tolerance`` is false for NaN: on a regression set the loss is the
    only held-out score, so a bad one could be hidden."""
    run = copy_of(honest, tmp_path)

    def nan(record):
        if record.get("after_step") == 3:
            record["loss"] = float("nan")

    rewrite_jsonl(run / files.EVALUATIONS, nan)
    rewrite_jsonl(run / files.AUDIT, nan)
    assert findings(run, tmp_path) == {("evaluation", "score-mismatch")}


def test_a_stated_accuracy_its_counts_do_not_give_is_found(honest, tmp_path):
    """Only the stored accuracy changed, in the records and the trail alike: verify rescored the
    counts, so it compares the stated accuracy with them too (reports read that field)."""
    run = copy_of(honest, tmp_path)

    def flatter(record):
        if record.get("after_step") == 3:
            record.update(accuracy=0.99)

    rewrite_jsonl(run / files.EVALUATIONS, flatter)
    rewrite_jsonl(run / files.AUDIT, flatter)
    assert findings(run, tmp_path) == {("evaluation", "accuracy-mismatch")}


def test_a_score_counting_fewer_held_out_samples_than_declared_is_found(honest, tmp_path):
    """A review: rewriting each score's ``samples`` to its ``correct`` count made the stated
    accuracy 100 % and consistent with its counts, and verify said VERIFIED (the rescoring
    compared only correct and loss). The denominator is the declared set's size."""
    run = copy_of(honest, tmp_path)

    def perfect(record):
        if record.get("event", "evaluation") == "evaluation":
            record.update(samples=record["correct"], accuracy=1.0)

    rewrite_jsonl(run / files.EVALUATIONS, perfect)
    rewrite_jsonl(run / files.AUDIT, perfect)
    assert findings(run, tmp_path) == {("evaluation", "sample-count-mismatch"), ("evaluation", "score-mismatch")}


def test_a_score_after_a_step_the_run_does_not_have_is_found(honest, tmp_path):
    """A review: a score "after step 4" of a 3-step run was only a note, and reports showed it
    as the last accuracy."""
    run = copy_of(honest, tmp_path)
    last = json.loads((run / files.EVALUATIONS).read_text().splitlines()[-1])
    added = {**last, "after_step": 4, "correct": last["samples"] - 9, "accuracy": (last["samples"] - 9) / last["samples"]}
    with (run / files.EVALUATIONS).open("a") as out:
        out.write(json.dumps(added) + "\n")
    events = [json.loads(line) for line in (run / files.AUDIT).read_text().splitlines()]
    logged = next(e for e in events if e["event"] == "evaluation" and e["after_step"] == 3)
    at = events.index(logged) + 1
    events.insert(at, {**logged, **{k: added[k] for k in ("after_step", "correct", "accuracy")}})
    (run / files.AUDIT).write_bytes(chain_lines(events))
    assert findings(run, tmp_path) == {("evaluation", "unknown-step")}


def test_a_dropped_score_of_the_final_model_is_found(honest, tmp_path):
    run = copy_of(honest, tmp_path)
    lines = (run / files.EVALUATIONS).read_text().splitlines()
    (run / files.EVALUATIONS).write_text(lines[0] + "\n")
    events = [json.loads(line) for line in (run / files.AUDIT).read_text().splitlines()]
    (run / files.AUDIT).write_bytes(chain_lines([e for e in events if not (e["event"] == "evaluation" and e["after_step"] == 3)]))
    assert findings(run, tmp_path) == {("evaluation", "missing-evaluation")}


def test_held_out_positions_other_than_the_seeded_choice_are_found(honest, tmp_path):
    run = copy_of(honest, tmp_path)

    def swap(dataset):
        dataset["holdout"]["indices"][0] = next(i for i in range(1797) if i not in dataset["holdout"]["indices"])
        dataset["holdout"]["indices"].sort()

    rewrite_json(run / files.DATASET, swap)
    assert findings(run, tmp_path) == {("holdout", "holdout-indices")}


def test_a_held_out_declaration_that_differs_from_the_manifest_is_found(honest, tmp_path):
    run = copy_of(honest, tmp_path)
    rewrite_json(run / files.DATASET, lambda dataset: dataset["holdout"].update(seed=1))
    assert findings(run, tmp_path) == {("holdout", "holdout-mismatch")}


def test_a_commitment_to_other_held_out_samples_is_found(tmp_path, monkeypatch):
    """A trainer that holds other samples out than it declares (here: the declared positions,
    but samples shifted by one) commits to them consistently; the verifier reloads the digits."""
    import pot_zk.data.datasets as data

    def shifted(inputs, targets, fraction, seed):
        train_inputs, train_targets, held_out = split_holdout(inputs, targets, fraction, seed)
        moved = [(i + 1) % len(inputs) for i in held_out.indices]
        return train_inputs, train_targets, type(held_out)(inputs[moved], targets[moved], held_out.indices, fraction, seed, held_out.of)

    monkeypatch.setattr(data, "split_holdout", shifted)  # where train's seeded_batches looks it up
    run_digits(tmp_path / "run")
    assert findings(tmp_path / "run", tmp_path) == {("holdout", "holdout-commitment")}


def test_a_held_out_commitment_outside_the_dataset_root_is_found(honest, tmp_path):
    run = copy_of(honest, tmp_path)
    rewrite_json(run / files.DATASET, lambda dataset: dataset["holdout"].update(commitment="00" * 32))
    assert ("dataset-root", "root-mismatch") in findings(run, tmp_path)


def test_report_shows_held_out_accuracy_and_plots_it(honest, tmp_path):
    from pot_zk.report.run_report import write_report

    written = write_report(honest, tmp_path / "report")
    assert (tmp_path / "report" / "accuracy.png").read_bytes().startswith(b"\x89PNG")
    scores = [json.loads(line) for line in (honest / files.EVALUATIONS).read_text().splitlines()]
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert f"| held-out accuracy | {scores[0]['accuracy']:.1%} -> {scores[-1]['accuracy']:.1%} (after step 0 -> after step 3) |" in markdown
    assert "| held-out set | 359 of 1797 samples (fraction 0.2, seed 0) |" in markdown
    assert tmp_path / "report" / "report.md" in written


def test_sweep_report_has_the_initial_and_final_accuracy_of_each_job(honest, tmp_path):
    from pot_zk.report.sweep import gather

    sweep = tmp_path / "sweep"
    shutil.copytree(honest, sweep / "0")
    shutil.copytree(honest, sweep / "1")
    rewrite_jsonl(sweep / "1" / files.EVALUATIONS, lambda r: r.update(accuracy=0.99) if r["after_step"] == 3 else None)
    table = gather(sweep)
    scores = [json.loads(line) for line in (honest / files.EVALUATIONS).read_text().splitlines()]
    assert [table.value(job, "accuracy_initial") for job in table.jobs] == [scores[0]["accuracy"]] * 2
    # from the counts verify rescores, not the stored field (a review showed 0.99 beside a VERIFIED run)
    assert [table.value(job, "accuracy_final") for job in table.jobs] == [scores[-1]["accuracy"]] * 2
    assert [table.value(job, "heldout_loss_final") for job in table.jobs] == [scores[-1]["loss"]] * 2
