"""Integration hooks: prove the SGD steps of your own training loop.

    batches = [(x0, y0), (x1, y1), ...]          # the data set, declared before training
    with proven_training(model, optimizer, batches, run_dir="runs/mine") as run:
        for epoch in range(3):
            for x, y in batches:
                loss = run.step(x, y)            # forward, loss, backward, optimizer.step()

The result is the run bundle ``pot-zk train`` writes (same session code path:
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
* the architecture, batch size and learning rate come from ``model``, the batches and
  ``optimizer``; the rest (policy, mode, handler, executor, circuit, SRS, cache_dir) from
  pot-zk's config with ``overrides``, as on the ``pot-zk train`` command line;
* ``pot-zk resume`` does not continue such a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from pot_zk.bundle.dataset import sample_indices
from pot_zk.config.build import compose_config
from pot_zk.config.plan import TrainingPlan
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError
from pot_zk.kinds.losses import loss_for_targets
from pot_zk.kinds.dtypes import check_batch_dtype, weights_dtype
from pot_zk.kinds.mlp import architecture_of, check_sgd_optimizer
from pot_zk.runs import bundle as files
from pot_zk.runs.bundle import RunBundle
from pot_zk.data.datasets import BUILT_IN, Batch, load_dataset, select_part
from pot_zk.runs.lifecycle import RunLifecycle
from pot_zk.runs.session import RunSummary, TrainingSession, start_session

BatchPair = tuple[torch.Tensor, torch.Tensor]


class ProvenTraining:
    """The handle a ``proven_training`` block yields: take steps, read progress."""

    def __init__(self, session: TrainingSession, batch_fingerprints: dict[str, int]) -> None:
        self._session = session
        self._fingerprints = batch_fingerprints

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

    def verify_command(self) -> str:
        """What to hand the auditor when the run has ended: the ``pot-zk verify`` command line
        with the commitment head, the dataset root and the initial model (W_0's commitment) to
        pin, and the recorded batch order to accept (a user loop declares no seed: verify cannot
        recompute its data or initial model, docs/integration.md)."""
        if self.summary is None or self.summary.head is None:
            raise RuntimeError("the run has not ended: its commitment head is not fixed yet")
        bundle = self._session.bundle
        records = bundle.commitments()
        if not records:
            raise RuntimeError("the run took no step: there is nothing to verify")
        initial = min(records, key=lambda r: r["step"])["w_before"]
        return (f"pot-zk verify {bundle.root} --expect-head {self.summary.head} --expect-root {bundle.manifest()['dataset']['root']} "
                f"--expect-initial {initial} --accept-setting batch_order=recorded")

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        """One SGD step on a declared batch: zero_grad, forward, loss (cross-entropy for integer
        class labels, else the mean squared error), backward,
        ``optimizer.step()``; commits to it and proves it if the policy selects it. Returns the
        loss. Raises :class:`~pot_zk.exceptions.WitnessBuilderError` for a batch that was not
        declared, and the handler's error when a failed proof halts the run (fail_fast)."""
        batch_index = self._fingerprints.get(_fingerprint(inputs, targets))
        if batch_index is None:
            raise WitnessBuilderError(
                "this batch is not one of the batches declared to proven_training",
                expected=f"one of the {len(set(self._fingerprints.values()))} declared batches (same shapes and values)",
                actual={"inputs": list(inputs.shape), "targets": list(targets.shape)},
                step=self._session.next_step,
            )
        step = self._session.step(inputs, targets, epoch=None, batch_index=batch_index)
        assert step.loss is not None
        return step.loss


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
    """Open a proven run over ``model`` and ``optimizer`` (plain ``torch.optim.SGD``) in the new
    directory ``run_dir``, holding its lock until the block ends (another process using the
    directory: :class:`~pot_zk.runs.lock.RunInUseError`, before anything is written);
    ``batches`` is the whole data set as ``(inputs, targets)`` pairs of one batch size. Leaving
    the block normally waits for the queued proofs and ends the run ``completed``; an exception
    ends it ``halted`` (a pot-zk error, e.g. fail_fast), ``interrupted`` (KeyboardInterrupt:
    the provers it started are killed) or ``aborted`` (anything else) and propagates."""
    declared = [Batch(i, x.detach(), y.detach()) for i, (x, y) in enumerate(batches)]
    lifecycle = RunLifecycle.from_config(_config(model, optimizer, declared, Path(run_dir).absolute(), overrides))
    configured = lifecycle.runtime.plan
    plan = dataclasses.replace(configured, data=dataclasses.replace(configured.data, name=dataset_name), batch_order="recorded")
    lifecycle.claim(plan.run_dir, "proven_training")
    try:
        if (plan.run_dir / files.MANIFEST).exists():
            raise ConfigurationError(f"{plan.run_dir} already holds a run; give proven_training a new run_dir", key="run_dir")
        samples = _declared_samples(plan, declared)
        fingerprints: dict[str, int] = {}
        for batch in declared:
            fingerprints.setdefault(_fingerprint(batch.inputs, batch.targets), batch.index)
        config = _recorded_config(lifecycle.runtime.config, plan)
        session = start_session(RunBundle(plan.run_dir), lifecycle, plan, model, optimizer, declared, config, samples=samples)
        with session:
            yield ProvenTraining(session, fingerprints)
    finally:
        lifecycle.release()


def _config(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list[Batch], run_dir: Path, overrides: Sequence[str]):
    """pot-zk's config with ``overrides``; model, batch size and learning rate taken from the
    objects being trained, so the statement matches what runs. Wrong dtypes (weights not of one
    floating dtype, batches of another) are refused here, before the run directory exists."""
    architecture = architecture_of(model)
    learning_rate = check_sgd_optimizer(optimizer)
    dtype = weights_dtype({"model": model.state_dict()})
    for batch in batches:
        check_batch_dtype(batch.inputs, batch.targets, dtype, batch=batch.index)
    sizes = {int(b.inputs.shape[0]) for b in batches} | {int(b.targets.shape[0]) for b in batches}
    if not batches or len(sizes) != 1:
        raise ConfigurationError(
            f"proven_training needs at least one batch and one batch size for all inputs and targets, got sizes {sorted(sizes)}",
            key="batches",
        )
    cfg = compose_config(overrides, run_dir=run_dir)
    cfg.model.dims = list(architecture.dims)
    cfg.model.loss = loss_for_targets(batches[0].targets)
    cfg.train.batch_size = sizes.pop()
    cfg.train.learning_rate = learning_rate
    return cfg


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


def _recorded_config(config: dict[str, Any], plan: TrainingPlan) -> dict[str, Any]:
    """The resolved config as it applies to a user loop, valid for the schema (``pot-zk respond``
    builds it again): no schedule of pot-zk's (the manifest declares ``batch_order: recorded``);
    ``data`` names the declared built-in set, or keeps pot-zk's configured one when the loop
    trains on its own data (the manifest's ``dataset`` is the declaration verify reads)."""
    container = dict(config)
    if plan.data.name in BUILT_IN:
        container["data"] = {**container["data"], "name": plan.data.name}
    container["train"] = {key: container["train"][key] for key in ("batch_size", "learning_rate")}
    return container


def _fingerprint(inputs: torch.Tensor, targets: torch.Tensor) -> str:
    """Identity of a batch's values (shape and float64 bytes of X then Y)."""
    digest = hashlib.sha256()
    for tensor in (inputs, targets):
        values = torch.as_tensor(tensor).detach().to("cpu", torch.float64).contiguous()
        digest.update(repr(tuple(values.shape)).encode())
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()
