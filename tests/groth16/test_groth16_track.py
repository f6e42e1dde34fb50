"""pot_zk.track with prover=groth16: a loop with its own shuffling DataLoader, loss object and
optimizer step is proven step by step (the exact statement's integer step replaces each
update) and its bundle verifies; its records are checked against the declared data."""

from __future__ import annotations

import pytest
import torch

from pot_zk.backends.registry import spec_from_dict
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.track import track
from pot_zk.verify.base_model import base_commitment
from pot_zk.verify.run import verify_run

from groth16_support import auditor_pins, stop_holders
from loop_support import pins

pytestmark = pytest.mark.prover


def _loop(run, model, optimizer, loader, epochs: int = 2) -> None:
    loss_fn = torch.nn.CrossEntropyLoss()
    for _epoch in range(epochs):
        for x, y in loader:
            run.batch(x, y)
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()


def test_a_loop_of_its_own_is_proven_with_groth16_and_verifies(tmp_path):
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(6)
    data = torch.utils.data.TensorDataset(torch.rand(8, 4, generator=generator) * 2 - 1, torch.randint(0, 3, (8,), generator=generator))
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, drop_last=True, generator=generator)
    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    try:
        with track(model, optimizer, run_dir=run_dir, overrides=["prover=groth16", f"cache_dir={cache}", "policy=every_k", "policy.k=3"], dataset=data) as run:
            _loop(run, model, optimizer, loader)
    finally:
        stop_holders(cache, RunBundle.open(run_dir).manifest()["circuit"])
    assert run.summary.progress["proof_types"] == {"zk-groth16": 3}
    report = verify_run(run_dir, cache_dir=cache, **pins(run.verify_command(declared=True)))
    assert report.ok, report.summary()
    assert report.coverage == {"zk-groth16": 3, "commitment-only": 5}


def _base_mlp(seed: int, classes: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, classes))


def test_a_peft_lora_fine_tune_in_a_loop_of_its_own_is_proven_and_verifies_with_expect_base(tmp_path):
    import peft

    base = _base_mlp(7, 3)
    held_by_auditor = {name: value.clone() for name, value in base.state_dict().items()}
    model = peft.get_peft_model(base, peft.LoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"], lora_dropout=0.0))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    generator = torch.Generator().manual_seed(8)
    data = torch.utils.data.TensorDataset(torch.rand(8, 4, generator=generator) * 2 - 1, torch.randint(0, 3, (8,), generator=generator))
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, drop_last=True, generator=generator)
    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    try:
        with track(model, optimizer, run_dir=run_dir, overrides=["prover=groth16", f"cache_dir={cache}", "policy=every_k", "policy.k=3"], dataset=data) as run:
            _loop(run, model, optimizer, loader)
    finally:
        stop_holders(cache, RunBundle.open(run_dir).manifest()["circuit"])
    manifest = RunBundle.open(run_dir).manifest()
    spec = spec_from_dict(manifest["circuit"])
    assert (spec.kind, spec.circuit_version) == ("lora", "groth16-lora-ce/2")
    expected_base = base_commitment(held_by_auditor, spec)
    report = verify_run(run_dir, cache_dir=cache, **pins(run.verify_command(declared=True)), expect_base=expected_base)
    assert report.ok, report.summary()
    assert report.coverage == {"zk-groth16": 3, "commitment-only": 5} and "base-reference" in report.passed
    other_base = base_commitment(_base_mlp(9, 3).state_dict(), spec)
    wrong = verify_run(run_dir, cache_dir=cache, **pins(run.verify_command(declared=True)), expect_base=other_base)
    assert {(f.check, f.reason) for f in wrong.findings} == {("base-model", "unexpected-base")}, wrong.summary()


def test_pot_zks_own_adapters_in_proven_training_are_proven_and_verify(tmp_path):
    from pot_zk.hooks import proven_training
    from pot_zk.kinds.lora.step import attach_lora

    base = _base_mlp(10, 2)
    held_by_auditor = {name: value.clone() for name, value in base.state_dict().items()}
    model = attach_lora(base, (0,), 2, 4.0)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    generator = torch.Generator().manual_seed(11)
    batches = [(torch.rand(2, 4, generator=generator) * 2 - 1, torch.rand(2, 2, generator=generator) - 0.5) for _ in range(3)]
    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    try:
        with proven_training(model, optimizer, batches, run_dir=run_dir, overrides=["prover=groth16", f"cache_dir={cache}", "policy=every_k", "policy.k=2"]) as run:
            for index in (2, 0, 1):
                run.step(*batches[index])
    finally:
        stop_holders(cache, RunBundle.open(run_dir).manifest()["circuit"])
    spec = spec_from_dict(RunBundle.open(run_dir).manifest()["circuit"])
    assert (spec.kind, spec.loss) == ("lora", "mse")
    report = verify_run(run_dir, cache_dir=cache, **auditor_pins(run.verify_command(declared=True)), expect_base=base_commitment(held_by_auditor, spec))
    assert report.ok, report.summary()
    assert report.coverage == {"zk-groth16": 2, "commitment-only": 1}
