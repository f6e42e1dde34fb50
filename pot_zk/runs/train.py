"""``pot-zk train``: train a model with SGD, committing to every step and proving steps as the
policy says, into a run bundle that ``pot-zk verify`` checks; ``pot-zk resume RUN`` continues
a run that was stopped or killed."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from pot_zk.config import schema
from pot_zk.config.build import build, resolved_container
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.base import ModelSettings, StepKind
from pot_zk.kinds.registry import STEP_KINDS
from pot_zk.kinds.spec_base import CircuitSpec
from pot_zk.proving.policy import create_policy
from pot_zk.runs import bundle as files
from pot_zk.runs.base_run import base_run_model
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.data import Batch, HeldOut, epoch_order, seeded_batches
from pot_zk.runs.evaluation import Evaluation
from pot_zk.runs.init_model import seeded_model
from pot_zk.runs.proven_run import RunProgress
from pot_zk.runs.session import RunSummary, resume_session, start_session
from pot_zk.runs.witnesses import WitnessRetention, witness_retention

schema.register_schema()


@dataclass(frozen=True)
class TrainingPlan:
    """The typed view of the config that training needs."""

    run_dir: Path
    cache_dir: Path
    spec: CircuitSpec
    data: dict[str, Any]
    epochs: int
    max_steps: int | None
    seed: int
    progress: bool
    policy: Any
    executor: str
    workers: int
    srs_path: str | None
    allow_dev_srs: bool
    witnesses: WitnessRetention
    """Which step witnesses stay in the bundle (pot_zk.runs.witnesses)."""
    batch_order: str = "seeded"
    """``seeded``: epochs visit the batches in a seeded permutation (``pot-zk train``);
    ``recorded``: a user loop chose each step's batch, recorded per step (:mod:`pot_zk.hooks`)."""
    scheduler_address: str | None = None
    """executor=dask: the scheduler to use; None starts a LocalCluster."""
    base_run: Path | None = None
    """A run on a frozen base (LoRA): the run whose final model is the base."""

    @property
    def kind(self) -> StepKind:
        return STEP_KINDS.get(self.spec.kind)


def plan_from_config(cfg: DictConfig) -> TrainingPlan:
    if cfg.train.epochs < 1:
        raise ConfigurationError("train.epochs must be >= 1", key="train.epochs")
    kind = STEP_KINDS.get(str(cfg.model.kind))
    model = ModelSettings(
        kind=kind.name,
        dims=tuple(cfg.model.dims),
        lora_layers=tuple(cfg.model.lora_layers),
        lora_rank=int(cfg.model.lora_rank),
        lora_alpha=float(cfg.model.lora_alpha),
        base_run=Path(cfg.model.base_run).expanduser().absolute() if cfg.model.base_run else None,
    )
    architecture = kind.architecture(model)
    if kind.base_architecture(architecture) is not None and model.base_run is None:
        raise ConfigurationError(
            f"model.kind={kind.name} needs model.base_run: the run directory whose final model is the frozen base", key="model.base_run"
        )
    fixed_point = {key: int(cfg.circuit[key]) for key in ("scale", "param_scale", "decomp_base", "decomp_legs", "tolerance_ulps")}
    spec = kind.check_spec(architecture, int(cfg.train.batch_size), float(cfg.train.learning_rate), **fixed_point)
    base_run = model.base_run if kind.base_architecture(architecture) is not None else None
    policy = cfg.policy
    return TrainingPlan(
        run_dir=Path(cfg.run_dir).absolute(),
        cache_dir=Path(cfg.cache_dir).expanduser().absolute(),
        spec=spec,
        data={
            "name": cfg.data.name.name,
            "num_samples": int(cfg.data.num_samples),
            "seed": int(cfg.data.seed),
            "part": cfg.data.part.name,
            "holdout": float(cfg.data.holdout),
        },
        epochs=int(cfg.train.epochs),
        max_steps=None if cfg.train.max_steps is None else int(cfg.train.max_steps),
        seed=int(cfg.train.seed),
        progress=bool(cfg.train.progress),
        policy=create_policy(policy.name.name, k=int(policy.k), fraction=float(policy.fraction), seed=int(policy.seed)),
        executor=cfg.executor.name.name,
        workers=int(cfg.executor.workers),
        srs_path=cfg.srs.path,
        allow_dev_srs=bool(cfg.srs.allow_dev_srs),
        witnesses=witness_retention(spec, cfg.witness.retain.name, int(cfg.witness.max_step_bytes)),
        scheduler_address=cfg.executor.scheduler_address,
        base_run=base_run,
    )


