"""pot_zk.track observes a loop that keeps its own step: a shuffling DataLoader, the loop's own
loss object, zero_grad, backward and optimizer.step. Each step is committed as it comes; the
first step that is not the declared one is undone and refused, naming what differs. No prover
runs here (mode=disabled; the zk-groth16 statement's exact arithmetic still applies)."""

from __future__ import annotations

import re

import copy
import io
import json

import pytest
import torch

import pot_zk
from pot_zk.backends.registry import commitments_of, spec_from_dict
from pot_zk.data.datasets import holdout_indices, load_dataset
from pot_zk.data.samples import built_in_dataset, sample_root
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError, StepMismatchError, WitnessBuilderError
from pot_zk.runs.bundle import RunBundle
from pot_zk.testing.bundle_edit import jsonl, sync_audit, write_jsonl
from pot_zk.runs.track import track
from pot_zk.verify.run import verify_run

from loop_support import run_pins

OVERRIDES = ["mode=disabled", "prover=groth16"]


def _setup(seed: int = 0, samples: int = 16):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(seed + 1)
    data = torch.utils.data.TensorDataset(torch.rand(samples, 4, generator=generator) * 2 - 1, torch.randint(0, 3, (samples,), generator=generator))
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed + 2))
    return model, optimizer, data, loader


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_pot_zk_exports_track():
    assert pot_zk.track is track


def test_a_shuffling_dataloader_loop_with_its_own_loss_is_committed_step_by_step_and_verifies(tmp_path, capfd):
    model, optimizer, data, loader = _setup()
    loss_fn = torch.nn.CrossEntropyLoss()
    drawn = []
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
        for _epoch in range(2):
            for x, y in loader:
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
                drawn.append((x, y))
    assert run.summary.status == "completed" and run.steps == 16
    assert capfd.readouterr() == ("", ""), "a library call prints nothing (the summary is the caller's to print)"
    records = RunBundle.open(tmp_path / "run").commitments()
    for record, (x, y) in zip(records, drawn):  # each step names the samples it drew
        assert torch.equal(data.tensors[0][record["samples"]], x) and torch.equal(data.tensors[1][record["samples"]], y)
    assert len({tuple(r["samples"]) for r in records}) > 8, "a shuffling loader forms new batches every epoch"
    manifest = RunBundle.open(tmp_path / "run").manifest()
    assert manifest["training"]["batches"] == "streamed" and manifest["dataset"]["size"] == 16
    said = str(run.summary)
    assert said.splitlines() == run.summary.lines() and said.startswith("run completed: 16 steps trained, every step committed")
    assert f"commitment head: {run.summary.head}" in said and "--expect-root ROOT --expect-initial W0" in said
    assert f"ROOT = the dataset root it declares, {manifest['dataset']['root']}" in said  # the auditor's pins are its own
    assert "arithmetic: exact" in said and "in short: none of the 16 steps proven" in said
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **run_pins(tmp_path / "run"))
    assert report.ok, report.summary()


def test_own_data_verify_cannot_open_fails_unless_the_auditor_accepts_it_and_then_other_data_is_not_detected(tmp_path):
    """The loop trains on data set B; the trainer then declares the agreed set A's sample root
    (manifest and dataset.json, the audit trail re-chained). verify cannot open the loop's own
    samples, so the pinned root binds the data set, not the batches: data-unopened, unless the
    auditor accepts that weaker statement -- and then the substitution passes (the documented gap)."""
    model, optimizer, data, loader = _setup()
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
        for x, y in loader:
            run.batch(x, y)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    agreed = sample_root(*_setup(seed=5)[2].tensors)
    for name in ("manifest.json", "dataset.json"):
        document = json.loads((tmp_path / "run" / name).read_text())
        (document["dataset"] if name == "manifest.json" else document)["root"] = agreed
        (tmp_path / "run" / name).write_text(json.dumps(document))
    sync_audit(tmp_path / "run")
    found = run_pins(tmp_path / "run")
    assert found["expect_root"] == agreed and found["accept_settings"] == {"batch_order": "recorded", "data": "unopened"}
    refused = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **{**found, "accept_settings": {"batch_order": "recorded"}})
    assert refused.verdict == "FAILED" and ("dataset-root", "data-unopened") in {(f.check, f.reason) for f in refused.findings}, refused.summary()
    accepted = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **found)
    assert accepted.ok and any("verify cannot open (they are the trainer's)" in note for note in accepted.notes), accepted.summary()


def test_gradient_clipping_is_refused_at_the_first_clipped_step_and_the_step_is_undone(tmp_path):
    model, optimizer, data, loader = _setup()
    loss_fn = torch.nn.CrossEntropyLoss()
    norms: list[float] = []
    with pytest.raises(StepMismatchError) as refused:
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
            for x, y in loader:
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                before = _weights(model)
                norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.6)))
                optimizer.step()
    first_clipped = next(i for i, norm in enumerate(norms) if norm > 0.6)
    assert first_clipped > 0, "the test needs unclipped steps before the first clipped one"
    error = refused.value
    assert (error.step, error.differs) == (first_clipped, "gradient-scale")
    assert f"step {first_clipped}: the observed update is not the declared sgd step" in error.message
    assert f"{0.6 / norms[first_clipped]:.4g} times the declared one" in error.message and "clipped" in error.message
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model))), "the refused step must be undone"
    assert run.summary.status == "halted"
    assert len(RunBundle.open(tmp_path / "run").commitments()) == first_clipped


@pytest.mark.parametrize("how", ["nan-gradient", "inf-gradient-clipped", "nan-loss"])
def test_a_step_that_makes_the_weights_not_finite_is_refused_and_undone(tmp_path, how):
    """review27 (high): torch's step wrote NaN into the weights, the comparison with the declared
    step took NaN for "within tolerance", and the exact step was proven in its place: VERIFIED."""
    model, optimizer, data, loader = _setup()
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(StepMismatchError) as refused:
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
            for number, (x, y) in enumerate(loader):
                run.batch(x, y)
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                if number == 2 and how == "nan-loss":
                    loss = loss * torch.tensor(float("nan"))
                loss.backward()
                if number == 2 and how != "nan-loss":
                    model[0].weight.grad[0, 0] = float("nan") if how == "nan-gradient" else float("inf")
                    if how == "inf-gradient-clipped":
                        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
                before = _weights(model)
                optimizer.step()
    error = refused.value
    assert (error.step, error.differs) == (2, "not-finite"), error.message
    assert "not finite (NaN or inf)" in error.message and "0.weight" in error.message
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model))), "the refused step must be undone"
    assert run.summary.status == "halted"
    assert len(RunBundle.open(tmp_path / "run").commitments()) == 2


def test_a_step_that_leaves_the_statements_range_is_refused_naming_its_step_and_undone(tmp_path):
    """review27: a WitnessBuilderError raised after the loop's step (W_t+1 outside the grid's
    range) left the step applied and named no step; a loop skipping it was then refused at the
    next step for a change "outside optimizer.step()" that was pot-zk's own."""
    model, _, data, loader = _setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=40.0)
    with pytest.raises(WitnessBuilderError) as refused:
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
            for x, y in loader:
                run.batch(x, y)
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                before = _weights(model)
                optimizer.step()
    assert refused.value.message.startswith("step 0: ") and refused.value.message.endswith("(the step is undone)"), refused.value.message
    assert refused.value.context["step"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model))), "the refused step must be undone"
    assert run.summary.status == "halted"


