"""One open proven training run: the code path ``pot-zk train`` and the integration hooks
(:mod:`pot_zk.hooks`) share.

A :class:`TrainingSession` owns the model, its SGD optimizer and the proving executor of a
prepared run bundle; its audit trail and statistics are those of its
:class:`~pot_zk.runs.lifecycle.RunLifecycle`. Each :meth:`TrainingSession.step` captures one SGD step,
records its commitments (every step), queues its proof if the policy selects it, checkpoints
the model and surfaces a halted proof. Leaving the ``with`` block ends the run: queued proofs
are drained, the final model, statistics and the audit trail's ``run.end`` are written.

A run with a held-out set scores its models on it (:mod:`pot_zk.runs.evaluation`): the
initial model when the run starts, the model at each epoch's end (:meth:`TrainingSession.evaluate`,
called by the training loop) and the final model when the run completes.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from omegaconf import OmegaConf

from pot_zk.config.plan import TrainingPlan
from pot_zk.backends.base import TrainingArithmetic
from pot_zk.core.atomic import append_line
from pot_zk.core.audit import AuditLog, run_start_fields
from pot_zk.core.challenge import commitment_head
from pot_zk.core.prover_processes import allow_provers, closing_run, pause, stop_provers
from pot_zk.core.scalars import open_logger
from pot_zk.exceptions import PotZkError
from pot_zk.kinds.base import BatchStep
from pot_zk.kinds.registry import capture_step
from pot_zk.proving.executors import create_executor
from pot_zk.proving.pipeline import ProofResult
from pot_zk.runs import bundle as files
from pot_zk.data.datasets import Batch, HeldOut
from pot_zk.runs.bundle import RunBundle, discard_incomplete_tail, read_jsonl, save_model
from pot_zk.runs.checkpoint import restore_checkpoint, save_checkpoint
from pot_zk.runs.evaluation import Evaluation, Evaluator, classification
from pot_zk.runs.lifecycle import RunLifecycle
from pot_zk.runs.manifest import prepare_run
from pot_zk.runs.proof_watch import ProofWatch
from pot_zk.runs.proven_run import ProvenRun, RunProgress
from pot_zk.runs.resume import check_checkpoint, check_resumable
from pot_zk.runs.summary import RunSummary


def take_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor, arithmetic: TrainingArithmetic | None
) -> BatchStep:
    """One training step on a batch, as a run takes it: the optimizer's step captured
    (:func:`~pot_zk.kinds.registry.capture_step`), then replaced by the backend's exact step when
    it has one (``arithmetic``), the model and the optimizer's state set to it. What
    :class:`TrainingSession` and the replay of a challenged step both do."""
    step = capture_step(model, optimizer, inputs, targets)
    return step if arithmetic is None else arithmetic.step(model, optimizer, step)


class TrainingSession:
    """A prepared run bundle, opened in ``lifecycle`` (its audit trail and statistics), training
    ``model`` with ``optimizer`` under ``plan``."""

    def __init__(
        self,
        bundle: RunBundle,
        lifecycle: RunLifecycle,
        plan: TrainingPlan,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        prepared: dict[str, Any],
        *,
        start_step: int = 0,
        sleep: Callable[[float], None] = pause,
        evaluator: Evaluator | None = None,
        watch: ProofWatch | None = None,
    ) -> None:
        self.bundle = bundle
        self.lifecycle = lifecycle
        self.evaluator = evaluator
        self.model = model
        self.optimizer = optimizer
        self.next_step = start_step
        self.summary: RunSummary | None = None
        pipeline = lifecycle.pipeline(sleep=sleep) if lifecycle.runtime.proving_enabled else None
        self.arithmetic = plan.backend.training_arithmetic(plan.spec)
        self.run = ProvenRun(
            bundle, plan.spec, plan.commitments, pipeline, plan.policy, plan.cache_dir, prepared["prover_options"], prepared["leaves"], record_loss=plan.record_loss
        )
        self.run.watch = watch
        self.scalars = open_logger(plan.logger.name, plan.logger.log_dir)
        self.run.on_result = self._on_result
        if pipeline is not None:
            self.run.executor = create_executor(
                plan.executor, pipeline.prove, self.run.record_result, plan.workers, scheduler_address=plan.scheduler_address
            )
            self.run.requeue_unfinished(start_step)

    @property
    def audit(self) -> AuditLog:
        assert self.lifecycle.audit is not None
        return self.lifecycle.audit

    @property
    def progress(self) -> RunProgress:
        return self.run.progress

    def step(self, inputs: torch.Tensor, targets: torch.Tensor, *, epoch: int | None, batch_index: int) -> BatchStep:
        """Train on one declared batch (``batch_index`` into the dataset) and record the step."""
        if self.summary is not None:
            raise RuntimeError(f"the run in {self.bundle.root} has ended ({self.summary.status}); it takes no more steps")
        return self._record(take_step(self.model, self.optimizer, inputs, targets, self.arithmetic), epoch=epoch, batch_index=batch_index)

    def record(
        self, step: BatchStep, *, epoch: int | None, batch_index: int | None, samples: tuple[int, ...] | None = None
    ) -> BatchStep:
        """Record a step the optimizer just took (its state after it in the model and the
        optimizer): replaced by the exact step when the backend has one, committed, queued for
        its proof if the policy selects it, checkpointed. ``batch_index``: the declared batch it
        trained on, or None for a batch committed as it came (with its ``samples``' positions in
        a declared data set, if any)."""
        if self.summary is not None:
            raise RuntimeError(f"the run in {self.bundle.root} has ended ({self.summary.status}); it takes no more steps")
        if self.arithmetic is not None:
            self.run.check_state(step, self.next_step)  # before the exact step: a weight moved off its grid is named as the change it is
            step = self.arithmetic.step(self.model, self.optimizer, step)
        return self._record(step, epoch=epoch, batch_index=batch_index, samples=samples)

    def _record(self, step: BatchStep, *, epoch: int | None, batch_index: int | None, samples: tuple[int, ...] | None = None) -> BatchStep:
        index = self.next_step
        self.run.record_step(step, index, epoch, batch_index, self.audit, samples=samples)
        if step.loss is not None:
            self.scalars.add("train/loss", step.loss, index)
        self.next_step = index + 1
        save_checkpoint(self.bundle.path(files.CHECKPOINT), self.model, self.optimizer, self.next_step)
        if self.run.executor is not None:
            self.run.executor.check()
        return step

    @property
    def committed_steps(self) -> int:
        """The run's committed steps (earlier commands' too): what an interruption reports
        (review45: :attr:`next_step`, advanced once the checkpoint is due, lagged a step behind
        a signal that came after the commitment)."""
        return self.run.coverage()[0]

    def evaluate(self) -> Evaluation | None:
        """Score the current model on the held-out set (once per step count), recorded in
        evaluations.jsonl and the audit trail. None without a held-out set."""
        if self.evaluator is None or any(e.after_step == self.next_step for e in self.evaluations()):
            return None
        evaluation = self.evaluator(self.model, self.next_step)
        self.bundle.append_evaluation(evaluation.to_record())
        self.audit.event("evaluation", **evaluation.to_record())
        self.scalars.add("heldout/loss", evaluation.loss, evaluation.after_step)
        if evaluation.accuracy is not None:
            self.scalars.add("heldout/accuracy", evaluation.accuracy, evaluation.after_step)
        return evaluation

    def _on_result(self, result: ProofResult, waited_s: float) -> None:
        """Scalars of one proof outcome (at its step): seconds from queued to outcome and the
        prover's own prove time; and the coverage so far."""
        self.scalars.add("proof/latency_s", waited_s, result.step)
        prove_s = None if result.response is None else result.response.timings.get("prove_s")
        if prove_s is not None:
            self.scalars.add("proof/prove_s", prove_s, result.step)
        self._add_coverage()

    def _add_coverage(self) -> None:
        """The share of the committed steps with a recorded proof, at the number committed."""
        committed, share = self.run.coverage()
        self.scalars.add("proof/coverage", share, committed)

    def evaluations(self) -> tuple[Evaluation, ...]:
        return tuple(sorted((Evaluation.from_record(r) for r in self.bundle.evaluations()), key=lambda e: e.after_step))

    def drain(self) -> None:
        """Wait for every queued proof; raises when one halts the run (fail_fast)."""
        if self.run.executor is not None:
            self.run.executor.drain()

    def end(self, error: BaseException | None) -> RunSummary:
        """Close the run: ``completed`` without ``error``, ``halted`` on a PotZkError (a
        fail_fast proof), ``interrupted`` on KeyboardInterrupt (Ctrl-C; SIGTERM in the CLI: every
        prover this process started is killed first, and no outcome is recorded after it),
        ``aborted`` on anything else (e.g. an exception in the user's loop)."""
        if error is None:
            status = "completed"
        elif isinstance(error, PotZkError):
            status = "halted"
            self.audit.event("run.halted", error=error.to_record())
        elif isinstance(error, KeyboardInterrupt):
            status = "interrupted"
            stop_provers()
            self.audit.event("run.interrupted", signal=getattr(error, "signal_name", "SIGINT"), steps=self.committed_steps)
        else:
            status = "aborted"
            self.audit.event("run.aborted", error={"error_class": type(error).__name__, "message": str(error)})
        try:
            try:
                try:
                    if self.run.executor is not None:
                        self.run.executor.shutdown()
                finally:
                    if status == "interrupted":
                        allow_provers()  # the executor's threads are done: none waits on a killed prover now
                if status == "completed":
                    save_model(self.model.state_dict(), self.bundle.path(files.FINAL_MODEL))
                    self.evaluate()
            except KeyboardInterrupt as interrupted:
                if status == "completed":  # review18, review25: before its final model and score the run is not complete
                    status = "interrupted"
                    self.audit.event("run.interrupted", signal=getattr(interrupted, "signal_name", "SIGINT"), steps=self.committed_steps)
                raise
        finally:
            head = None
            # a signal from here on is raised once run.end is written (completed), or dropped for the error in flight
            with closing_run(raise_deferred=status == "completed"):
                try:
                    self._add_coverage()
                    self.scalars.close()
                    head = _commitment_head(self.bundle)
                finally:  # review25: a KeyboardInterrupt here (a library call: nothing defers it) skipped run.end
                    stats = self.lifecycle.end(status, progress=self.progress.summary(), head=head)
        self.summary = RunSummary(self.bundle.root, status, self.progress.summary(), stats, self.evaluations(), head)
        return self.summary

    def __enter__(self) -> "TrainingSession":
        return self

    def __exit__(self, exc_type: type | None, error: BaseException | None, traceback: Any) -> None:
        if error is None:
            try:
                self.drain()
                self.run.check_final(self.model.state_dict(), self.next_step)
            except BaseException as drain_error:
                self.end(drain_error)
                raise
        self.end(error)