def train(cfg: DictConfig, *, resume: bool = False, sleep=time.sleep) -> RunSummary:
    """Run (or resume) the training job ``cfg`` describes. Raises when fail_fast halts."""
    runtime = build(cfg)
    plan = plan_from_config(cfg)
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
    with tqdm(total=len(schedule), desc="training", unit="step", disable=not plan.progress, file=sys.stderr) as bar:
        options = {"sleep": sleep, "on_progress": lambda progress: bar.set_postfix_str(_queue_text(progress)), "held_out": held_out}
        if resume:
            session = resume_session(bundle, plan, runtime, model, optimizer, **options)
        else:
            session = start_session(bundle, plan, runtime, model, optimizer, batches, _resolved(cfg), **options)
        bar.update(session.next_step)
        with session:
            for index, epoch, batch_index in schedule[session.next_step :]:
                batch = batches[batch_index]
                session.step(batch.inputs, batch.targets, epoch=epoch, batch_index=batch_index)
                if (index + 1) % len(batches) == 0:
                    session.evaluate()
                bar.update(1)
                bar.set_postfix_str(_queue_text(session.progress))
            bar.set_description("waiting for proofs")
            session.drain()
    assert session.summary is not None
    return session.summary


def declared_data(plan: TrainingPlan) -> tuple[list[Batch], HeldOut | None]:
    """The declared data set: its held-out samples set aside, the rest cut into the run's fixed
    batches (seeded shuffle), as ``pot-zk train`` does."""
    dims = plan.kind.mlp(plan.spec.architecture).dims
    return seeded_batches(plan.data, dims[0], dims[-1], plan.spec.batch_size, plan.seed)


def sgd_optimizer(model: torch.nn.Module, plan: TrainingPlan) -> torch.optim.Optimizer:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=plan.spec.learning_rate)


def build_model(plan: TrainingPlan) -> torch.nn.Module:
    """The seeded model to train: a fresh MLP, or the base run's final model with LoRA adapters."""
    base = plan.kind.base_architecture(plan.spec.architecture)
    base_state = None if base is None or plan.base_run is None else base_run_model(plan.base_run, base, plan.spec.scale)
    return seeded_model(plan.spec, plan.seed, base_state)


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    container = resolved_container(cfg)
    container["run_dir"] = str(Path(container["run_dir"]).absolute())
    return container


def step_schedule(plan: TrainingPlan, num_batches: int) -> Iterator[tuple[int, int, int]]:
    """(step, epoch, batch index) of every step of a seeded run."""
    total = plan.epochs * num_batches
    if plan.max_steps is not None:
        total = min(total, plan.max_steps)
    for index in range(total):
        epoch, position = divmod(index, num_batches)
        yield index, epoch, epoch_order(num_batches, epoch, plan.seed)[position]


def _queue_text(progress: RunProgress) -> str:
    done = sum(progress.outcomes.values())
    return f"proofs {done}/{progress.scheduled} done"


def print_summary(summary: RunSummary) -> None:
    outcomes = summary.progress["outcomes"]
    types = ", ".join(f"{count} {name}" for name, count in sorted(summary.progress["proof_types"].items())) or "none"
    print(f"run {summary.status}: {summary.progress['steps']} steps trained, every step committed")
    print(f"proofs: {summary.progress['scheduled']} scheduled; {outcomes.get('proved', 0)} proved ({types}), "
          f"{outcomes.get('failed', 0)} failed, {outcomes.get('parked', 0)} parked")
    line = held_out_line(summary.evaluations)
    if line:
        print(line)
    print(f"bundle: {summary.run_dir}")
    print(f"commitment head: {summary.head} (hand it to the auditor now: it fixes the statement and every step's commitments)")
    print(f"check it with: pot-zk verify {summary.run_dir} --expect-head {summary.head}")


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