@pytest.mark.parametrize(
    ("override", "refused"),
    [("optimizer.weight_decay=0.01", "optimizer.weight_decay=0.0"), ("train.learning_rate=0.05", "train.learning_rate=0.1"),
     ("train.learning_rate=0.1", None), ("train.batch_size=2", None), ("train.batch_size=4", "train.batch_size=2")],
)
def test_an_override_of_a_setting_the_loop_gives_otherwise_is_refused_before_the_run(tmp_path, override, refused):
    """review27: optimizer.weight_decay=0.01 with a loop's SGD without decay was dropped without
    a word (the loop's own settings are declared); a schedule that differs was already refused."""
    model, optimizer, data, loader = _setup()
    x, y = next(iter(loader))
    if refused is None:
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=[*OVERRIDES, override], dataset=data) as run:
            run.batch(x, y)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        assert run.summary.status == "completed"
        return
    with pytest.raises(ConfigurationError, match=f"^the override {re.escape(override)} does not match the loop, whose model and optimizer give {re.escape(refused)}:"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=[*OVERRIDES, override], dataset=data) as run:
            run.batch(x, y)
    assert not (tmp_path / "run").exists()


def test_a_refusal_the_loop_catches_is_in_the_audit_trail_and_the_run_goes_on(tmp_path):
    """review27: a loop that catches a refusal and goes on completed and verified with the refused
    step absent, and audit.jsonl said nothing of it: now a step.refused record, chained."""
    model, optimizer, data, loader = _setup()
    loss_fn = torch.nn.CrossEntropyLoss()
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
        for number, (x, y) in enumerate(loader):
            run.batch(x, y)
            optimizer.zero_grad()
            (loss_fn(model(x), y) * (2 if number == 2 else 1)).backward()
            try:
                optimizer.step()
            except StepMismatchError:
                continue
    assert run.summary.status == "completed" and run.steps == 7
    refused = [e for e in jsonl(tmp_path / "run" / "audit.jsonl") if e["event"] == "step.refused"]
    assert [(e["step"], e["error"]["error_class"], e["error"]["differs"]) for e in refused] == [(2, "StepMismatchError", "gradient-scale")]
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **run_pins(tmp_path / "run"))
    assert report.ok, report.summary()


def test_the_auditor_pins_the_initial_model_with_the_model_file_it_agreed_on(tmp_path):
    """review27: no documented way to compute W_0 for --expect-initial from the agreed model:
    verify now commits a model file itself (the file's state_dict, the run's statement)."""
    from safetensors.torch import save_file

    model, optimizer, data, loader = _setup()
    save_file({k: v.clone() for k, v in model.state_dict().items()}, str(tmp_path / "agreed.safetensors"))
    other, _, _, _ = _setup(seed=5)
    save_file({k: v.clone() for k, v in other.state_dict().items()}, str(tmp_path / "other.safetensors"))
    wider = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    save_file({k: v.clone() for k, v in wider.state_dict().items()}, str(tmp_path / "wider.safetensors"))
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
        _train(run, model, optimizer, loader)
    pins = {**run_pins(tmp_path / "run"), "cache_dir": tmp_path / "cache"}
    agreed = verify_run(tmp_path / "run", **{**pins, "expect_initial": str(tmp_path / "agreed.safetensors")})
    assert agreed.ok and "initial-pinned" in agreed.passed, agreed.summary()
    as_path = verify_run(tmp_path / "run", **{**pins, "expect_initial": tmp_path / "agreed.safetensors"})  # review30: a Path crashed
    assert as_path.ok and "initial-pinned" in as_path.passed, as_path.summary()
    torch.save(model.state_dict(), tmp_path / "agreed.pt")  # review29: safetensors' own error stopped verify (verifier-error)
    for name, words in (("other.safetensors", "step 0's W_t commits to"), ("wider.safetensors", "not a model file of this statement"),
                        ("agreed.pt", "not a safetensors model file")):
        report = verify_run(tmp_path / "run", **{**pins, "expect_initial": str(tmp_path / name)})
        assert [(f.check, f.reason) for f in report.findings] == [("initial-model", "unexpected-initial")], report.summary()
        assert words in report.findings[0].message, report.findings[0].message


def test_an_expected_initial_commitment_is_never_read_as_a_file_of_that_name(tmp_path, monkeypatch):
    """review29 (high): a trainer training from its own W_0 planted a model file named after the
    agreed W_0's hex beside its bundle; verify --expect-initial HEX, run there, committed the
    file instead of comparing with HEX and the run passed. 64 hex digits are a commitment."""
    from safetensors.torch import save_file

    from pot_zk.backends.registry import spec_from_dict
    from pot_zk.verify.run_checks import state_commitments

    model, optimizer, data, loader = _setup()
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
        _train(run, model, optimizer, loader)
    trainers_w0 = RunBundle.open(tmp_path / "run").commitments()[0]["w_before"]
    agreed, _, _, _ = _setup(seed=5)  # the model the auditor agreed on: not the one trained from
    spec = spec_from_dict(RunBundle.open(tmp_path / "run").manifest()["circuit"])
    agreed_w0 = state_commitments({k: v.clone() for k, v in agreed.state_dict().items()}, spec)[0]
    assert agreed_w0 != trainers_w0
    monkeypatch.chdir(tmp_path / "run")
    trainers, _, _, _ = _setup()  # the trainer's own initial model, in a file named after the agreed hex
    save_file({k: v.clone() for k, v in trainers.state_dict().items()}, agreed_w0)
    pins = {**run_pins(tmp_path / "run"), "cache_dir": tmp_path / "cache"}
    report = verify_run(tmp_path / "run", **{**pins, "expect_initial": agreed_w0})
    assert [(f.check, f.reason) for f in report.findings] == [("initial-model", "unexpected-initial")], report.summary()
    save_file({k: v.clone() for k, v in trainers.state_dict().items()}, f"{agreed_w0} ")  # review30: spaces around the hex
    report = verify_run(tmp_path / "run", **{**pins, "expect_initial": f"{agreed_w0} "})
    assert [(f.check, f.reason) for f in report.findings] == [("initial-model", "unexpected-initial")], report.summary()


@pytest.mark.parametrize("optimizer_class", ["momentum", "adamw"])
def test_an_optimizer_warmed_up_before_the_run_is_refused_in_one_line_before_it(tmp_path, optimizer_class):
    """review27: a warm start (optimizer state from before track) was refused at step 0 as
    "velocity before the step: 11 value(s) are not on the 2**-12 grid", which hid the cause."""
    model, _, data, loader = _setup()
    optimizer = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if optimizer_class == "momentum"
                 else torch.optim.AdamW(model.parameters(), lr=0.01))
    x, y = next(iter(loader))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # outside the run
    held = "momentum_buffer" if optimizer_class == "momentum" else "exp_avg, exp_avg_sq, step"
    with pytest.raises(ConfigurationError, match=f"^the optimizer holds state from before the run \\({held}\\)"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
            run.batch(x, y)
    assert not (tmp_path / "run").exists()


def test_a_learning_rate_the_run_did_not_declare_is_refused_naming_both(tmp_path):
    model, optimizer, data, loader = _setup()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(StepMismatchError, match=r"^step 3: the observed update is not the declared sgd step .*: learning rate 0\.05, declared 0\.1$"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            for x, y in loader:
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
                scheduler.step()
    assert len(RunBundle.open(tmp_path / "run").commitments()) == 3


@pytest.mark.parametrize(
    ("loss", "differs"),
    [
        (lambda out, y: torch.nn.functional.cross_entropy(out, y, label_smoothing=0.1), "update"),
        (lambda out, y: torch.nn.functional.cross_entropy(out, y, reduction="sum"), "gradient-scale"),
    ],
    ids=["label-smoothing", "sum-reduction"],
)
def test_another_loss_than_the_declared_one_is_refused_at_once(tmp_path, loss, differs):
    model, optimizer, data, loader = _setup()
    with pytest.raises(StepMismatchError) as refused:
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            for x, y in loader:
                run.batch(x, y)
                optimizer.zero_grad()
                loss(model(x), y).backward()
                optimizer.step()
    assert (refused.value.step, refused.value.differs) == (0, differs)


def test_gradients_left_from_an_earlier_step_are_refused(tmp_path):
    model, optimizer, data, loader = _setup()
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(StepMismatchError) as refused:
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            for x, y in loader:
                run.batch(x, y)
                loss_fn(model(x), y).backward()  # no zero_grad(): step 1 adds step 0's gradients
                optimizer.step()
    assert (refused.value.step, refused.value.differs) == (1, "update")
    assert "zero_grad() missing?" in refused.value.message


def test_an_optimizer_step_without_a_declared_batch_is_refused_and_not_taken(tmp_path):
    model, optimizer, data, loader = _setup()
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(StepMismatchError, match=r"step 2: .*optimizer.step\(\) without a declared batch") as refused:
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            for index, (x, y) in enumerate(loader):
                if index < 2:
                    run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                before = _weights(model)
                optimizer.step()
    assert refused.value.differs == "batch"
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model)))


