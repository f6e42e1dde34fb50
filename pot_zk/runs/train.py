"""``pot-zk train``: train a model with SGD, committing to every step and proving steps as the
policy says, into a run bundle that ``pot-zk verify`` checks; ``pot-zk resume RUN`` continues
a run that was stopped or killed."""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from typing import Iterator

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from pot_zk.backends.registry import PROOF_TYPES, spec_from_dict
from pot_zk.config import schema
from pot_zk.config.plan import TrainingPlan
from pot_zk.core.console import BarTicker
from pot_zk.exceptions import ConfigurationError
from pot_zk.runs import bundle as files
from pot_zk.runs.base_run import base_run_model
from pot_zk.runs.bundle import RunBundle
from pot_zk.data.datasets import Batch, HeldOut, epoch_order, seeded_batches
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.runs.evaluation import Evaluation
from pot_zk.runs.init_model import seeded_model
from pot_zk.runs.lifecycle import RunLifecycle
from pot_zk.runs.proof_watch import ProofWatch
from pot_zk.runs.proven_run import RunProgress
from pot_zk.runs.session import RunSummary, resume_session, start_session

schema.register_schema()


def train(cfg: DictConfig, *, resume: bool = False, sleep=time.sleep) -> RunSummary:
    """Run (or resume) the training job ``cfg`` describes. Raises when fail_fast halts."""
    lifecycle = RunLifecycle.from_config(cfg)
    plan = lifecycle.runtime.plan
    if plan.kind.base_architecture(plan.spec.architecture) is not None and plan.model.base_run is None:
        raise ConfigurationError(
            f"model.kind={plan.kind.name} needs model.base_run: the run directory whose final model is the frozen base", key="model.base_run"
        )
    if resume:
        bundle = RunBundle.open(plan.run_dir)
        order = bundle.manifest()["training"].get("batch_order", "seeded")
        if order != "seeded":
            raise ConfigurationError(
                f"{plan.run_dir} was trained by a user loop (batch_order={order!r}); `pot-zk resume` can only "
                "continue runs made by `pot-zk train`",
                key="run_dir",
            )
    elif (plan.run_dir / files.MANIFEST).exists():
        raise ConfigurationError(f"{plan.run_dir} already holds a run; continue it with `pot-zk resume {plan.run_dir}`", key="run_dir")
    else:
        bundle = RunBundle(plan.run_dir)
    batches, held_out = declared_data(plan)
    model = build_model(plan)
    optimizer = sgd_optimizer(model, plan)
    schedule = list(step_schedule(plan, len(batches)))
    watching = ProofWatch(plan.workers) if plan.progress else nullcontext()
    with tqdm(total=len(schedule), desc="training", unit="step", disable=not plan.progress, file=sys.stderr) as bar, watching as watch:
        options = {"sleep": sleep, "held_out": held_out, "watch": watch}
        if resume:
            session = resume_session(bundle, lifecycle, plan, model, optimizer, **options)
        else:
            session = start_session(bundle, lifecycle, plan, model, optimizer, batches, lifecycle.runtime.config, **options)
        bar.update(session.next_step)
        with session, BarTicker(bar, lambda: _queue_text(session.progress, watch)):
            for index, epoch, batch_index in schedule[session.next_step :]:
                batch = batches[batch_index]
                session.step(batch.inputs, batch.targets, epoch=epoch, batch_index=batch_index)
                if (index + 1) % len(batches) == 0:
                    session.evaluate()
                bar.update(1)
            bar.set_description("waiting for proofs")
            session.drain()
    assert session.summary is not None
    return session.summary


def declared_data(plan: TrainingPlan) -> tuple[list[Batch], HeldOut | None]:
    """The declared data set: its held-out samples set aside, the rest cut into the run's fixed
    batches (seeded shuffle), as ``pot-zk train`` does."""
    mlp = plan.kind.mlp(plan.spec.architecture)
    return seeded_batches(plan.data, mlp.dims[0], mlp.dims[-1], plan.spec.batch_size, plan.seed, mlp.loss)


