"""Adam and AdamW as the ``adamw`` step kind (no prover runs): a user's torch.optim.AdamW or Adam
is detected and captured with its moments and step count, the float64 reference is torch's
update to round-off, the moments survive exact training's float64 copies and a checkpoint,
``optimizer.name`` selects the kind, and a backend without an adamw statement refuses it at build."""

from __future__ import annotations

import pytest
import torch

from pot_zk.config import build, compose_config
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError
from pot_zk.kinds.adamw.reference import adamw_reference
from pot_zk.kinds.adamw.step import MOMENTS, optimizer_state
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.optimizer import OptimizerSettings
from pot_zk.kinds.registry import STEP_KINDS, capture_step, kind_for, kind_of, load_training_step, save_training_step
from pot_zk.runs.checkpoint import restore_checkpoint, save_checkpoint

ADAMS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


def adam_steps(name: str = "adamw", count: int = 3, labels: bool = True, dtype: torch.dtype = torch.float32, seed: int = 0):
    torch.manual_seed(seed)
    model = MlpArchitecture((6, 5, 3)).build().to(dtype)
    optimizer = ADAMS[name](model.parameters(), lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)
    steps = []
    for _ in range(count):
        targets = torch.randint(0, 3, (4,)) if labels else torch.randn(4, 3, dtype=dtype)
        steps.append(capture_step(model, optimizer, torch.rand(4, 6, dtype=dtype), targets))
    return steps, model, optimizer


@pytest.mark.parametrize("name", sorted(ADAMS))
def test_a_users_adam_or_adamw_makes_adamw_steps_with_the_moments_and_step_count(name):
    steps, model, optimizer = adam_steps(name)
    first, second, third = steps
    assert {s.kind for s in steps} == {"adamw"} and [s.step_count for s in steps] == [1, 2, 3]
    architecture = first.architecture
    assert (architecture.betas, architecture.eps, architecture.weight_decay) == ((0.8, 0.99), 1e-6, 0.05)
    assert architecture.decoupled_weight_decay == (name == "adamw")
    assert all(float(v.abs().max()) == 0.0 for v in (*first.exp_avg_before.values(), *first.exp_avg_sq_before.values()))
    assert all(torch.equal(second.exp_avg_before[k], first.exp_avg_after[k]) for k in first.exp_avg_after)
    own = {name: optimizer.state[p]["exp_avg_sq"].double() for name, p in model.named_parameters()}
    assert all(torch.equal(third.exp_avg_sq_after[k], own[k]) for k in own)
    encoded = {x.name: x.values for x in kind_of(third).encode(third)}
    assert list(encoded) == ["w_before", "batch", "w_after", "m_before", "m_after", "v_before", "v_after", "t_before", "t_after"]
    assert (encoded["t_before"].tolist(), encoded["t_after"].tolist()) == ([2.0], [3.0])


@pytest.mark.parametrize("name", sorted(ADAMS))
@pytest.mark.parametrize("labels", [True, False], ids=["cross_entropy", "mse"])
def test_the_float_reference_is_torch_s_update_to_round_off(name, labels):
    """On a float64 model, 20 steps: W_t+1, m_t+1, v_t+1 within 1e-12 relative of torch's
    (measured 1.8e-14), the step count exact; decoupled or coupled weight decay swapped is far off."""
    steps, _, _ = adam_steps(name, count=20, labels=labels, dtype=torch.float64)
    worst = swapped = 0.0
    for step in steps:
        named = {x.name: x.values for x in kind_of(step).encode(step)}
        reference = adamw_reference(step.architecture, step.batch_size, step.learning_rate, named)
        assert torch.equal(reference["t_after"], named["t_after"])
        for key in ("w_after", "m_after", "v_after"):
            worst = max(worst, float(((reference[key] - named[key]).abs() / named[key].abs().clamp_min(1e-30)).max()))
        other = type(step.architecture)(**{**step.architecture.__dict__, "decoupled_weight_decay": not step.architecture.decoupled_weight_decay})
        swapped = max(swapped, float((adamw_reference(other, step.batch_size, step.learning_rate, named)["w_after"] - named["w_after"]).abs().max()))
    assert worst < 1e-12 and swapped > 1e-6, (worst, swapped)


def test_a_step_file_round_trips():
    step = adam_steps("adam")[0][-1]
    kind = kind_of(step)
    from tempfile import TemporaryDirectory
    from pathlib import Path

    with TemporaryDirectory() as directory:
        path = Path(directory) / "step.safetensors"
        save_training_step(step, path)
        loaded = load_training_step(path, "adamw")
    assert loaded.architecture == step.architecture and loaded.step_count == step.step_count == 3
    assert all(torch.equal(a.values, b.values) for a, b in zip(kind.encode(loaded), kind.encode(step)))


@pytest.mark.parametrize("options", [{"amsgrad": True}, {"maximize": True}])
def test_amsgrad_and_maximize_are_refused_before_the_step_runs(options):
    model = MlpArchitecture((6, 5, 3)).build()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, **options)
    with pytest.raises(InvalidModelStateError, match="without amsgrad, maximize"):
        capture_step(model, optimizer, torch.rand(4, 6), torch.tensor([0, 1, 2, 0]))
    assert not optimizer.state, "the step must not have run"


def test_an_optimizer_no_kind_takes_is_refused_before_the_step_runs():
    model = MlpArchitecture((6, 5, 3)).build()
    for optimizer in (torch.optim.RMSprop(model.parameters()), torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.01)):
        with pytest.raises(InvalidModelStateError):
            capture_step(model, optimizer, torch.rand(4, 6), torch.tensor([0, 1, 2, 0]))
        assert not optimizer.state