def test_a_batch_with_samples_outside_the_declared_data_set_is_refused_before_its_step(tmp_path):
    model, optimizer, data, loader = _setup()
    x, y = next(iter(loader))
    with pytest.raises(WitnessBuilderError, match=r"step 0: batch rows \[1\] are not samples of the declared data set"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
            run.batch(x + torch.tensor([[0.0], [0.25]]), y)
    assert run.steps == 0 and not (tmp_path / "run").exists()


def test_a_block_that_declares_no_batch_writes_nothing(tmp_path):
    model, optimizer, _data, _loader = _setup()
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
        pass
    assert run.summary is None and not (tmp_path / "run").exists()


def test_undeclared_data_is_committed_and_said_to_be_undeclared(tmp_path):
    model, optimizer, _data, loader = _setup()
    loss_fn = torch.nn.CrossEntropyLoss()
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
        for x, y in loader:
            run.batch(x, y)
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert (manifest["dataset"]["name"], manifest["dataset"]["root"]) == ("undeclared", None)
    assert all(r["samples"] is None for r in RunBundle.open(tmp_path / "run").commitments())
    pinned = run_pins(tmp_path / "run")
    assert pinned["accept_settings"] == {"batch_order": "recorded", "data": "undeclared"} and "expect_root" not in pinned
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **pinned)
    assert report.ok and any("undeclared" in note for note in report.notes), report.summary()
    unaccepted = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **{**pinned, "accept_settings": {"batch_order": "recorded"}})
    assert {(f.check, f.reason) for f in unaccepted.findings} == {("dataset-root", "data-undeclared")}, unaccepted.summary()


def _synthetic_run(tmp_path):
    """A loop drawing from the built-in synthetic set (16 samples, class labels), declared by name."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = built_in_dataset("synthetic", 4, 3, loss="cross_entropy", num_samples=16, seed=3)
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(1))
    loss_fn = torch.nn.CrossEntropyLoss()
    overrides = [*OVERRIDES, "data=synthetic", "data.num_samples=16", "data.seed=3"]
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=overrides, dataset="synthetic") as run:
        for x, y in loader:
            run.batch(x, y)
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
    return tmp_path / "run"


def test_a_built_in_data_set_is_recomputed_and_a_batch_swapped_for_one_outside_it_fails_verification(tmp_path):
    run = _synthetic_run(tmp_path)
    pinned = run_pins(run, head=False)  # a built-in set's root is recomputed: the auditor need not pin it
    honest = verify_run(run, cache_dir=tmp_path / "cache", **{k: v for k, v in pinned.items() if k != "expect_root"})
    assert honest.ok and "dataset-samples" in honest.passed, honest.summary()
    [dataset_line] = [line for line in honest.summary().splitlines() if line.startswith("dataset: ")]
    assert "None" not in dataset_line, dataset_line  # review23: "None batches" for a streamed loop's data set
    spec = spec_from_dict(json.loads((run / "manifest.json").read_text())["circuit"])
    records = jsonl(run / "commitments.jsonl")
    x, y = _sample_values(records[2]["samples"])
    records[2]["batch"] = commitments_of(spec).commit(torch.cat([(x + 0.25).reshape(-1), y.reshape(-1)]).double(), "poisoned batch")
    write_jsonl(run / "commitments.jsonl", records)
    sync_audit(run)  # a tamperer who rewrites the whole audit chain
    report = verify_run(run, cache_dir=tmp_path / "cache", **{k: v for k, v in pinned.items() if k != "expect_root"})
    assert {(f.check, f.reason, f.step) for f in report.findings} == {("steps", "batch-not-in-dataset", 2)}, report.summary()


@pytest.mark.parametrize(("data", "key", "value", "finding"), [
    ("own", "size", 1_000_000, ("commitment-head", "unexpected-head")),
    ("own", "size", 0, ("statement", "plan-not-canonical")),
    ("own", "leaf", "row", ("statement", "plan-not-canonical")),
    ("own", "name", "mine", ("statement", "plan-not-canonical")),
    ("undeclared", "size", 5, ("statement", "plan-not-canonical")),
    ("undeclared", "name", "digits", ("statement", "plan-not-canonical")),
])
def test_a_streamed_runs_data_set_rewritten_after_hand_over_is_refused(tmp_path, data, key, value, finding):
    """review38: verify reads a streamed run's declared sample count (the positions a step may
    name, the data-use note) but the head did not hash it: on a loop's own data, every pin as
    handed over, ``size`` rewritten from 16 to 1,000,000 gave the same head and VERIFIED.
    review39: once hashed, any ``size`` of a run without a data set (root null), or a name pot-zk
    does not write, was another head that verified."""
    model, optimizer, dataset, loader = _setup()
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=dataset if data == "own" else None) as run:
        _train(run, model, optimizer, loader)
    handed_over = run_pins(tmp_path / "run")
    assert verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **handed_over).ok
    for name in ("manifest.json", "dataset.json"):
        document = json.loads((tmp_path / "run" / name).read_text())
        target = document["dataset"] if name == "manifest.json" else document
        if key in target:
            target[key] = value
        (tmp_path / "run" / name).write_text(json.dumps(document))
    sync_audit(tmp_path / "run")
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **handed_over)
    assert report.verdict == "FAILED" and finding in {(f.check, f.reason) for f in report.findings}, report.summary()


def test_a_streamed_runs_head_as_computed_before_it_hashed_the_sample_count_is_named_not_accepted(tmp_path):
    """review39: a tracked run made before the head hashed ``size`` and ``leaf`` failed with its
    handed-over head and nothing told a changed definition from a rewritten run."""
    from pot_zk.core.challenge import commitment_head

    model, optimizer, dataset, loader = _setup()
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=dataset) as run:
        _train(run, model, optimizer, loader)
    bundle = RunBundle.open(tmp_path / "run")
    earlier = commitment_head(bundle.manifest(), bundle.commitments(), streamed_fields=False)
    pins = {**run_pins(tmp_path / "run"), "expect_head": earlier}
    assert earlier != run_pins(tmp_path / "run")["expect_head"]
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **pins)
    [finding] = [f for f in report.findings if f.reason == "unexpected-head"]
    assert report.verdict == "FAILED" and "as pot-zk computed it before 2026-12-07, without the declared sample count (size 16)" in finding.message


def test_verify_says_how_many_distinct_samples_the_loops_batches_drew(tmp_path):
    """review36: a loop that trained one sample over and over ([s, s] at every step) got
    ``passed: dataset-samples`` and nothing said how little of the data set it used."""
    data_use = lambda report: [note for note in report.notes if note.startswith("data use:")]  # noqa: E731
    run = _synthetic_run(tmp_path)
    pinned = {k: v for k, v in run_pins(run, head=False).items() if k != "expect_root"}
    [honest] = data_use(verify_run(run, cache_dir=tmp_path / "cache", **pinned))
    assert honest.startswith("data use: the 8 steps' batches name 16 distinct samples of the 16 the data set has outside its held-out set (")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = _sample_values([5, 5])
    with track(model, optimizer, run_dir=tmp_path / "repeat", overrides=[*OVERRIDES, "data=synthetic", "data.num_samples=16", "data.seed=3"], dataset="synthetic") as repeat:
        for _ in range(4):
            repeat.batch(x, y.long(), indices=[5, 5])
            optimizer.zero_grad()
            torch.nn.CrossEntropyLoss()(model(x), y.long()).backward()
            optimizer.step()
    pinned = {k: v for k, v in run_pins(tmp_path / "repeat", head=False).items() if k != "expect_root"}
    report = verify_run(tmp_path / "repeat", cache_dir=tmp_path / "cache", **pinned)
    assert report.ok and "dataset-samples" in report.passed, report.summary()
    [repeated] = data_use(report)
    assert repeated.startswith("data use: the 4 steps' batches name 1 distinct sample of the 16 the data set has outside its held-out set; "
                               "4 of the batches name a sample more than once ("), repeated


def _sample_values(samples):
    data = built_in_dataset("synthetic", 4, 3, loss="cross_entropy", num_samples=16, seed=3)
    return data.tensors[0][samples], data.tensors[1][samples]


def test_a_built_in_data_set_declared_with_other_settings_fails_its_recomputation(tmp_path):
    run = _synthetic_run(tmp_path)
    pinned = {k: v for k, v in run_pins(run, head=False).items() if k != "expect_root"}
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["dataset"]["seed"] = 4  # another synthetic set than the loop drew from
    (run / "manifest.json").write_text(json.dumps(manifest))
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache", **pinned)
    assert ("dataset-root", "dataset-root-mismatch") in {(f.check, f.reason) for f in report.findings}, report.summary()


def test_a_streamed_run_relabelled_seeded_fails_its_batch_order(tmp_path):
    """A cheater's rewrite: the loop chose every batch, the manifest says a seeded schedule did
    (epochs, seed, max_steps, and as many dummy leaves as steps). A seeded order would need no
    --accept-setting batch_order=recorded; streamed batches are never a seeded schedule's."""
    run = _synthetic_run(tmp_path)
    pinned = {k: v for k, v in run_pins(run, head=False).items() if k != "expect_root"}
    manifest = json.loads((run / "manifest.json").read_text())
    steps = len(jsonl(run / "commitments.jsonl"))
    manifest["training"].update(batch_order="seeded", epochs=1, seed=0, max_steps=steps)
    (run / "manifest.json").write_text(json.dumps(manifest))
    dataset = json.loads((run / "dataset.json").read_text())
    (run / "dataset.json").write_text(json.dumps({**dataset, "leaves": ["0x" + "00" * 32] * steps}))
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache", **{k: v for k, v in pinned.items() if k != "accept_settings"})
    assert not report.ok and ("steps", "seeded-streamed") in {(f.check, f.reason) for f in report.findings}, report.summary()


