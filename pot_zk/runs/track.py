"""``pot_zk.track``: prove the steps of your own training loop, your own step included.

    with pot_zk.track(model, optimizer, run_dir="runs/mine", overrides=["prover=groth16"],
                      dataset=train_set) as run:
        for epoch in range(3):
            for x, y in loader:                 # any iterable of batches (a shuffling DataLoader)
                run.batch(x, y)                 # this step's batch, committed as it comes
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)     # your own loss
                loss.backward()
                optimizer.step()                # observed: checked, committed, proven per policy
    print(run.summary)                          # status, proofs, commitment head, verify command

The run starts at the first ``run.batch`` (the statement is read from the model, the optimizer
and that batch: :func:`pot_zk.runs.user_loop.declare`) and ends with the block: queued proofs
are waited for, the final model, statistics and ``run.end`` written, ``run.summary`` set. Each
``optimizer.step()`` must be the declared step on the declared batch
(:mod:`pot_zk.runs.observer`); the first that is not is undone and refused
(:class:`~pot_zk.exceptions.StepMismatchError`, the run ends ``halted``). Under an exact
statement (``prover=groth16``) the model is put on the statement's grid at the start and every
update is the statement's integer step (``run.summary`` says so).

The data: without ``dataset`` each batch is only committed (the manifest declares
``undeclared`` data). With ``dataset`` -- a built-in data set's name (``digits``,
``synthetic``; ``data.*`` overrides choose its part, sample count and seed) or a map-style
data set of ``(input, target)`` pairs -- the Merkle root of its samples goes into the manifest
before the first step (:mod:`pot_zk.data.samples`) and each step records its samples'
positions in it (found by value, or given: ``run.batch(x, y, indices=idx)``); a batch with a
sample outside it is refused. ``pot-zk verify`` recomputes a built-in set and checks every
step's batch against its samples; for your own data it takes the root you pin
(``--expect-root``).

``track(..., resume=True)`` reopens a run that stopped (killed, halted or aborted) from its
checkpoint, with the configuration it recorded (``overrides`` are not applied again): the model,
the optimizer's state and the LR scheduler's (given as ``scheduler``) are restored, and
``run.steps`` says how many steps are done, so the loop skips their batches. A completed run,
a directory ``track`` did not make, or another statement or data set is refused in one line.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from pot_zk.config.build import load_run_config
from pot_zk.config.plan import TrainingPlan
from pot_zk.core.atomic import write_json_atomic
from pot_zk.core.console import BarTicker, progress_bar
from pot_zk.data.datasets import BUILT_IN, DataSettings, load_dataset, select_part
from pot_zk.data.samples import OWN_DATA, UNDECLARED, SampleSet, stacked
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError, WitnessBuilderError
from pot_zk.kinds.base import BatchStep
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import RunBundle, read_jsonl
from pot_zk.runs.lifecycle import RunLifecycle
from pot_zk.runs.manifest import declared_dataset, streamed_entries
from pot_zk.runs.observer import DeclaredBatch
from pot_zk.runs.proof_watch import ProofWatch
from pot_zk.runs.proven_run import queue_text
from pot_zk.runs.resume import check_keys_at_hand
from pot_zk.runs.session import TrainingSession, resume_session, start_session
from pot_zk.runs.summary import RunSummary, verify_command
from pot_zk.runs.user_loop import ObservedSession, declare, put_on_grid, recorded_config

SCHEDULER = "scheduler.json"
"""The LR scheduler's state at the last checkpoint (``next_step``, ``state``)."""


