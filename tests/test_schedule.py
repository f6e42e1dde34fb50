"""Learning-rate schedules as part of the statement: declared in config or read off a loop's own
torch scheduler, each step's rate recomputed with torch's own scheduler (bit for bit the loop's),
recorded, and checked by verify against the declaration. No prover runs here (mode=disabled)."""

from __future__ import annotations

import json

import pytest
import torch
from torch.optim import lr_scheduler

from pot_zk.backends.registry import BACKENDS
from pot_zk.exceptions import ConfigurationError, StepMismatchError, WitnessBuilderError
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.schedule import Schedule, canonical, declared_schedule
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.track import track
from pot_zk.testing.bundle_edit import jsonl, sync_audit, write_jsonl
from pot_zk.verify.run import verify_run

from loop_support import run_pins

OVERRIDES = ["mode=disabled", "prover=groth16"]


def _optimizer(rate: float = 0.1) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=rate)


SCHEDULERS = {
    "step": lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda o: lr_scheduler.MultiStepLR(o, milestones=[2, 5], gamma=0.3),
    "cosine": lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    "linear": lambda o: lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=4),
    "sequential": lambda o: lr_scheduler.SequentialLR(
        o, [lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=3), lr_scheduler.CosineAnnealingLR(o, T_max=9)], milestones=[3]
    ),
}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_a_declared_schedule_gives_the_loops_own_rates_bit_for_bit(name):
    optimizer = _optimizer()
    scheduler = SCHEDULERS[name](optimizer)
    schedule = Schedule(declared_schedule(scheduler), 0.1)
    loops = []
    for _ in range(12):
        loops.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert schedule.rates(12) == loops
    assert schedule.describe().startswith(type(scheduler).__name__)


def test_what_cannot_be_a_statements_schedule_is_refused_in_one_line():
    with pytest.raises(ConfigurationError, match="^a ExponentialLR cannot be declared as a statement's schedule"):
        declared_schedule(lr_scheduler.ExponentialLR(_optimizer(), gamma=0.9))
    stepped = lr_scheduler.StepLR(_optimizer(), step_size=2)
    with pytest.warns(UserWarning):
        stepped.step()  # torch warns: no optimizer step before it
    with pytest.raises(ConfigurationError, match="stepped 1 times already"):
        declared_schedule(stepped)
    chained = lr_scheduler.ChainedScheduler([lr_scheduler.StepLR(_optimizer(), step_size=2)])  # review27: "stepped ? times"
    with pytest.raises(ConfigurationError, match="^a ChainedScheduler cannot be declared as a statement's schedule"):
        declared_schedule(chained)
    tensor_rate = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=torch.tensor(0.1))  # review27: a traceback at step 0
    with pytest.raises(ConfigurationError, match="^the scheduler's optimizer has a tensor learning rate"):
        declared_schedule(lr_scheduler.StepLR(tensor_rate, step_size=2))
    with pytest.raises(ConfigurationError, match="gamma must be in \\(0, 1\\]"):
        canonical({"name": "step", "step_size": 2, "gamma": 1.5})
    with pytest.raises(ConfigurationError, match="takes step_size, gamma, not T_max"):
        canonical({"name": "step", "step_size": 2, "T_max": 3})


@pytest.mark.parametrize("nested", [False, True])
def test_a_cosine_above_the_base_rate_is_refused_inside_a_sequential_schedule_too(nested):
    """A schedule never exceeds its base rate (the circuit bounds the public rate by it): a
    cosine's eta_min above the base rate is refused at the top level and inside a sequential one."""
    cosine = canonical({"name": "cosine", "T_max": 4, "eta_min": 0.5})
    declaration = canonical({"name": "sequential", "schedules": [{"name": "step", "step_size": 2, "gamma": 0.5}, cosine], "milestones": [2]}) if nested else cosine
    with pytest.raises(ConfigurationError, match="eta_min may not exceed the base learning rate"):
        Schedule(declaration, 0.05)
    assert max(Schedule(declaration, 0.5).rates(8)) <= 0.5