def declare_held_out(run) -> list[int]:
    """Add to ``run`` (a _synthetic_run) the declaration of a held-out quarter of its data set,
    with its honest commitment, as a cheater would (audit trail re-chained); its positions."""
    manifest = json.loads((run / "manifest.json").read_text())
    spec = spec_from_dict(manifest["circuit"])
    held = holdout_indices(16, 0.25, 0)
    inputs, targets = load_dataset("synthetic", 4, 3, 16, 3, "cross_entropy")
    values = torch.cat([inputs[held].reshape(-1), targets[held].reshape(-1)]).double()
    holdout = {"fraction": 0.25, "seed": 0, "of": 16, "samples": len(held), "commitment": commitments_of(spec).commit(values, "held-out")}
    manifest["dataset"]["holdout"] = holdout
    (run / "manifest.json").write_text(json.dumps(manifest))
    dataset = json.loads((run / "dataset.json").read_text())
    (run / "dataset.json").write_text(json.dumps({**dataset, "holdout": {**holdout, "indices": held}}))
    sync_audit(run)
    return held


def test_a_streamed_step_on_samples_of_the_declared_held_out_set_fails(tmp_path):
    """The held-out set a streamed run declares (here added by a cheater, with its honest
    commitment) must be apart from every step's samples: verify scores the models on it."""
    run = _synthetic_run(tmp_path)
    pinned = {k: v for k, v in run_pins(run, head=False).items() if k != "expect_root"}
    held = declare_held_out(run)
    pinned["accept_settings"] = {**pinned["accept_settings"], "holdout_fraction": "0.25"}  # the cheater's declared share
    report = verify_run(run, cache_dir=tmp_path / "cache", **pinned)
    overlapping = {r["step"] for r in jsonl(run / "commitments.jsonl") if set(r["samples"]) & set(held)}
    assert overlapping and len(overlapping) < len(jsonl(run / "commitments.jsonl"))
    assert {f.step for f in report.findings if f.reason == "trained-on-held-out"} == overlapping, report.summary()
    assert "holdout" in report.passed, "the declaration itself is the honest one"


def test_momentum_and_weight_decay_from_the_loop_are_committed_and_certified(tmp_path):
    """SGD with momentum (a velocity committed next to the weights, as ``pot-zk train
    optimizer.momentum=0.9`` proves it); the prover program fails, so the selected steps fall back
    to freivalds certificates, which verify checks against the momentum statement."""
    model, _optimizer, data, loader = _setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    overrides = ["prover=ezkl", "handler=fallback", "retry=none", "prover.binary=/bin/false", "policy=every_k", "policy.k=3", f"cache_dir={tmp_path / 'cache'}"]
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=overrides, dataset=data) as run:
        for x, y in loader:
            run.batch(x, y)
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
    spec = spec_from_dict(RunBundle.open(tmp_path / "run").manifest()["circuit"])
    assert (spec.kind, spec.architecture.momentum, spec.architecture.weight_decay) == ("momentum", 0.9, 0.01)
    assert run.summary.progress["proof_types"] == {"freivalds": 3}
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **run_pins(tmp_path / "run"))
    assert report.ok and report.coverage == {"freivalds": 3, "commitment-only": 5}, report.summary()


def test_a_loops_own_adamw_is_declared_trained_exactly_and_its_reexec_certificates_verify(tmp_path):
    """torch.optim.AdamW in one's own loop under zk-groth16: declared from the loop (optimizer.name
    adamw, its betas, eps and weight decay), each step replaced by the exact AdamW step (weights,
    moments and step count on their grids), the prover program failing so the selected steps fall
    back to reexec certificates, which verify recomputes from the statement's exact step."""
    model, _optimizer, data, loader = _setup()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, betas=(0.9, 0.99), weight_decay=0.01)
    overrides = ["prover=groth16", "handler=fallback", "retry=none", "prover.binary=/bin/false", "policy=every_k", "policy.k=3", f"cache_dir={tmp_path / 'cache'}"]
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=overrides, dataset=data) as run:
        _train(run, model, optimizer, loader)
    manifest = RunBundle.open(tmp_path / "run").manifest()
    spec = spec_from_dict(manifest["circuit"])
    assert spec.kind == "adamw" and spec.architecture.betas == (0.9, 0.99) and spec.architecture.weight_decay == 0.01
    assert manifest["training"]["optimizer"] == "torch.optim.AdamW"
    assert run.summary.progress["proof_types"] == {"reexec": 3}
    assert all({"m_before", "v_after", "t_after"} <= set(r) for r in RunBundle.open(tmp_path / "run").commitments()), "the moments and step count committed"
    said = str(run.summary)  # a review: "within float rounding of yours" is not true of Adam's normalised step
    assert "a coordinate whose gradient rounds to 0 on the grid does not move" in said and "within float rounding" not in said
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **run_pins(tmp_path / "run"))
    assert report.ok and report.coverage == {"reexec": 3, "commitment-only": 5}, report.summary()