def _commitment_head(bundle: RunBundle) -> str | None:
    try:
        return commitment_head(bundle.manifest(), bundle.commitments())
    except (OSError, ValueError):  # a write failed; the run ends with that error, not this one
        return None


def start_session(
    bundle: RunBundle,
    lifecycle: RunLifecycle,
    plan: TrainingPlan,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: list[Batch],
    config: dict[str, Any],
    *,
    held_out: HeldOut | None = None,
    samples: list[list[int]] | None = None,
    streamed: dict[str, Any] | None = None,
    constants: dict[str, str] | None = None,
    **options: Any,
) -> TrainingSession:
    """Prepare a new run bundle (dataset root, manifest, initial model), open its audit trail
    with ``run.start`` and return its session. ``config`` is the resolved configuration, written
    to config.yaml and the ``run.start`` event; with ``held_out`` the initial model is scored on
    it before the first step; ``samples``: each batch's positions in the declared built-in data
    set (a user loop's); ``streamed`` and ``constants``: see :func:`~pot_zk.runs.manifest.prepare_run`.
    A backend with its own training arithmetic first puts the model on its grid."""
    arithmetic = plan.backend.training_arithmetic(plan.spec)
    if arithmetic is not None:
        arithmetic.start(model)
    config_yaml = OmegaConf.to_yaml(OmegaConf.create(config))
    prepared = prepare_run(
        bundle, plan, lifecycle.runtime, batches, model.state_dict(), config_yaml, held_out, samples, streamed=streamed, constants=constants
    )
    lifecycle.open(
        bundle.path(files.AUDIT), "run.start", stats_dir=bundle.root, run=bundle.root.name,
        run_dir=str(bundle.root), manifest=bundle.manifest(), **run_start_fields(config),
    )
    session = TrainingSession(bundle, lifecycle, plan, model, optimizer, prepared, evaluator=evaluator_for(plan, held_out), **options)
    session.run.start_from(model.state_dict())
    session.evaluate()
    return session


