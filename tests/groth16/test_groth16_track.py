"""pot_zk.track with prover=groth16: a loop with its own shuffling DataLoader, loss object and
optimizer step is proven step by step (the exact statement's integer step replaces each
update) and its bundle verifies; its records are checked against the declared data."""

from __future__ import annotations

import pytest
import torch

from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.track import track
from pot_zk.verify.run import verify_run

from groth16_support import stop_holders

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
        with track(model, optimizer, run_dir=run_dir, overrides=["prover=groth16", f"cache_dir={cache}", "policy.k=3"], dataset=data) as run:
            _loop(run, model, optimizer, loader)
    finally:
        stop_holders(cache, RunBundle.open(run_dir).manifest()["circuit"])
    assert run.summary.progress["proof_types"] == {"zk-groth16": 3}
    root = RunBundle.open(run_dir).manifest()["dataset"]["root"]
    report = verify_run(run_dir, cache_dir=cache, expect_root=root, expect_head=run.summary.head)
    assert report.ok, report.summary()
    assert report.coverage == {"zk-groth16": 3, "commitment-only": 5}