def test_a_momentum_changed_by_the_loop_is_refused_naming_both(tmp_path):
    model, _optimizer, data, loader = _setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(StepMismatchError, match=r"step 2: .*optimizer settings changed: momentum 0\.5, declared 0\.9"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=["prover=ezkl", "mode=disabled"]) as run:
            for index, (x, y) in enumerate(loader):
                if index == 2:
                    optimizer.param_groups[0]["momentum"] = 0.5
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()


def _train(run, model, optimizer, loader, stop_after: int | None = None) -> None:
    loss_fn = torch.nn.CrossEntropyLoss()
    taken = 0
    for x, y in loader:
        taken += 1
        if taken <= run.steps:
            continue
        if stop_after is not None and run.steps == stop_after:
            raise KeyboardInterrupt("the user stops the loop")
        run.batch(x, y)
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()


def test_an_interrupted_run_resumes_in_a_fresh_model_and_optimizer_and_verifies(tmp_path):
    model, optimizer, data, loader = _setup()
    with pytest.raises(KeyboardInterrupt):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
            _train(run, model, optimizer, loader, stop_after=3)
    assert run.summary.status == "interrupted"
    model, optimizer, data, loader = _setup(seed=0)  # a new process: the model starts from its init again
    with track(model, optimizer, run_dir=tmp_path / "run", dataset=data, resume=True) as resumed:
        assert resumed.steps == 3
        _train(resumed, model, optimizer, loader)
    assert resumed.summary.status == "completed" and resumed.steps == 8
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **run_pins(tmp_path / "run"))
    assert report.ok, report.summary()


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("completed", "holds a completed run; a completed run is never extended"),
        ("other-data", "the data set given is not the one"),
        ("proven-training", "was not made by track\\(\\)"),
        ("nothing", "is not a pot-zk run directory"),
        ("other-model", "the model does not fit the run's checkpoint.safetensors: 0.bias is \\(3,\\) there and \\(5,\\) in the model"),
    ],
)
def test_what_cannot_be_resumed_is_refused_in_one_line(tmp_path, what, message):
    model, optimizer, data, loader = _setup()
    run_dir = tmp_path / "run"
    if what == "proven-training":
        from pot_zk.hooks import proven_training

        batch = next(iter(loader))
        with proven_training(model, optimizer, [batch], run_dir=run_dir, overrides=OVERRIDES) as handle:
            handle.step(*batch)
    elif what != "nothing":
        with track(model, optimizer, run_dir=run_dir, overrides=OVERRIDES, dataset=data) as run:
            _train(run, model, optimizer, loader)
    other = torch.utils.data.TensorDataset(data.tensors[0] + 1, data.tensors[1]) if what == "other-data" else data
    if what in ("other-data", "other-model"):
        (run_dir / "model_final.safetensors").unlink()  # as if it had stopped before completing
        _drop_run_end(run_dir)
    if what == "other-model":  # review27: torch's multi-line RuntimeError from load_state_dict
        model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ConfigurationError, match=message) as refused:
        with track(model, optimizer, run_dir=run_dir, dataset=other, resume=True):
            pass
    assert "\n" not in refused.value.message


@pytest.mark.parametrize("stop", [3, 0])
def test_a_scheduled_run_resumed_without_its_scheduler_is_refused_in_one_line(tmp_path, stop):
    """review27: it was refused at the first resumed step as "learning rate 0.1, declared 0.0691";
    review30: stopped before its first step was recorded, it was not refused at all."""
    model, optimizer, data, loader = _setup()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    with pytest.raises(KeyboardInterrupt):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data, scheduler=scheduler) as run:
            for number, (x, y) in enumerate(loader):
                if number == stop and stop > 0:
                    raise KeyboardInterrupt("the user stops the loop")
                run.batch(x, y)
                if stop == 0:
                    raise KeyboardInterrupt("the user stops the loop before the first step")
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
                scheduler.step()
    model, optimizer, data, loader = _setup()
    with pytest.raises(ConfigurationError, match=r"declares a learning-rate schedule \(StepLR.*\): resume with the same scheduler") as refused:
        with track(model, optimizer, run_dir=tmp_path / "run", dataset=data, resume=True):
            pass
    assert "\n" not in refused.value.message


def test_a_run_whose_schedule_the_configuration_declares_resumes_without_a_scheduler(tmp_path):
    """review29: the check above refused it too (the loop sets its own rate; no scheduler object)."""
    schedule = ["optimizer.schedule.name=step", "optimizer.schedule.step_size=2", "optimizer.schedule.gamma=0.5"]

    def loop(run, model, optimizer, loader, stop=None):
        for number, (x, y) in enumerate(loader):
            if number < run.steps:
                continue
            if number == stop:
                raise KeyboardInterrupt("the user stops the loop")
            for group in optimizer.param_groups:
                group["lr"] = 0.1 * 0.5 ** (number // 2)  # the loop's own schedule, the declared one
            run.batch(x, y)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    model, optimizer, data, loader = _setup()
    with pytest.raises(KeyboardInterrupt):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=[*OVERRIDES, *schedule], dataset=data) as run:
            loop(run, model, optimizer, loader, stop=3)
    model, optimizer, data, loader = _setup()
    with track(model, optimizer, run_dir=tmp_path / "run", dataset=data, resume=True) as resumed:
        loop(resumed, model, optimizer, loader)
    assert resumed.summary.status == "completed" and resumed.steps == 8


def test_a_refusal_of_run_batch_the_loop_catches_is_in_the_audit_trail(tmp_path):
    """review29: a batch of another size, refused by run.batch itself, left no step.refused."""
    model, optimizer, data, _ = _setup()
    loader = torch.utils.data.DataLoader(data, batch_size=3, shuffle=False, drop_last=False)  # 16 = 5 x 3 + 1
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
        for x, y in loader:
            try:
                run.batch(x, y)
            except WitnessBuilderError:
                continue
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    assert run.summary.status == "completed" and run.steps == 5
    refused = [e for e in jsonl(tmp_path / "run" / "audit.jsonl") if e["event"] == "step.refused"]
    assert [(e["step"], e["error"]["error_class"]) for e in refused] == [(5, "WitnessBuilderError")]
    assert "a batch of 1 samples" in refused[0]["error"]["message"]


def test_a_refusal_is_recorded_once_and_one_after_the_run_ended_is_still_the_refusal(tmp_path):
    """review30: a refusal the observer raised inside run.batch passed the recording twice (run.batch
    and the observer: recorded once); one after the block ended wrote to the closed trail and raised
    ValueError: flush of closed file instead of the refusal."""
    model, optimizer, data, loader = _setup()
    batches = iter(loader)
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
        x, y = next(batches)
        run.batch(x, y)
        with pytest.raises(StepMismatchError, match="a batch is already declared"):
            run.batch(x, y)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    refused = [e for e in jsonl(tmp_path / "run" / "audit.jsonl") if e["event"] == "step.refused"]
    assert [(e["step"], e["error"]["differs"]) for e in refused] == [(0, "batch")]
    with pytest.raises(WitnessBuilderError, match="a batch of 1 samples"):
        run.batch(x[:1], y[:1])