def test_zk_halo2_refuses_a_schedule_saying_why():
    kind = STEP_KINDS.get("sgd")
    with pytest.raises(ConfigurationError, match="^the ezkl backend states the learning rate as a constant of its circuit"):
        BACKENDS.get("ezkl").scheduled_spec(kind, MlpArchitecture((4, 3, 2)), 2, 0.1, {})
    spec = BACKENDS.get("groth16").scheduled_spec(kind, MlpArchitecture((4, 3, 2)), 2, 0.1, {})
    assert spec.rate_public and spec.to_dict()["rate"] == "public"
    assert spec.circuit_id() != BACKENDS.get("groth16").circuit_spec(kind, MlpArchitecture((4, 3, 2)), 2, 0.1, {}).circuit_id()


@pytest.mark.parametrize("optimizer", [["optimizer.momentum=0.9"], ["optimizer.name=adamw"]], ids=["momentum", "adamw"])
def test_a_groth16_statement_that_fixes_its_rate_refuses_a_schedule_at_build(optimizer, tmp_path):
    """Momentum's and AdamW's circuits hold the rate as a constant: a declared schedule is one
    ConfigurationError keyed ``schedule`` before anything is written, not a run proven at the base rate."""
    from pot_zk.config import build, compose_config

    overrides = ["prover=groth16", *optimizer, "optimizer.schedule.name=step", "optimizer.schedule.step_size=2", "optimizer.schedule.gamma=0.5"]
    with pytest.raises(ConfigurationError, match="proves a learning-rate schedule for sgd and lora steps, not (momentum|adamw) steps") as refused:
        build(compose_config(overrides, run_dir=tmp_path / "run"))
    assert refused.value.key == "schedule" and not (tmp_path / "run").exists()


def _setup():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.rand(16, 4, generator=generator) * 2 - 1, torch.randint(0, 3, (16,), generator=generator))
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(2))
    return model, optimizer, loader


def _loop(run, model, optimizer, loader, scheduler, per_step: bool = True) -> None:
    loss_fn = torch.nn.CrossEntropyLoss()
    for x, y in loader:
        run.batch(x, y)
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        if per_step:
            scheduler.step()


@pytest.fixture
def scheduled_run(tmp_path):
    model, optimizer, loader = _setup()
    scheduler = lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, scheduler=scheduler) as run:
        _loop(run, model, optimizer, loader, scheduler)
    return tmp_path / "run"


def test_a_loops_scheduler_is_declared_recorded_and_recomputed_by_verify(scheduled_run, tmp_path):
    manifest = RunBundle.open(scheduled_run).manifest()
    assert manifest["training"]["schedule"] == {"name": "step", "step_size": 3, "gamma": 0.5}
    assert manifest["circuit"]["rate"] == "public" and manifest["circuit"]["learning_rate"] == 0.1
    assert [r["learning_rate"] for r in RunBundle.open(scheduled_run).commitments()] == [0.1] * 3 + [0.05] * 3 + [0.025] * 2
    report = verify_run(scheduled_run, cache_dir=tmp_path / "cache", **run_pins(scheduled_run))
    assert report.ok and "schedule" in report.passed, report.summary()
    assert report.references["schedule"] == "StepLR(step_size=3, gamma=0.5) from lr 0.1, each step's rate recomputed: from 0.025 to 0.1"


def test_verify_names_the_range_of_the_rates_it_recomputed(tmp_path):
    """review47: LinearLR(start_factor=0.011, total_iters=0) reads as a warm-up to the base rate;
    torch keeps every step at 1.1 % of it (just above the note for rates under 1 %). The schedule
    line now says which rates the steps had."""
    model, optimizer, loader = _setup()
    scheduler = lr_scheduler.LinearLR(optimizer, start_factor=0.011, end_factor=1.0, total_iters=0)
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, scheduler=scheduler) as run:
        _loop(run, model, optimizer, loader, scheduler)
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **run_pins(tmp_path / "run"))
    assert report.ok, report.summary()
    assert report.references["schedule"].endswith("each step's rate recomputed: 0.0011 at every step"), report.references["schedule"]


def test_a_recorded_rate_the_schedule_does_not_give_fails_verification(scheduled_run, tmp_path):
    pinned = run_pins(scheduled_run, head=False)
    records = jsonl(scheduled_run / "commitments.jsonl")
    records[4]["learning_rate"] = 0.1  # step 4 claimed at the base rate, against the declared decay
    write_jsonl(scheduled_run / "commitments.jsonl", records)
    sync_audit(scheduled_run)
    report = verify_run(scheduled_run, cache_dir=tmp_path / "cache", **pinned)
    assert {(f.check, f.reason, f.step) for f in report.findings} == {("steps", "learning-rate-mismatch", 4)}, report.summary()


