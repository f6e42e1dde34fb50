"""``pot-zk train``: train a model with the configured optimizer, committing to every step and proving steps as the
policy says, into a run bundle that ``pot-zk verify`` checks; ``pot-zk resume RUN`` continues
a run that was stopped or killed."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from omegaconf import DictConfig

from pot_zk.config.build import Runtime
from pot_zk.config.plan import TrainingPlan
from pot_zk.config.validate import ErrorCollector
from pot_zk.core.console import BarTicker, progress_bar
from pot_zk.core.prover_processes import Interrupted, pause
from pot_zk.exceptions import ConfigurationError
from pot_zk.runs import bundle as files
from pot_zk.runs.base_run import base_run_model
from pot_zk.runs.bundle import LOCK_FILES, RunBundle, check_new_run_dir
from pot_zk.data.datasets import Batch, HeldOut, epoch_order, seeded_batches
from pot_zk.kinds.schedule import scheduler_at
from pot_zk.runs.init_model import seeded_model
from pot_zk.runs.lifecycle import RunLifecycle
from pot_zk.runs.proof_watch import ProofWatch
from pot_zk.runs.proven_run import queue_text
from pot_zk.runs.resume import check_resumable
from pot_zk.runs.session import TrainingSession, resume_session, start_session
from pot_zk.runs.summary import RunSummary


class RunInterrupted(Interrupted):
    """``pot-zk train`` or ``resume`` was interrupted (Ctrl-C, SIGTERM) after ``steps`` of the
    run's ``total`` steps (None: before its schedule was known); the run's audit trail records
    it. ``resumable``: the run directory holds a run that ``pot-zk resume`` continues (False when
    the interruption came before the manifest was written). ``completed``: it came after the run
    had ended completed (its ``run.end`` written): nothing is left to resume."""

    def __init__(self, run_dir: Path, steps: int, total: int | None, signal_name: str, resumable: bool, completed: bool = False) -> None:
        super().__init__(signal_name)
        self.run_dir = run_dir
        self.steps = steps
        self.total = total
        self.resumable = resumable
        self.completed = completed


def train(cfg: DictConfig, *, resume: bool = False, sleep: Callable[[float], None] = pause) -> RunSummary:
    """Run (or resume) the training job ``cfg`` describes, holding the run directory's lock.
    Raises when fail_fast halts, RunInUseError when another process holds the run,
    RunInterrupted on Ctrl-C (every prover it started killed)."""
    lifecycle = RunLifecycle.from_config(cfg)
    plan = lifecycle.runtime.plan
    check_trainable(lifecycle.runtime)
    if resume:
        RunBundle.open(plan.run_dir)
    lifecycle.claim(plan.run_dir, "pot-zk resume" if resume else "pot-zk train")
    try:
        bundle = _resumable_bundle(plan) if resume else new_run_bundle(plan.run_dir)
        if resume:
            check_resumable(bundle, plan, lifecycle.runtime)  # before the data is loaded and the progress bar drawn
        return _train(lifecycle, plan, bundle, resume, sleep)
    finally:
        lifecycle.release()


def check_trainable(runtime: Runtime) -> None:
    """What a training run needs beyond a valid configuration, checked before anything is
    written: a LoRA kind's base run, keys the mode accepts (production refuses dev keys), the
    prover program and, for executor=dask, Dask and its scheduler (when proving)."""
    plan = runtime.plan
    needs_base = plan.kind.base_architecture(plan.spec.architecture) is not None and plan.model.base_run is None
    errors = ErrorCollector([ConfigurationError(
        f"model.kind={plan.kind.name} needs model.base_run: the run directory whose final model is the frozen base", key="model.base_run"
    )] if needs_base else [])
    if runtime.proving_enabled:
        errors.attempt(plan.backend.check_key_policy, plan.keys, runtime.mode)
        if plan.scheduler_address is None:  # a remote Dask cluster runs the program on its workers
            errors.attempt(_check_prover_program, runtime.strategy)
        if plan.executor == "dask":
            from pot_zk.proving.dask_executor import check_cluster

            errors.attempt(check_cluster, plan.scheduler_address)
    errors.raise_any()


def _check_prover_program(strategy: Any) -> None:
    """A prover program that is not there is a configuration error before the first step (not
    an error at every selected step)."""
    from pot_zk.core.runner import locate_prover
    from pot_zk.exceptions import ProverNotFoundError
    from pot_zk.proving.strategies import ProgramStrategy

    if isinstance(strategy, ProgramStrategy):
        try:
            locate_prover(strategy.binary, strategy.search_paths)
        except ProverNotFoundError as error:
            raise ConfigurationError(error.message, key="prover.binary") from error


def new_run_bundle(run_dir: Path) -> RunBundle:
    """The bundle of a new run in ``run_dir``: ConfigurationError when it already holds one, or
    files of its own (checked under the run directory's lock, so no other process can be
    starting one there)."""
    check_new_run_dir(run_dir, f"continue it with `pot-zk resume {run_dir}`", LOCK_FILES | _hydra_outputs(run_dir))
    return RunBundle(run_dir)


def _hydra_outputs(run_dir: Path) -> frozenset[str]:
    """What the Hydra app running this training wrote into ``run_dir`` before it (its record and
    its job's log; in a sweep, a failed earlier job's ``job_error.json``); nothing outside one."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return frozenset()
    hydra = HydraConfig.get()
    if Path(hydra.runtime.output_dir).absolute() != Path(run_dir).absolute():
        return frozenset()
    return frozenset({str(hydra.output_subdir or ".hydra"), f"{hydra.job.name}.log", "job_error.json"})