def test_a_batch_proven_training_was_not_given_is_in_the_audit_trail(tmp_path):
    """review30: proven_training's own refusal (an undeclared batch) had no test of its record."""
    from pot_zk.hooks import proven_training

    model, optimizer, data, loader = _setup()
    batches = [next(iter(loader))]
    with proven_training(model, optimizer, batches, run_dir=tmp_path / "run", overrides=OVERRIDES) as handle:
        handle.step(*batches[0])
        with pytest.raises(WitnessBuilderError, match="not one of the batches declared"):
            handle.step(batches[0][0] + 1, batches[0][1])
    refused = [e for e in jsonl(tmp_path / "run" / "audit.jsonl") if e["event"] == "step.refused"]
    assert [(e["step"], e["error"]["error_class"]) for e in refused] == [(1, "WitnessBuilderError")]


def _drop_run_end(run_dir):
    records = jsonl(run_dir / "audit.jsonl")
    write_jsonl(run_dir / "audit.jsonl", [r for r in records if r.get("event") != "run.end"])


def test_the_progress_bar_is_drawn_only_when_asked_for(tmp_path, capfd):
    for progress in (False, True):
        model, optimizer, data, loader = _setup()
        with track(model, optimizer, run_dir=tmp_path / f"run-{progress}", overrides=OVERRIDES, progress=progress) as run:
            _train(run, model, optimizer, loader)
        out, err = capfd.readouterr()
        assert out == "" and ("training" in err and "8step" in err) == progress, err


@pytest.mark.parametrize("change", ["weights", "off-grid", "optimizer-state"])
def test_a_change_between_two_steps_outside_the_optimizer_is_refused_at_the_next_step(tmp_path, change):
    """A review: weights changed between two optimizer.step() calls (one grid step added here;
    pruning, loading another model) or an optimizer's state cleared were accepted, and the
    records copied W_t from the step before, so a run whose changed step was not proven
    verified. The step after the change is refused (a weight moved off the exact statement's
    grid too: it was a grid error that did not say what happened)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9 if change == "optimizer-state" else 0.0)
    generator = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 4, generator=generator) * 2 - 1, torch.randint(0, 3, (2,), generator=generator)
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(StepMismatchError, match="was changed outside optimizer.step\\(\\) between the two steps") as refused:
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            for index in range(4):
                if index == 2:
                    if change != "optimizer-state":
                        with torch.no_grad():
                            model[0].weight[0, 0] += 2.0**-12 if change == "weights" else 2.0**-14  # on the grid: only the chain shows it
                    else:
                        optimizer.state.clear()
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
    assert refused.value.step == 2 and refused.value.differs == "state"
    assert [r["step"] for r in RunBundle.open(tmp_path / "run").commitments()] == [0, 1]


def test_a_half_precision_model_is_refused_by_an_exact_statement(tmp_path):
    """A review: a bfloat16 model rounded each exact step's weights back into bfloat16, so the
    model held was not the proven one (verify failed its final model)."""
    model, optimizer, _, loader = _setup()
    model = model.to(torch.bfloat16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = next(iter(loader))
    with pytest.raises(ConfigurationError, match="bfloat16 cannot hold exactly; train in float32 or float64"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            run.batch(x.to(torch.bfloat16), y)
            optimizer.zero_grad()
            torch.nn.CrossEntropyLoss()(model(x.to(torch.bfloat16)), y).backward()
            optimizer.step()


class _Leaky(torch.nn.ReLU):
    def forward(self, x):  # a subclass of torch's ReLU computing another function
        return torch.nn.functional.leaky_relu(x, 0.1)


@pytest.mark.parametrize("variant", ["relu-subclass", "forward-hook", "optimizer-subset"])
def test_a_loop_whose_model_or_optimizer_is_not_the_statements_is_refused_at_its_first_step(tmp_path, variant):
    """A review: under the exact statement these loops matched their own reference step (taken on
    a copy of the same model and optimizer) and were silently replaced by the plain MLP's exact
    step: a ReLU subclass with its own forward, a forward hook, an optimizer that leaves a
    trainable parameter out."""
    model, optimizer, _, loader = _setup()
    if variant == "relu-subclass":
        model[1] = _Leaky()
    elif variant == "forward-hook":
        model[0].register_forward_hook(lambda module, inputs, output: output * 1.5)
    else:
        optimizer = torch.optim.SGD(list(model.parameters())[:2], lr=0.1)
    x, y = next(iter(loader))
    with pytest.raises(InvalidModelStateError, match={"relu-subclass": "unsupported layer sequence", "forward-hook": "forward or backward hooks",
                                                      "optimizer-subset": "the optimizer does not train"}[variant]):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            run.batch(x, y)
            optimizer.zero_grad()
            torch.nn.CrossEntropyLoss()(model(x), y).backward()
            optimizer.step()


def _leaky(x):
    return torch.nn.functional.leaky_relu(x, 0.1)


def _patch(model, how: str):
    """A model object computing another function than the declared MLP, in ways its own copy
    shares (the instance's forward is copied with it; a global module hook applies to the copy)."""
    if how == "instance-forward":
        model[1].forward = _leaky
        return None
    return torch.nn.modules.module.register_module_forward_hook(lambda module, inputs, output: output * 1.5 if isinstance(module, torch.nn.Linear) else output)


@pytest.mark.parametrize("prover", ["groth16", "ezkl"])
@pytest.mark.parametrize("how", ["instance-forward", "global-hook"])
def test_a_model_computing_another_function_than_its_declared_mlp_is_refused_before_the_run_starts(tmp_path, how, prover):
    """The loop's step is checked against the kind's float64 reference computed from W_t and the
    batch without the model's modules. Before, under groth16 a LeakyReLU installed as a ReLU
    instance's own forward, or a global module hook scaling every linear layer, matched its own
    reference step (taken on a copy of the same model) and was replaced by the plain MLP's exact
    step without a word (under ezkl the statement's tolerance check caught it at step 0)."""
    model, optimizer, _, loader = _setup()
    handle = _patch(model, how)
    x, y = next(iter(loader))
    try:
        with pytest.raises(InvalidModelStateError, match="the model does not compute the declared MLP: its w after is up to") as refused:
            with track(model, optimizer, run_dir=tmp_path / "run", overrides=["mode=disabled", f"prover={prover}"]) as run:
                run.batch(x, y)
    finally:
        if handle is not None:
            handle.remove()
    assert "a module with its own forward, a hook or a patched function?" in refused.value.message
    assert not (tmp_path / "run" / "manifest.json").exists()


@pytest.mark.parametrize("optimizer_name", ["sgd", "momentum", "adamw"])
def test_a_model_changed_to_another_function_mid_run_is_refused_at_that_step_and_the_step_undone(tmp_path, optimizer_name):
    model, _, _, loader = _setup()
    optimizer = {
        "sgd": lambda: torch.optim.SGD(model.parameters(), lr=0.1),
        "momentum": lambda: torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01),
        "adamw": lambda: torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01),
    }[optimizer_name]()
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(StepMismatchError, match="step 2: .*the model does not compute the declared MLP") as refused:
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            for number, (x, y) in enumerate(loader):
                if number == 2:
                    model[1].forward = _leaky
                    before = _weights(model)
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
    assert (refused.value.step, refused.value.differs) == (2, "model")
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model))), "the refused step must be undone"
    assert run.summary.status == "halted" and run.summary.progress["steps"] == 2