class TrackedRun:
    """What a ``track`` block yields: declare each step's batch, read progress and the summary."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, run_dir: Path, overrides: Sequence[str], scheduler: Any, dataset: Any, progress: bool) -> None:
        self.model = model
        self.optimizer = optimizer
        self.run_dir = run_dir
        self._overrides = list(overrides)
        self._scheduler = scheduler
        self._dataset = dataset
        self._samples: SampleSet | None = None
        self._observed: ObservedSession | None = None
        self._lifecycle: RunLifecycle | None = None
        """The run's lifecycle once it is claimed: its lock is held until the block ends."""
        self._shown = ExitStack()
        self._bar = self._shown.enter_context(progress_bar(desc="training", unit="step", disable=not progress))
        self._watch: ProofWatch | None = None

    @property
    def steps(self) -> int:
        """Steps committed so far (after a resume: the run's, not only this process's)."""
        return 0 if self._observed is None else self._observed.session.next_step

    @property
    def summary(self) -> RunSummary | None:
        """How the run ended (None while it is open, or when it never took a step)."""
        return None if self._observed is None else self._observed.session.summary

    def verify_command(self, *, declared: bool = False) -> str:
        """What to hand the auditor with the run's export once the block has ended: the ``pot-zk
        verify`` command line for the run directory, with the commitment head, the settings to
        accept and the dataset root, the initial model (W_0's commitment) and a LoRA run's base to
        pin, as placeholders (ROOT, W0, BASE: the auditor's agreed values); ``declared``: with
        the values this run declares instead (:func:`~pot_zk.runs.summary.verify_command`)."""
        if self.summary is None or self.summary.head is None:
            raise RuntimeError("the run has not ended: its commitment head is not fixed yet")
        return verify_command(self.run_dir, self.summary.head, RunBundle.open(self.run_dir), declared=declared)

    def batch(self, inputs: torch.Tensor, targets: torch.Tensor, *, indices: Sequence[int] | None = None) -> None:
        """Declare the batch of the next ``optimizer.step()``; ``indices``: its samples' positions
        in the declared data set (found by value when not given)."""
        inputs, targets = torch.as_tensor(inputs).detach().clone(), torch.as_tensor(targets).detach().clone()
        if self._observed is None:
            self._start(inputs, targets, indices)
        assert self._observed is not None
        try:
            self._declare(inputs, targets, indices)
        except (InvalidModelStateError, WitnessBuilderError) as refused:  # review29: in the audit trail too (step.refused)
            self._observed.refused(refused)
            raise

    def _declare(self, inputs: torch.Tensor, targets: torch.Tensor, indices: Sequence[int] | None) -> None:
        assert self._observed is not None
        spec = self._observed.plan.spec
        if len(inputs) != spec.batch_size:
            raise WitnessBuilderError(
                f"step {self.steps}: a batch of {len(inputs)} samples; the run's statement has batch_size {spec.batch_size} "
                "(drop a last partial batch: DataLoader(..., drop_last=True))",
                expected=spec.batch_size, actual=len(inputs), step=self.steps,
            )
        if indices is not None and self._samples is None:
            raise ConfigurationError("indices= name samples of a declared data set: declare it with track(..., dataset=...)", key="dataset")
        samples = None if self._samples is None else self._samples.locate(inputs, targets, indices, self.steps)
        self._observed.declare(DeclaredBatch(inputs, targets, None, samples))

    def _start(self, inputs: torch.Tensor, targets: torch.Tensor, indices: Sequence[int] | None) -> None:
        declared = declare(self.model, self.optimizer, inputs, targets, self.run_dir, self._overrides, self._scheduler)
        plan = declared.plan
        self._samples = declared_samples(self._dataset, plan)  # refusals before the lock: no run directory left behind
        if self._samples is not None:
            self._samples.locate(inputs, targets, indices, 0)
        self._lifecycle = declared.lifecycle
        declared.lifecycle.claim(plan.run_dir, "track")
        declared.check_new()
        plan = dataclasses.replace(plan, streamed=True, data=dataclasses.replace(plan.data, name=self._samples.name if self._samples else UNDECLARED))
        streamed = streamed_entries(*self._dataset_entry(plan))
        if plan.backend.training_arithmetic(plan.spec) is not None:
            put_on_grid(self.model, plan)
        config = recorded_config(declared.lifecycle.runtime.config, self._samples.name if self._samples else None)
        self._watch_proofs(plan)
        session = start_session(
            RunBundle(plan.run_dir), declared.lifecycle, plan, self.model, self.optimizer, [], config,
            streamed=streamed, constants=declared.constants, watch=self._watch,
        )
        self._observe(session, plan)
        if self._scheduler is not None:  # the states file says the run has a scheduler object, from the start (review30)
            write_json_atomic(session.bundle.path(SCHEDULER), {"states": {"0": self._scheduler.state_dict()}})

    def _watch_proofs(self, plan: TrainingPlan) -> None:
        if not self._bar.disable:
            self._watch = self._shown.enter_context(ProofWatch(plan.workers))

    def _observe(self, session: TrainingSession, plan: TrainingPlan) -> None:
        self._observed = ObservedSession(session, plan, self._recorded, self._before_record)
        self._shown.enter_context(BarTicker(self._bar, self._proof_text))

    def _dataset_entry(self, plan: TrainingPlan) -> tuple[str, str | None, int | None, dict[str, Any]]:
        samples = self._samples
        if samples is None:
            return plan.data.name, None, None, declared_dataset(plan.data)
        return samples.name, samples.root, len(samples), declared_dataset(plan.data)

    def _recorded(self, step: BatchStep) -> None:
        self._bar.update(1)

    def _before_record(self, next_step: int) -> None:
        """Keep the scheduler's state as the step ending at ``next_step`` left it (before the
        loop's ``scheduler.step()``), and the one before (a kill between the two files)."""
        if self._scheduler is None:
            return
        path = self._observed_bundle().path(SCHEDULER)
        states = json.loads(path.read_text())["states"] if path.exists() else {}
        kept = {key: value for key, value in states.items() if int(key) == next_step - 1}
        write_json_atomic(path, {"states": {**kept, str(next_step): self._scheduler.state_dict()}})

    def _observed_bundle(self) -> RunBundle:
        assert self._observed is not None
        return self._observed.session.bundle

    def _proof_text(self) -> str:
        """``proofs 1/3 done, ETA 00:09; step 4: prove 2 s`` (:class:`~pot_zk.runs.proof_watch.ProofWatch`)."""
        assert self._observed is not None
        return queue_text(self._observed.progress, self._watch)

    def resume(self) -> None:
        """Reopen the stopped run in ``run_dir`` from its checkpoint (module docstring)."""
        bundle = RunBundle.open(self.run_dir)
        manifest = bundle.manifest()
        if (manifest.get("training") or {}).get("batches") != "streamed":
            raise ConfigurationError(f"{self.run_dir} was not made by track(); track(..., resume=True) continues only tracked runs", key="run_dir")
        ends = files.training_ends(read_jsonl(bundle.path(files.AUDIT)))  # a review: prove-pending's own run.end is always completed
        if bundle.path(files.FINAL_MODEL).exists() or (ends and ends[-1].get("status") == "completed"):
            raise ConfigurationError(f"{self.run_dir} holds a completed run; a completed run is never extended", key="run_dir")
        lifecycle = RunLifecycle.from_config(load_run_config(bundle.path(files.CONFIG), (), run_dir=bundle.root))  # as recorded
        self._lifecycle = lifecycle
        lifecycle.claim(self.run_dir, "track")
        plan = lifecycle.runtime.plan
        if plan.spec.to_dict() != manifest["circuit"]:
            raise ConfigurationError(f"the configuration does not give the statement {self.run_dir} declared", key="overrides")
        plan = dataclasses.replace(
            plan, batch_order="recorded", streamed=True, data=dataclasses.replace(plan.data, name=str(manifest["dataset"].get("name")))
        )
        self._samples = declared_samples(self._dataset, plan)
        if (None if self._samples is None else self._samples.root) != manifest["dataset"]["root"]:
            raise ConfigurationError(f"the data set given is not the one {self.run_dir} declared (its samples' root differs)", key="dataset")
        declared = (manifest.get("training") or {}).get("schedule")
        if self._scheduler is None and bundle.path(SCHEDULER).exists():  # review27: refused at the first step as "learning rate 0.1, declared 0.0691"
            # (the states file: the run was started with a scheduler object; a schedule declared in the configuration has none: review29)
            raise ConfigurationError(f"{self.run_dir} declares a learning-rate schedule ({plan.schedule.describe() if plan.schedule else declared}): "
                                     "resume with the same scheduler, fresh (track(..., scheduler=...))", key="scheduler")
        check_keys_at_hand(bundle, plan, lifecycle.runtime)
        self._watch_proofs(plan)
        session = resume_session(bundle, lifecycle, plan, self.model, self.optimizer, watch=self._watch)
        self._restore_scheduler(bundle, session.next_step)
        self._observe(session, plan)
        self._bar.update(session.next_step)

    def _restore_scheduler(self, bundle: RunBundle, next_step: int) -> None:
        if self._scheduler is None:
            return
        path = bundle.path(SCHEDULER)
        saved = (json.loads(path.read_text())["states"] if path.exists() else {}).get(str(next_step))
        if next_step == 0:
            return
        if saved is None:
            raise ConfigurationError(f"{self.run_dir} holds no scheduler state for step {next_step}: it cannot resume with this scheduler", key="scheduler")
        self._scheduler.load_state_dict(saved)
        for group, rate in zip(self.optimizer.param_groups, self._scheduler.get_last_lr()):
            group["lr"] = rate  # the rate the last step trained at: chained schedulers step from it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns of a scheduler stepped before the optimizer
            self._scheduler.step()

    def end(self, error: BaseException | None) -> None:
        """Leave the block: stop observing, wait for queued proofs, end the run."""
        try:
            if self._observed is not None:
                self._observed.close()
                self._bar.set_description("waiting for proofs")
                self._observed.session.__exit__(None if error is None else type(error), error, None)
        finally:
            self._shown.close()
            if self._lifecycle is not None:
                self._lifecycle.release()