def _resumable_bundle(plan: TrainingPlan) -> RunBundle:
    bundle = RunBundle.open(plan.run_dir)
    order = bundle.manifest()["training"].get("batch_order", "seeded")
    if order != "seeded":
        raise ConfigurationError(
            f"{plan.run_dir} was trained by a user loop (batch_order={order!r}); `pot-zk resume` can only "
            "continue runs made by `pot-zk train`",
            key="run_dir",
        )
    return bundle


def _train(lifecycle: RunLifecycle, plan: TrainingPlan, bundle: RunBundle, resume: bool, sleep: Callable[[float], None]) -> RunSummary:
    session: TrainingSession | None = None
    schedule: list[tuple[int, int, int]] | None = None
    try:
        batches, held_out = declared_data(plan)
        model = build_model(plan)
        optimizer = run_optimizer(model, plan)
        schedule = list(step_schedule(plan, len(batches)))
        plan.check_rates(len(schedule))
        watching = ProofWatch(plan.workers) if plan.progress else nullcontext()
        with progress_bar(total=len(schedule), desc="training", unit="step", disable=not plan.progress) as bar, watching as watch:
            options = {"sleep": sleep, "held_out": held_out, "watch": watch}
            if resume:
                session = resume_session(bundle, lifecycle, plan, model, optimizer, **options)
            else:
                session = start_session(bundle, lifecycle, plan, model, optimizer, batches, lifecycle.runtime.config, **options)
            bar.update(session.next_step)
            rates = scheduler_at(plan.schedule, optimizer, session.next_step)
            with session, BarTicker(bar, lambda: queue_text(session.progress, watch)):
                for index, epoch, batch_index in schedule[session.next_step :]:
                    batch = batches[batch_index]
                    session.step(batch.inputs, batch.targets, epoch=epoch, batch_index=batch_index)
                    if rates is not None:
                        rates.step()
                    if (index + 1) % len(batches) == 0:
                        session.evaluate()
                    bar.update(1)
                bar.set_description("waiting for proofs")
                session.drain()
    except KeyboardInterrupt as error:
        if session is not None and not lifecycle.ended:
            session.end(error)  # interrupted between the session's start and its `with` block
        elif session is None:
            lifecycle.end("interrupted")  # a trail opened before the first step is closed too
        steps = session.committed_steps if session is not None else _steps_recorded(bundle)
        total = None if schedule is None else len(schedule)
        signal_name = getattr(error, "signal_name", "SIGINT")
        completed = lifecycle.end_status == "completed"
        raise RunInterrupted(bundle.root, steps, total, signal_name, (bundle.root / files.MANIFEST).is_file(), completed) from error
    assert session.summary is not None
    return session.summary


def _steps_recorded(bundle: RunBundle) -> int:
    """The complete lines of commitments.jsonl (review46: a last line a kill cut short made the
    records unreadable, and an interruption before the session said "at step 0")."""
    try:
        return bundle.path(files.COMMITMENTS).read_bytes().count(b"\n")
    except OSError:
        return 0


def declared_data(plan: TrainingPlan) -> tuple[list[Batch], HeldOut | None]:
    """The declared data set: its held-out samples set aside, the rest cut into the run's fixed
    batches (seeded shuffle), as ``pot-zk train`` does."""
    mlp = plan.kind.mlp(plan.spec.architecture)
    return seeded_batches(plan.data, mlp.dims[0], mlp.dims[-1], plan.spec.batch_size, plan.seed, mlp.loss)


def run_optimizer(model: torch.nn.Module, plan: TrainingPlan) -> torch.optim.Optimizer:
    """The configured torch optimizer (``optimizer.*``) over the trained parameters."""
    return plan.model.optimizer.build([p for p in model.parameters() if p.requires_grad], plan.spec.learning_rate)


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