def test_a_peft_lora_model_computing_another_function_is_refused_and_an_honest_one_is_not(tmp_path):
    """The LoRA kind's reference (adapter gradients from the committed base, adapters and batch)
    refuses a peft model whose ReLU computes a LeakyReLU, and takes the same model unpatched."""
    import peft

    def loop(patched: bool, run_dir):
        torch.manual_seed(7)
        base = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))
        model = peft.get_peft_model(base, peft.LoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"], lora_dropout=0.0))
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.1)
        if patched:
            model.base_model.model[1].forward = _leaky
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        x, y = torch.rand(4, 4) * 2 - 1, torch.randint(0, 3, (4,))
        with track(model, optimizer, run_dir=run_dir, overrides=OVERRIDES) as run:
            for i in (0, 2):
                run.batch(x[i : i + 2], y[i : i + 2])
                optimizer.zero_grad()
                torch.nn.CrossEntropyLoss()(model(x[i : i + 2]), y[i : i + 2]).backward()
                optimizer.step()
        return run

    assert loop(False, tmp_path / "honest").summary.progress["steps"] == 2
    with pytest.raises(InvalidModelStateError, match="not the declared lora step: the model does not compute the declared MLP"):
        loop(True, tmp_path / "patched")


def test_a_model_turned_half_precision_mid_run_is_refused_by_an_exact_statement(tmp_path):
    """A review: model.half() between two steps (grid weights below 0.5 fit float16 exactly)
    skipped the reference check, so a ReLU given its own forward at the same time was replaced
    by the declared step without a word and the run verified."""
    model, optimizer, _, loader = _setup()
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(ConfigurationError, match="the model's weights are float16: .* cannot hold exactly"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            for number, (x, y) in enumerate(loader):
                if number == 2:
                    model.half()
                    model[1].forward = lambda t: 2 * torch.relu(t) + 0.25
                x = x.to(next(model.parameters()).dtype)
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
    assert run.summary.status == "halted" and run.summary.progress["steps"] == 2
    said = str(run.summary)  # a review: a halted run's summary printed the hand-over to the auditor
    assert "commitment head:" not in said and "pot-zk export" not in said
    assert "the run is halted, not completed: pot-zk verify fails it until it completes; resume it with track(..., resume=True) in your loop" in said


def test_an_adam_step_count_moved_by_a_fraction_between_steps_is_refused(tmp_path):
    """A review: `state["step"] += 0.999` moves Adam's bias correction; the count was read with
    int(), so the change was invisible and the step silently replaced by the exact one."""
    model, _, _, loader = _setup()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(InvalidModelStateError, match=r"step count of .* is 1.99\d*, not a whole number of steps: changed outside optimizer.step"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            for number, (x, y) in enumerate(loader):
                if number == 1:
                    for state in optimizer.state.values():
                        state["step"] += 0.999
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
    assert run.summary.progress["steps"] == 1


@pytest.mark.parametrize("optimizer_class, key", [(torch.optim.AdamW, "exp_avg_sq"), (torch.optim.SGD, "momentum_buffer")])
def test_optimizer_state_kept_in_bfloat16_is_refused_naming_the_state(tmp_path, optimizer_class, key):
    """A review: Adam's exp_avg_sq moved to bfloat16 between steps was refused as a model that
    does not compute the declared MLP; the message now names the optimizer's state."""
    model, _, _, loader = _setup()
    optimizer = optimizer_class(model.parameters(), lr=0.01, **({"momentum": 0.9} if optimizer_class is torch.optim.SGD else {}))
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(InvalidModelStateError, match=rf"the optimizer's {key} of .* is bfloat16: .* keep the optimizer's state in the parameters' dtype"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            for number, (x, y) in enumerate(loader):
                if number == 1:
                    for state in optimizer.state.values():
                        state[key] = state[key].to(torch.bfloat16)
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
    assert run.summary.progress["steps"] == 1


def test_a_half_precision_model_keeps_its_momentum_buffer_in_its_own_dtype_under_a_float_statement(tmp_path):
    """A review of the refusal above: torch keeps the buffer in the parameters' dtype, so a
    float16 model's float16 buffer is not narrower than its weights (prover=ezkl takes it)."""
    model, _, _, loader = _setup()
    model.half()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=["prover=ezkl", "mode=disabled"]) as run:
        for x, y in list(loader)[:4]:
            x = x.half()
            run.batch(x, y)
            optimizer.zero_grad()
            torch.nn.CrossEntropyLoss()(model(x), y).backward()
            optimizer.step()
    assert run.summary.status == "completed" and run.steps == 4


def test_a_batch_of_another_width_than_the_model_is_one_error_naming_the_shapes(tmp_path):
    """A review: proven_training / track with batches of the wrong width raised torch's raw
    matrix-multiply RuntimeError."""
    model, optimizer, _, _ = _setup()
    with pytest.raises(InvalidModelStateError, match=r"the first batch \(inputs \(2, 5\), targets \(2,\)\) does not fit the model: "):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            run.batch(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("when", ["before-the-first-step", "after-the-last-step"])
def test_a_change_before_the_first_or_after_the_last_step_is_refused(tmp_path, when):
    """A review: weights negated after the run started and before step 0, or changed after the
    last optimizer.step(), ended the run completed; only verify caught the initial or final
    model's mismatch."""
    model, optimizer, _, loader = _setup()
    loss_fn = torch.nn.CrossEntropyLoss()
    expected = "step 0: its w_before is not the initial model the run saved" if when == "before-the-first-step" else \
        "the model is not the one step 7 ended in: it was changed after the last optimizer.step()"
    with pytest.raises(StepMismatchError, match=expected):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            for number, (x, y) in enumerate(loader):
                run.batch(x, y)
                if number == 0 and when == "before-the-first-step":
                    with torch.no_grad():
                        model[0].weight.neg_()
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
            if when == "after-the-last-step":
                with torch.no_grad():
                    model[2].bias.add_(2.0**-12)
    assert run.summary.status == "halted" and not (tmp_path / "run" / "model_final.safetensors").exists()


def test_an_optimizer_step_under_inference_mode_is_refused_in_one_line(tmp_path):
    """A review: the run ended aborted with autograd's raw RuntimeError."""
    model, optimizer, _, loader = _setup()
    x, y = next(iter(loader))
    with pytest.raises(StepMismatchError, match=r"step 0: .*optimizer.step\(\) under torch.inference_mode\(\)"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
            run.batch(x, y)
            optimizer.zero_grad()
            torch.nn.CrossEntropyLoss()(model(x), y).backward()
            with torch.inference_mode():
                optimizer.step()
    assert run.summary.status == "halted"


def _edited(run, name: str, change) -> None:
    if name.endswith(".jsonl"):
        records = jsonl(run / name)
        change(records)
        write_jsonl(run / name, records)
    else:
        data = json.loads((run / name).read_text())
        change(data)
        (run / name).write_text(json.dumps(data))


def _size(data, size) -> None:
    (data["dataset"] if "dataset" in data else data)["size"] = size


STREAMED_EDITS = {  # a loop's run from the built-in synthetic set: each edit and the finding it must give
    "root-mismatch": ([("dataset.json", lambda d: _size(d, 17))], ("dataset-root", "root-mismatch", None)),
    "dataset-size": ([("dataset.json", lambda d: _size(d, 17)), ("manifest.json", lambda m: _size(m, 17))], ("dataset-root", "dataset-root-mismatch", None)),
    "unusable": ([("manifest.json", lambda m: m["dataset"].update(num_samples=-5))], ("dataset-root", "dataset-root-mismatch", None)),
    "malformed": ([("commitments.jsonl", lambda records: records[1].update(samples=records[1]["samples"][:1]))], ("steps", "batch-samples-malformed", 1)),
}


@pytest.mark.parametrize("edit", sorted(STREAMED_EDITS))
def test_each_check_of_a_streamed_runs_samples_names_its_finding(tmp_path, edit):
    """Mutation testing found these checks removable with every test passing."""
    run = _synthetic_run(tmp_path)
    pinned = {k: v for k, v in run_pins(run, head=False).items() if k != "expect_root"}
    changes, finding = STREAMED_EDITS[edit]
    for name, change in changes:
        _edited(run, name, change)
    sync_audit(run)
    report = verify_run(run, cache_dir=tmp_path / "cache", **pinned)
    assert finding in {(f.check, f.reason, f.step) for f in report.findings}, report.summary()


def test_a_step_of_undeclared_data_naming_samples_is_named(tmp_path):
    model, optimizer, _data, loader = _setup()
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
        _train(run, model, optimizer, loader)
    _edited(tmp_path / "run", "commitments.jsonl", lambda records: records[1].update(samples=[0, 1]))
    sync_audit(tmp_path / "run")
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", accept_settings={"batch_order": "recorded", "data": "undeclared"})
    assert ("steps", "batch-not-in-dataset", 1) in {(f.check, f.reason, f.step) for f in report.findings}, report.summary()


def test_a_held_out_set_declared_beside_undeclared_data_fails(tmp_path):
    """A review: a loop on undeclared data whose bundle then declared a built-in held-out set (and
    trained on exactly those samples) was VERIFIED with the scores rescored on training data."""
    from pot_zk.data.datasets import holdout_indices

    model, optimizer, _data, loader = _setup()
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES) as run:
        _train(run, model, optimizer, loader)
    indices = holdout_indices(64, 0.2, 3)
    declared = {"fraction": 0.2, "seed": 3, "of": 64, "samples": len(indices), "commitment": "0x01"}
    _edited(tmp_path / "run", "manifest.json", lambda m: m["dataset"].update(name="synthetic", num_samples=64, seed=3, holdout=declared))
    _edited(tmp_path / "run", "dataset.json", lambda d: d.update(holdout={**declared, "indices": indices}))
    sync_audit(tmp_path / "run")
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", accept_settings={"batch_order": "recorded", "data": "undeclared"})
    assert ("holdout", "holdout-without-data", None) in {(f.check, f.reason, f.step) for f in report.findings}, report.summary()
    assert report.references["dataset"] == "undeclared by the training loop"


def test_an_adam_optimizer_saved_and_loaded_mid_run_keeps_its_exact_moments(tmp_path):
    """A review: optimizer.load_state_dict(optimizer.state_dict()) mid-run (a checkpoint round
    trip) cast the exact float64 moments to float32, and the next step was refused as a state
    changed outside optimizer.step()."""
    model, _, data, loader = _setup()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
        for number, (x, y) in enumerate(loader):
            run.batch(x, y)
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            if number == 1:
                saved = io.BytesIO()
                torch.save(optimizer.state_dict(), saved)
                optimizer.load_state_dict(torch.load(io.BytesIO(saved.getvalue())))
    assert run.summary.status == "completed" and run.steps == 8


def test_a_step_refused_after_it_was_taken_is_undone_and_names_its_step(tmp_path):
    """A review: a refusal raised after the loop's step (a layer frozen mid-run, found when the
    step is captured) left the step applied to the user's model and named no step; a schedule
    reaching rate 0 was refused after the step too."""
    model, _, data, loader = _setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(StepMismatchError, match=r"^step 2: .*some parameters are frozen") as refused:
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
            for number, (x, y) in enumerate(loader):
                if number == 2:
                    model[0].weight.requires_grad_(False)
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                before = copy.deepcopy(model.state_dict())
                buffers = [optimizer.state[p]["momentum_buffer"].clone() for p in model.parameters()] if number == 2 else None
                optimizer.step()
    assert (refused.value.step, refused.value.differs) == (2, "state")
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items()), "the refused step is undone"
    assert all(torch.equal(optimizer.state[p]["momentum_buffer"], b) for p, b in zip(model.parameters(), buffers)), "and its velocity"
    model, optimizer, data, loader = _setup()
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2)
    with pytest.raises(StepMismatchError, match=r"^step 2: .*learning rate 0 at this step") as refused:
        with track(model, optimizer, run_dir=tmp_path / "cosine", overrides=OVERRIDES, dataset=data, scheduler=scheduler) as run:
            for x, y in loader:
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                before = copy.deepcopy(model.state_dict())
                optimizer.step()
                scheduler.step()
    assert refused.value.differs == "learning_rate" and run.steps == 2
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items()), "the step at rate 0 is never taken"