def evaluator_for(plan: TrainingPlan, held_out: HeldOut | None) -> Evaluator | None:
    """How a run scores its models: its loss on ``held_out``, and accuracy for a classification set."""
    if held_out is None:
        return None
    loss = plan.kind.mlp(plan.spec.architecture).loss
    return Evaluator(held_out, loss, classification(plan.data.name, loss))


def resume_session(
    bundle: RunBundle,
    lifecycle: RunLifecycle,
    plan: TrainingPlan,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    held_out: HeldOut | None = None,
    **options: Any,
) -> TrainingSession:
    """Reopen a stopped or killed run: refuse a completed run, another configuration or a
    checkpoint that does not continue the committed steps (:mod:`pot_zk.runs.resume`); drop
    records cut short, restore the last checkpoint."""
    check_resumable(bundle, plan, lifecycle.runtime)
    cut = {name: discard_incomplete_tail(bundle.path(name)) for name in (files.COMMITMENTS, files.PROOFS, files.EVALUATIONS)}
    try:
        prepared = {"leaves": bundle.dataset()["leaves"], "prover_options": bundle.manifest()["prover_options"]}
        checkpoint = bundle.path(files.CHECKPOINT)
        start_step = restore_checkpoint(checkpoint if checkpoint.exists() else bundle.path(files.INITIAL_MODEL), model, optimizer)
        check_checkpoint(bundle, plan, model, start_step)
    except BaseException:  # review46: refused or interrupted, the resume leaves the cut lines for the one that records them
        _put_back(bundle, cut)
        raise
    with closing_run(finishing="the resume's first records", ends_run=False):
        audit = lifecycle.open(bundle.path(files.AUDIT), stats_dir=bundle.root, run=bundle.root.name)
        _audit_cut_off_start(bundle, audit, lifecycle.runtime.config)
        counts = {files.AUDIT: len(lifecycle.discarded), **{name: len(tail) for name, tail in cut.items()}}  # review45: the records files' cuts went unsaid
        audit.event(
            "run.resume", from_step=start_step, discarded_partial_record_bytes=sum(counts.values()),
            discarded_partial_records={name: count for name, count in counts.items() if count},
        )
    _audit_cut_off_evaluations(bundle, audit)
    evaluator = evaluator_for(plan, held_out)
    session = TrainingSession(bundle, lifecycle, plan, model, optimizer, prepared, start_step=start_step, evaluator=evaluator, **options)
    if start_step == 0:  # stopped before the initial model's score was written (e.g. a full disk)
        session.evaluate()
    return session