def declared_samples(dataset: Any, plan: TrainingPlan) -> SampleSet | None:
    """The declared data set's samples: a built-in set by name (its ``data.*`` part, sample count
    and seed; the targets of the statement's loss), a map-style data set, or None."""
    if dataset is None:
        return None
    if isinstance(dataset, str):
        if dataset not in BUILT_IN:
            raise ConfigurationError(f"dataset={dataset!r} is not a built-in data set ({', '.join(BUILT_IN)}); pass your data set itself", key="dataset")
        mlp = plan.kind.mlp(plan.spec.architecture)
        data: DataSettings = plan.data
        inputs, targets = load_dataset(dataset, mlp.dims[0], mlp.dims[-1], data.num_samples, data.seed, mlp.loss)
        return SampleSet.of(dataset, *select_part(inputs, targets, data.part))
    return SampleSet.of(OWN_DATA, *stacked(dataset))


@contextmanager
def track(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    run_dir: str | Path,
    overrides: Sequence[str] = (),
    scheduler: Any = None,
    dataset: Any = None,
    resume: bool = False,
    progress: bool = False,
) -> Iterator[TrackedRun]:
    """Observe the steps ``optimizer`` takes on ``model`` inside the block and prove them into
    the run bundle ``run_dir`` (module docstring). ``overrides``: pot-zk's configuration, as on
    the ``pot-zk train`` command line; ``progress``: a progress bar on stderr."""
    run = TrackedRun(model, optimizer, Path(run_dir).absolute(), overrides, scheduler, dataset, progress)
    try:
        if resume:
            run.resume()
        yield run
    except BaseException as error:
        run.end(error)
        raise
    run.end(None)

