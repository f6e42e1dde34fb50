"""Integration hooks: prove the steps of a training loop over batches declared up front.

    batches = [(x0, y0), (x1, y1), ...]          # the data set, declared before training
    with proven_training(model, optimizer, batches, run_dir="runs/mine") as run:
        for epoch in range(3):
            for x, y in batches:
                loss = run.step(x, y)            # zero_grad, forward, loss, backward, optimizer.step()

``run.step(x, y)`` is the body of your own loop (:func:`pot_zk.track` takes your own body
instead): it declares the batch and takes the step, which the same observer as ``track``
checks and records (:mod:`pot_zk.runs.observer`, :mod:`pot_zk.runs.user_loop`). The result is
the run bundle ``pot-zk train`` writes (same session code path:
:class:`pot_zk.runs.session.TrainingSession`), and ``pot-zk verify`` checks it. The differences
from ``pot-zk train``:

* the batches are fixed and declared up front (their Merkle root goes into the manifest
  before the first step); :meth:`ProvenTraining.step` accepts exactly those batches, in any
  order, any number of times, and rejects any other;
* the loop chooses the order, so the manifest says ``batch_order: recorded`` and each step
  records which declared batch it used; ``pot-zk verify`` then checks that every step's batch
  is a declared leaf, not an order or a step count, and only when the auditor accepts that
  weaker statement and pins the dataset root and the initial model (docs/integration.md);
* ``dataset_name`` names the data: your own (``user``, the default), or a built-in set
  (``digits``, ``synthetic``, with ``data.*`` overrides for its part, sample count and seed)
  when every batch is made of its samples: each batch's sample positions are then recorded in
  dataset.json and checked by ``pot-zk verify``; a batch that is not is refused before the run
  starts;
* the statement (step kind -- SGD, SGD with momentum, LoRA with pot-zk's or peft's adapters --
  architecture, loss, batch size, learning rate) comes from ``model``, the batches and
  ``optimizer``; the rest (policy, mode, handler, executor, circuit, SRS, cache_dir) from
  pot-zk's config with ``overrides``, as on the ``pot-zk train`` command line;
* ``pot-zk resume`` does not continue such a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import torch

from pot_zk.bundle.dataset import sample_indices
from pot_zk.config.plan import TrainingPlan
from pot_zk.data.datasets import BUILT_IN, Batch, load_dataset, select_part
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError
from pot_zk.kinds.dtypes import check_batch_dtype, weights_dtype
from pot_zk.kinds.losses import loss_for_targets, loss_value
from pot_zk.runs.bundle import RunBundle
from pot_zk.runs.observer import DeclaredBatch
from pot_zk.runs.session import RunSummary, start_session
from pot_zk.runs.summary import verify_command
from pot_zk.runs.user_loop import ObservedSession, declare, put_on_grid, recorded_config

BatchPair = tuple[torch.Tensor, torch.Tensor]


class ProvenTraining:
    """The handle a ``proven_training`` block yields: take steps, read progress."""

    def __init__(self, observed: ObservedSession, batch_fingerprints: dict[str, int], loss: str) -> None:
        self._observed = observed
        self._session = observed.session
        self._fingerprints = batch_fingerprints
        self._loss = loss

    @property
    def run_dir(self) -> Path:
        return self._session.bundle.root

    @property
    def steps(self) -> int:
        """Steps taken (and committed) so far."""
        return self._session.next_step

    @property
    def summary(self) -> RunSummary | None:
        """How the run ended (None while it is open)."""
        return self._session.summary

    def verify_command(self, *, declared: bool = False) -> str:
        """What to hand the auditor when the run has ended: the ``pot-zk verify`` command line
        with the commitment head, the recorded batch order to accept and the dataset root and the
        initial model (W_0's commitment) to pin, as placeholders ROOT and W0 (a user loop declares
        no seed: verify cannot recompute its data or initial model, docs/integration.md; the
        auditor pins the values it agreed on); ``declared``: with this run's own values."""
        if self.summary is None or self.summary.head is None:
            raise RuntimeError("the run has not ended: its commitment head is not fixed yet")
        bundle = self._session.bundle
        if not bundle.commitments():
            raise RuntimeError("the run took no step: there is nothing to verify")
        return verify_command(bundle.root, self.summary.head, bundle, declared=declared)

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        """One step on a declared batch: zero_grad, forward, the statement's loss (cross-entropy
        for integer class labels, else the mean squared error), backward, ``optimizer.step()``;
        committed and proven if the policy selects it. Returns the loss. Raises
        :class:`~pot_zk.exceptions.WitnessBuilderError` for a batch that was not declared, and
        the handler's error when a failed proof halts the run (fail_fast)."""
        batch_index = self._fingerprints.get(_fingerprint(inputs, targets))
        if batch_index is None:
            refused = WitnessBuilderError(
                "this batch is not one of the batches declared to proven_training",
                expected=f"one of the {len(set(self._fingerprints.values()))} declared batches (same shapes and values)",
                actual={"inputs": list(inputs.shape), "targets": list(targets.shape)},
                step=self._session.next_step,
            )
            self._observed.refused(refused)  # in the audit trail too (step.refused; review29)
            raise refused
        model, optimizer = self._session.model, self._session.optimizer
        self._observed.declare(DeclaredBatch(inputs.detach().clone(), targets.detach().clone(), batch_index))
        optimizer.zero_grad()
        loss = loss_value(self._loss, model(inputs), targets)
        loss.backward()
        optimizer.step()
        return float(loss.detach())