def _put_back(bundle: RunBundle, cut: dict[str, bytes]) -> None:
    """Append the cut-short last lines again (a resume refused or interrupted before its
    ``run.resume`` record changes none of the run's files)."""
    for name, tail in cut.items():
        if tail:
            append_line(bundle.path(name), tail)


def _audit_cut_off_start(bundle: RunBundle, audit: AuditLog, config: dict[str, Any]) -> None:
    """A kill between writing the manifest and the ``run.start`` record: write it now (marked
    ``at_resume``), so the trail fixes the manifest before the resumed run's first step and
    verify cross-checks manifest.json against it. check_resumable has just found the manifest
    to be the resumed configuration's statement."""
    if any(e.get("event") == "run.start" for e in read_jsonl(bundle.path(files.AUDIT))):
        return
    audit.event(
        "run.start", run_dir=str(bundle.root), manifest=bundle.manifest(), at_resume=True,
        **run_start_fields(config),
    )


def _audit_cut_off_evaluations(bundle: RunBundle, audit: AuditLog) -> None:
    """A kill between writing a score to evaluations.jsonl and its audit record: write the record now."""
    audited = {e.get("after_step") for e in read_jsonl(bundle.path(files.AUDIT)) if e.get("event") == "evaluation"}
    for record in bundle.evaluations():
        if record["after_step"] not in audited:
            audit.event("evaluation", **record)
