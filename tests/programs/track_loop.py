"""A training loop of its own under pot_zk.track, run as a separate process by the resume tests:

    python track_loop.py RUN_DIR CACHE_DIR [--resume] [--sleep SECONDS] [--cosine]

A 4-3-3 MLP on 16 samples (class labels), a shuffling DataLoader (seeded, so every process
draws the same order), nn.CrossEntropyLoss, 3 epochs (24 steps), proven with groth16 every 5th
step; with --cosine a cosine learning-rate schedule stepped with each optimizer step. With
--resume the loop skips the batches of the steps the run already committed."""

from __future__ import annotations

import sys
import time

import torch

import pot_zk

run_dir, cache_dir = sys.argv[1], sys.argv[2]
resume = "--resume" in sys.argv
pause = float(sys.argv[sys.argv.index("--sleep") + 1]) if "--sleep" in sys.argv else 0.0

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=24) if "--cosine" in sys.argv else None
generator = torch.Generator().manual_seed(1)
data = torch.utils.data.TensorDataset(torch.rand(16, 4, generator=generator) * 2 - 1, torch.randint(0, 3, (16,), generator=generator))
loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(2))
loss_fn = torch.nn.CrossEntropyLoss()
overrides = ["prover=groth16", f"cache_dir={cache_dir}", "policy=every_k", "policy.k=5"]

with pot_zk.track(model, optimizer, run_dir=run_dir, overrides=overrides, scheduler=scheduler, dataset=data, resume=resume) as run:
    taken = 0
    for epoch in range(3):
        for x, y in loader:
            taken += 1
            if taken <= run.steps:
                continue  # committed before the run stopped
            run.batch(x, y)
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            print(f"step {run.steps}", flush=True)
            time.sleep(pause)
print(run.summary, flush=True)
