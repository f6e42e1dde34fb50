"""Witnesses a run did not keep, recomputed by a deterministic replay checked against its
commitments.

A seeded run (``pot-zk train``) declares everything that determines its steps: the initial
model (``model_initial.safetensors``, which ``verify`` ties to the first commitment), the data
set, its batches and their seeded order, the optimizer and learning rate. Replaying it from the
initial model through step ``t`` reproduces step ``t``'s witness; every replayed step's
commitments must equal the recorded ones, so a replay that drifts (another machine's floating
point, an edited record) stops with ``replay-mismatch`` instead of producing a witness for
another statement. The run keeps no intermediate checkpoints, so answering step ``t`` costs
``t + 1`` training steps. A user loop's run (``batch_order: recorded``) cannot be replayed.
"""

from __future__ import annotations

from typing import Any, Iterable

from pot_zk.backends.registry import commit_step
from pot_zk.config.build import build
from pot_zk.exceptions import ChallengeError
from pot_zk.kinds.registry import save_training_step
from pot_zk.kinds.schedule import scheduler_at
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import RunBundle, load_model
from pot_zk.runs.session import take_step
from pot_zk.runs.train import build_model, declared_data, run_optimizer, step_schedule

def replay_witnesses(bundle: RunBundle, cfg: Any, steps: Iterable[int]) -> None:
    """Write the witness files of ``steps`` by replaying the run described by ``cfg`` (its own
    config.yaml) from its initial model, checking each step against ``commitments.jsonl``."""
    wanted = set(steps)
    order = bundle.manifest()["training"].get("batch_order", "seeded")
    if order != "seeded":
        raise ChallengeError(
            f"witness-missing: steps {sorted(wanted)} have no witness and a run with batch_order={order!r} cannot be replayed",
            reason="witness-missing",
            steps=sorted(wanted),
        )
    plan = build(cfg).plan
    arithmetic = plan.backend.training_arithmetic(plan.spec)
    batches, _ = declared_data(plan)
    model = build_model(plan)
    model.load_state_dict(load_model(bundle.path(files.INITIAL_MODEL))[0])
    optimizer = run_optimizer(model, plan)
    rates = scheduler_at(plan.schedule, optimizer, 0)
    recorded = {r["step"]: r for r in bundle.commitments()}
    for index, _epoch, batch_index in step_schedule(plan, len(batches)):
        if index > max(wanted):
            return
        batch = batches[batch_index]
        step = take_step(model, optimizer, batch.inputs, batch.targets, arithmetic)
        if rates is not None:
            rates.step()
        found = commit_step(step, plan.spec).to_dict()
        differing = [key for key in plan.spec.input_names if found.get(key) != recorded.get(index, {}).get(key)]
        if differing:
            raise ChallengeError(
                f"replay-mismatch: replaying step {index} does not reproduce its recorded {', '.join(differing)} commitment(s)",
                reason="replay-mismatch",
                step=index,
                fields=differing,
            )
        if index in wanted:
            save_training_step(step, bundle.witness_path(index))