def test_another_declared_schedule_than_the_steps_followed_fails_verification(scheduled_run, tmp_path):
    pinned = run_pins(scheduled_run, head=False)
    manifest = json.loads((scheduled_run / "manifest.json").read_text())
    manifest["training"]["schedule"]["step_size"] = 4
    (scheduled_run / "manifest.json").write_text(json.dumps(manifest))
    sync_audit(scheduled_run)
    report = verify_run(scheduled_run, cache_dir=tmp_path / "cache", **pinned)
    assert {(f.reason, f.step) for f in report.findings} == {("learning-rate-mismatch", step) for step in (3, 6, 7)}, report.summary()


def test_a_scheduler_stepped_once_per_epoch_is_refused_at_the_first_rate_it_does_not_give(tmp_path):
    model, optimizer, loader = _setup()
    scheduler = lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    with pytest.raises(StepMismatchError, match=r"step 1: .*learning rate 0\.1, declared 0\.05: the rate of the step before \(a scheduler stepped once per epoch"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, scheduler=scheduler) as run:
            _loop(run, model, optimizer, loader, scheduler, per_step=False)


@pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`:UserWarning")  # torch's own, the mistake under test
def test_a_scheduler_stepped_before_the_optimizer_is_refused_saying_so(tmp_path):
    """A review: the refusal named both rates but not the likely cause."""
    model, optimizer, loader = _setup()
    scheduler = lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    loss_fn = torch.nn.CrossEntropyLoss()
    with pytest.raises(StepMismatchError, match=r"step 0: .*learning rate 0\.05, declared 0\.1: the declared rate of the next step \(scheduler\.step\(\) called before"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, scheduler=scheduler) as run:
            for x, y in loader:
                run.batch(x, y)
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                scheduler.step()
                optimizer.step()


def test_a_scheduler_other_than_the_configured_schedule_is_refused(tmp_path):
    model, optimizer, loader = _setup()
    scheduler = lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    overrides = [*OVERRIDES, "optimizer.schedule.name=step", "optimizer.schedule.step_size=2", "optimizer.schedule.gamma=0.5"]
    with pytest.raises(ConfigurationError, match=r"the scheduler is StepLR\(step_size=3, gamma=0.5\), the configuration declares StepLR\(step_size=2"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=overrides, scheduler=scheduler) as run:
            _loop(run, model, optimizer, loader, scheduler)
    assert not (tmp_path / "run").exists()


def test_reexec_certificates_of_scheduled_steps_are_checked_at_the_recomputed_rate(tmp_path):
    """The prover program fails, so the selected steps fall back to groth16's certificate,
    reexec, which recomputes each step's exact update at the rate verify recomputed."""
    model, optimizer, loader = _setup()
    scheduler = lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    overrides = ["prover=groth16", "handler=fallback", "retry=none", "prover.binary=/bin/false", "policy=every_k", "policy.k=3", f"cache_dir={tmp_path / 'cache'}"]
    with track(model, optimizer, run_dir=tmp_path / "run", overrides=overrides, scheduler=scheduler) as run:
        _loop(run, model, optimizer, loader, scheduler)
    assert run.summary.progress["proof_types"] == {"reexec": 3}
    pinned = run_pins(tmp_path / "run", head=False)
    report = verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **pinned)
    assert report.ok and report.coverage == {"reexec": 3, "commitment-only": 5}, report.summary()
    records = jsonl(tmp_path / "run" / "commitments.jsonl")
    records[6]["learning_rate"] = 0.05  # step 6 (certified at 0.025) claimed at the rate before the decay
    write_jsonl(tmp_path / "run" / "commitments.jsonl", records)
    sync_audit(tmp_path / "run")
    findings = {(f.reason, f.step) for f in verify_run(tmp_path / "run", cache_dir=tmp_path / "cache", **pinned).findings}
    assert findings == {("learning-rate-mismatch", 6)}, findings


def test_a_step_whose_rate_rounds_to_no_update_is_refused_before_it_is_taken(tmp_path):
    """A schedule at rate 0 for the steps a trainer picks would leave their batches committed but
    not learned from (found by a review: one key proves every schedule up to the base rate)."""
    model, optimizer, loader = _setup()
    scheduler = lr_scheduler.StepLR(optimizer, step_size=3, gamma=1e-9)
    with pytest.raises(WitnessBuilderError, match=r"rounds to the update constant 0 at param_scale=20: the step would train nothing"):
        with track(model, optimizer, run_dir=tmp_path / "run", overrides=OVERRIDES, scheduler=scheduler) as run:
            _loop(run, model, optimizer, loader, scheduler)
    assert [r["step"] for r in RunBundle.open(tmp_path / "run").commitments()] == [0, 1, 2], "refused at step 3, the first at rate 1e-10"


def _verified_at_gamma(run, tmp_path, gamma: float):
    """verify_run of ``run`` with its declared StepLR's gamma rewritten and every record's rate the
    one the rewritten schedule gives (a run recorded at that schedule, the trail re-chained)."""
    pinned = run_pins(run, head=False)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["training"]["schedule"]["gamma"] = gamma
    (run / "manifest.json").write_text(json.dumps(manifest))
    rates = Schedule(canonical(manifest["training"]["schedule"]), 0.1).rates(8)
    records = jsonl(run / "commitments.jsonl")
    for record in records:
        record["learning_rate"] = rates[record["step"]]
    write_jsonl(run / "commitments.jsonl", records)
    sync_audit(run)
    return verify_run(run, cache_dir=tmp_path / "cache", **pinned)


def test_a_declared_schedule_at_a_zero_update_constant_fails_those_steps(scheduled_run, tmp_path):
    """A run recorded (before training refused it) at a schedule whose rate rounds to c_fix = 0:
    its records agree with the declaration, and verify still fails the steps that train nothing."""
    report = _verified_at_gamma(scheduled_run, tmp_path, 1e-9)
    assert {(f.check, f.reason, f.step) for f in report.findings} == {("steps", "zero-rate", step) for step in range(3, 8)}, report.summary()


def test_pot_zk_train_refuses_a_schedule_that_would_reach_no_update_before_it_starts(tmp_path):
    """`pot-zk train` knows its step count: it refuses the schedule before anything is trained,
    rather than at the first idle step."""
    from pot_zk.config import compose_config
    from pot_zk.runs.train import train

    overrides = [*OVERRIDES, "model=tiny_mlp", "data=synthetic", "train.batch_size=2", "train.max_steps=6", "train.progress=false",
                 "optimizer.schedule.name=step", "optimizer.schedule.step_size=2", "optimizer.schedule.gamma=1e-9", f"run_dir={tmp_path / 'run'}"]
    with pytest.raises(ConfigurationError, match=r"trains step 2 at rate 5e-11, which rounds to the update constant 0") as refused:
        train(compose_config(overrides))
    assert refused.value.context["key"] == "optimizer.schedule" and not (tmp_path / "run" / "manifest.json").exists()
    assert train(compose_config([*overrides[:-1], "train.max_steps=2", f"run_dir={tmp_path / 'short'}"])).status == "completed"


def test_a_declared_schedule_that_falls_under_one_percent_of_its_base_is_noted(scheduled_run, tmp_path):
    """A review: a rate one unit of the update constant above 0 trains (almost) nothing yet is no
    zero-rate step; verify says how low the trainer's declared schedule goes."""
    report = _verified_at_gamma(scheduled_run, tmp_path, 0.01)
    assert report.ok, report.summary()  # the schedule declared; the records follow it; no step at constant 0
    assert any(note.startswith("schedule: the declared rate falls to 1e-05 at step 6, under 1 % of its base 0.1") for note in report.notes), report.notes


def test_an_unknown_schedule_name_lists_every_name_constant_included():
    """review23: the error left out `constant`, the default configuration.md documents."""
    from pot_zk.exceptions import ConfigurationError
    from pot_zk.kinds.schedule import canonical

    with pytest.raises(ConfigurationError, match=r"one of step, multistep, cosine, linear, sequential \(or constant: none\); got \{'name': 'cosin'\}"):
        canonical({"name": "cosin"})