def test_exact_moments_survive_a_float32_optimizer_and_a_checkpoint(tmp_path):
    """load_after keeps the moments in float64 beside torch's float32 ones: capture reads the
    exact values back (a value float32 cannot hold), torch's own once something changed them,
    and a checkpoint restores both with the step count."""
    steps, model, optimizer = adam_steps("adamw")
    step = steps[-1]
    fine = {name: values + 2.0**-40 for name, values in step.exp_avg_sq_after.items()}
    exact = type(step)(**{**step.__dict__, "exp_avg_sq_after": fine})
    kind = kind_of(step)
    kind.load_after(model, optimizer, exact)
    m, v, count = optimizer_state(model, optimizer)
    assert count == 3 and all(torch.equal(v[k], fine[k]) for k in fine) and any(not torch.equal(v[k].float().double(), fine[k]) for k in fine)
    save_checkpoint(tmp_path / "checkpoint.safetensors", model, optimizer, 3)
    restored_model = MlpArchitecture((6, 5, 3)).build()
    restored = torch.optim.AdamW(restored_model.parameters(), lr=0.01)
    assert restore_checkpoint(tmp_path / "checkpoint.safetensors", restored_model, restored) == 3
    m2, v2, count2 = optimizer_state(restored_model, restored)
    assert count2 == 3 and all(torch.equal(v2[k], fine[k]) and torch.equal(m2[k], m[k]) for k in fine)
    first = next(restored_model.parameters())
    restored.state[first]["exp_avg_sq"].add_(1.0)  # someone changed torch's own: the copy is stale
    assert not torch.equal(optimizer_state(restored_model, restored)[1]["0.weight"], fine["0.weight"])
    assert set(MOMENTS.values()) <= set(restored.state[first])


@pytest.mark.parametrize(("settings", "kind"), [
    (OptimizerSettings(), "sgd"), (OptimizerSettings("sgd", momentum=0.9), "momentum"),
    (OptimizerSettings("adamw", weight_decay=0.01), "adamw"), (OptimizerSettings("adam"), "adamw"),
])
def test_each_kind_says_which_optimizer_it_takes(settings, kind):
    assert kind_for("sgd", settings).name == kind
    assert sum(STEP_KINDS.get(name).takes(settings) for name in STEP_KINDS.names() if STEP_KINDS.get(name).model_kind == "sgd") == 1


def test_optimizer_name_selects_adamw_and_its_settings(tmp_path):
    cfg = compose_config(["optimizer.name=adamw", "optimizer.betas=[0.8,0.99]", "optimizer.eps=1e-6", "optimizer.weight_decay=0.01", "prover=groth16"], run_dir=tmp_path)
    plan = build(cfg).plan
    assert plan.kind.name == "adamw" and plan.spec.kind == "adamw"
    assert plan.spec.architecture == STEP_KINDS.get("adamw").architecture(plan.model)
    assert (plan.spec.architecture.betas, plan.spec.architecture.eps, plan.spec.architecture.decoupled_weight_decay) == ((0.8, 0.99), 1e-6, True)
    optimizer = plan.model.optimizer.build(MlpArchitecture((4, 3, 2)).build().parameters(), 0.01)
    assert type(optimizer) is torch.optim.AdamW and optimizer.param_groups[0]["betas"] == (0.8, 0.99)


@pytest.mark.parametrize(("overrides", "key"), [
    (["optimizer.name=adamw", "prover=ezkl"], "prover.backend"),  # ezkl has no adamw statement
    (["optimizer.name=adamw", "optimizer.momentum=0.9", "prover=groth16"], "optimizer.momentum"),
    (["optimizer.name=adam", "model=lora_tiny", "model.base_run=/nonexistent", "prover=groth16"], "optimizer.name"),
    (["optimizer.name=adamw", "optimizer.betas=[0.9,1.0]", "prover=groth16"], "optimizer.betas"),
])
def test_what_no_statement_takes_is_refused_at_build(overrides, key, tmp_path):
    with pytest.raises(ConfigurationError) as raised:
        build(compose_config(overrides, run_dir=tmp_path))
    assert raised.value.context["key"] == key, raised.value
    assert not any(tmp_path.iterdir())


def test_the_float_reference_is_torch_s_adamw_on_the_digits_classifier():
    """The digits classifier (16-8-10, cross-entropy, batch 8) trained 30 steps with AdamW in
    float64: every step's W_t+1, m_t+1, v_t+1 is the reference's within 1e-12 relative (measured 1.5e-13)."""
    from pot_zk.data.datasets import fixed_batches, load_dataset

    inputs, labels = load_dataset("digits", 16, 10, 256, 0, "cross_entropy")
    batches = fixed_batches(inputs.double(), labels, 8, 0)[:30]
    torch.manual_seed(0)
    model = MlpArchitecture((16, 8, 10)).build().double()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    worst = 0.0
    for batch in batches:
        step = capture_step(model, optimizer, batch.inputs, batch.targets)
        named = {x.name: x.values for x in kind_of(step).encode(step)}
        reference = adamw_reference(step.architecture, step.batch_size, step.learning_rate, named)
        for key in ("w_after", "m_after", "v_after"):
            worst = max(worst, float(((reference[key] - named[key]).abs() / named[key].abs().clamp_min(1e-30)).max()))
    assert step.kind == "adamw" and step.step_count == 30 and worst < 1e-12, worst