@contextmanager
def proven_training(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[BatchPair],
    *,
    run_dir: str | Path,
    overrides: Sequence[str] = (),
    dataset_name: str = "user",
) -> Iterator[ProvenTraining]:
    """Open a proven run over ``model`` and ``optimizer`` (``torch.optim.SGD``, with or without
    momentum; a model with LoRA adapters trains them) in the new directory ``run_dir``, holding
    its lock until the block ends (another process using the directory:
    :class:`~pot_zk.runs.lock.RunInUseError`, before anything is written); ``batches`` is the
    whole data set as ``(inputs, targets)`` pairs of one batch size. Leaving the block normally
    waits for the queued proofs and ends the run ``completed``; an exception ends it ``halted``
    (a pot-zk error, e.g. fail_fast), ``interrupted`` (KeyboardInterrupt: the provers it started
    are killed) or ``aborted`` (anything else) and propagates."""
    declared = [Batch(i, x.detach(), y.detach()) for i, (x, y) in enumerate(batches)]
    _check_batches(model, declared)
    run = declare(model, optimizer, declared[0].inputs, declared[0].targets, Path(run_dir).absolute(), overrides)
    plan = dataclasses.replace(run.plan, data=dataclasses.replace(run.plan.data, name=dataset_name))
    samples = _declared_samples(plan, declared)  # a refusal leaves no run directory behind
    run.lifecycle.claim(plan.run_dir, "proven_training")
    try:
        run.check_new()
        fingerprints: dict[str, int] = {}
        for batch in declared:
            fingerprints.setdefault(_fingerprint(batch.inputs, batch.targets), batch.index)
        if plan.backend.training_arithmetic(plan.spec) is not None:
            put_on_grid(model, plan)
        config = recorded_config(run.lifecycle.runtime.config, dataset_name)
        session = start_session(
            RunBundle(plan.run_dir), run.lifecycle, plan, model, optimizer, declared, config, samples=samples, constants=run.constants
        )
        with session:
            observed = ObservedSession(session, plan)
            try:
                yield ProvenTraining(observed, fingerprints, loss_for_targets(declared[0].targets))
            finally:
                observed.close()
    finally:
        run.lifecycle.release()


def _check_batches(model: torch.nn.Module, batches: list[Batch]) -> None:
    """Wrong dtypes (weights not of one floating dtype, batches of another) and batches of
    several sizes are refused here, before the run directory exists."""
    dtype = weights_dtype({"model": model.state_dict()})
    for batch in batches:
        check_batch_dtype(batch.inputs, batch.targets, dtype, batch=batch.index)
    sizes = {int(b.inputs.shape[0]) for b in batches} | {int(b.targets.shape[0]) for b in batches}
    if not batches or len(sizes) != 1:
        raise ConfigurationError(
            f"proven_training needs at least one batch and one batch size for all inputs and targets, got sizes {sorted(sizes)}",
            key="batches",
        )


def _declared_samples(plan: TrainingPlan, batches: list[Batch]) -> list[list[int]] | None:
    """A built-in data set declared: each batch's sample positions in it (None for the user's own
    data). ConfigurationError for a batch that is not made of its samples."""
    if plan.data.name not in BUILT_IN:
        return None
    mlp = plan.kind.mlp(plan.spec.architecture)
    inputs, targets = load_dataset(plan.data.name, mlp.dims[0], mlp.dims[-1], plan.data.num_samples, plan.data.seed, mlp.loss)
    inputs, targets = select_part(inputs, targets, plan.data.part)
    samples = sample_indices(batches, inputs, targets)
    strangers = [batch.index for batch, found in zip(batches, samples) if found is None]
    if strangers:
        raise ConfigurationError(
            f"dataset_name={plan.data.name!r} declares the built-in data set (part {plan.data.part!r}), but batches {strangers[:10]} "
            f"hold samples it does not have: declare your own data (dataset_name='user') or draw the batches from it",
            key="dataset_name",
        )
    return [list(found) for found in samples if found is not None]


def _fingerprint(inputs: torch.Tensor, targets: torch.Tensor) -> str:
    """Identity of a batch's values (shape and float64 bytes of X then Y)."""
    digest = hashlib.sha256()
    for tensor in (inputs, targets):
        values = torch.as_tensor(tensor).detach().to("cpu", torch.float64).contiguous()
        digest.update(repr(tuple(values.shape)).encode())
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()