def sgd_optimizer(model: torch.nn.Module, plan: TrainingPlan) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` over the trained parameters, with the configured momentum and weight decay."""
    trained = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(trained, lr=plan.spec.learning_rate, momentum=plan.model.momentum, weight_decay=plan.model.weight_decay)


def build_model(plan: TrainingPlan) -> torch.nn.Module:
    """The seeded model to train: a fresh MLP, or the base run's final model with LoRA adapters."""
    base = plan.kind.base_architecture(plan.spec.architecture)
    base_state = None if base is None or plan.base_run is None else base_run_model(plan.base_run, base, plan.commitments, plan.backend.name)
    return seeded_model(plan.spec, plan.seed, base_state)


def step_schedule(plan: TrainingPlan, num_batches: int) -> Iterator[tuple[int, int, int]]:
    """(step, epoch, batch index) of every step of a seeded run."""
    total = plan.epochs * num_batches
    if plan.max_steps is not None:
        total = min(total, plan.max_steps)
    for index in range(total):
        epoch, position = divmod(index, num_batches)
        yield index, epoch, epoch_order(num_batches, epoch, plan.seed)[position]


def _queue_text(progress: RunProgress, watch: ProofWatch | None) -> str:
    """``proofs 1/3 done, ETA 00:09; step 4: prove 2 s``: the outcomes so far, then what the
    running proofs are doing (:class:`~pot_zk.runs.proof_watch.ProofWatch`)."""
    done = f"proofs {sum(progress.outcomes.values())}/{progress.scheduled} done"
    now = watch.text() if watch is not None else ""
    return f"{done}, {now}" if now else done


def print_summary(summary: RunSummary) -> None:
    outcomes = summary.progress["outcomes"]
    types = ", ".join(f"{count} {name}" for name, count in sorted(summary.progress["proof_types"].items())) or "none"
    print(f"run {summary.status}: {summary.progress['steps']} steps trained, every step committed")
    print(f"proofs: {summary.progress['scheduled']} scheduled; {outcomes.get('proved', 0)} proved ({types}), "
          f"{outcomes.get('failed', 0)} failed, {outcomes.get('parked', 0)} parked")
    line = held_out_line(summary.evaluations)
    if line:
        print(line)
    print(proved_line(summary))
    print(f"bundle: {summary.run_dir}")
    print(f"commitment head: {summary.head} (hand it to the auditor now: it fixes the statement and every step's commitments)")
    print(f"check it with: pot-zk verify {summary.run_dir} --expect-head {summary.head}")


DEV_KEYS = ("dev", "dev-srs")


def proved_line(summary: RunSummary) -> str:
    """What the run proved, in plain words, from the bundle's manifest, step records and final
    proof outcomes (the whole run's, also when this process resumed it): which steps by which proof type (zero-knowledge or not; made with dev keys or not), out of
    how many, what each shows (the committed state of the statement's kind, within its
    tolerance unless exact), and the final held-out accuracy, which no proof covers."""
    bundle = RunBundle(summary.run_dir)
    manifest = bundle.manifest()
    final = {r["step"]: r for r in bundle.proofs()}
    by_type: dict[str, list[int]] = {}
    for step, record in sorted(final.items()):
        if record["status"] == "proved":
            by_type.setdefault(str(record["proof_type"]), []).append(step)
    steps = len(bundle.commitments())
    if not by_type:
        said = f"in short: none of the {steps} steps proven; all committed (they can be challenged later)"
    else:
        dev = (manifest.get("srs") or manifest.get("keys") or {}).get("provenance") in DEV_KEYS
        parts = [
            f"{len(chosen)} with {kind} ({_nature(kind, dev)}): {'step' if len(chosen) == 1 else 'steps'} {_listed(chosen)}"
            for kind, chosen in sorted(by_type.items())
        ]
        statement = spec_from_dict(manifest["circuit"])
        tolerance = "" if statement.tolerance_ulps == 0 else f" within {statement.tolerance_ulps} units of 2^-{statement.scale}"
        said = (f"in short: {sum(map(len, by_type.values()))} of {steps} steps proven, {'; '.join(parts)}, each the declared "
                f"update{tolerance} of its committed {STEP_KINDS.get(statement.kind).state_words} on its committed batch; all {steps} committed")
    scores = [e for e in summary.evaluations if e.accuracy is not None]
    if scores and scores[-1].after_step == steps:
        said += f"; held-out accuracy {scores[-1].accuracy:.1%} (initial {scores[0].accuracy:.1%}), measured, not proven"
    return said


def _nature(proof_type: str, dev_keys: bool) -> str:
    if not PROOF_TYPES.get(proof_type).zero_knowledge:
        return "witness revealed to the verifier"
    return "zero-knowledge; dev keys: whoever made them could forge such proofs" if dev_keys else "zero-knowledge"


def _listed(steps: list[int]) -> str:
    return ", ".join(str(s) for s in steps[:8]) + (f" and {len(steps) - 8} more" if len(steps) > 8 else "")


def held_out_line(evaluations: tuple[Evaluation, ...]) -> str | None:
    """``held-out accuracy: 9.7% -> 88.3% (359 samples, initial -> after step 179)``, or the loss
    for a regression set; None without scores."""
    if not evaluations:
        return None
    first, last = evaluations[0], evaluations[-1]
    where = f"{first.samples} samples, {'initial' if first.after_step == 0 else f'after step {first.after_step}'} -> after step {last.after_step}"
    if first.accuracy is not None and last.accuracy is not None:
        return f"held-out accuracy: {first.accuracy:.1%} -> {last.accuracy:.1%} ({where})"
    return f"held-out loss: {first.loss:.4g} -> {last.loss:.4g} ({where})"


@hydra.main(version_base="1.3", config_path="pkg://pot_zk.conf", config_name="config")
def train_app(cfg: DictConfig) -> None:
    hydra_config = HydraConfig.get()
    if hydra_config.mode == RunMode.MULTIRUN:
        cfg.run_dir = hydra_config.runtime.output_dir  # each sweep job's bundle is its own output dir
    print_summary(train(cfg))