@pytest.mark.parametrize("mistake, hint", [
    ("zero_grad-after-backward", "the update is 0 times the declared one: no gradient reached the step"),
    ("sum-reduction", r"the update is 2 times the declared one: gradients accumulated over 2 backward\(\) calls .*reduction='sum'"),
    ("negated-loss", r"the update is -1 times the declared one: it goes the other way \(a negated loss"),
])
def test_a_scaled_update_names_the_likely_mistake(tmp_path, mistake, hint):
    """A review: a zero_grad() between backward() and step() was hinted as clipping, a loss with
    reduction='sum' (batch of 2) as accumulation only."""
    model, optimizer, data, loader = _setup()
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum" if mistake == "sum-reduction" else "mean")
    if mistake == "negated-loss":  # review27: was called clipping
        loss_fn = lambda out, y: -torch.nn.functional.cross_entropy(out, y)  # noqa: E731
    with pytest.raises(StepMismatchError, match=hint):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, dataset=data) as run:
            for x, y in loader:
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                if mistake == "zero_grad-after-backward":
                    optimizer.zero_grad(set_to_none=False)
                optimizer.step()


def test_a_stopped_loop_whose_parked_proof_prove_pending_made_resumes(tmp_path):
    """A review: prove-pending's session ends with its own run.end (status completed), which
    track(..., resume=True) took for the run's: the stopped run could never be finished."""
    import subprocess
    import sys
    from pathlib import Path

    model, optimizer, data, loader = _setup()
    overrides = ["prover=groth16", "executor=inline", "handler=retry", "retry=none", "prover.binary=/bin/false", "policy=every_k", "policy.k=4",
                 f"cache_dir={tmp_path / 'cache'}"]
    batches = list(loader)
    with pytest.raises(KeyboardInterrupt):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=overrides, dataset=data) as run:
            for number, (x, y) in enumerate(batches):
                if number == 2:
                    raise KeyboardInterrupt  # the trainer's Ctrl-C
                run.batch(x, y)
                optimizer.zero_grad()
                torch.nn.CrossEntropyLoss()(model(x), y).backward()
                optimizer.step()
    assert run.summary.progress["outcomes"] == {"parked": 1}
    prover = Path(sys.executable).parent / "pot-zk-groth16-prover"
    pending = subprocess.run([str(Path(sys.executable).parent / "pot-zk"), "prove-pending", str(tmp_path / "run"), f"prover.binary={prover}"],
                             capture_output=True, text=True, timeout=600)
    assert pending.returncode == 0, pending.stdout + pending.stderr
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=overrides, dataset=data, resume=True) as run:
        for x, y in batches[run.steps:]:
            run.batch(x, y)
            optimizer.zero_grad()
            torch.nn.CrossEntropyLoss()(model(x), y).backward()
            optimizer.step()
    assert run.summary.status == "completed" and run.steps == len(batches)
