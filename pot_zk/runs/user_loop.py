"""A run over a training loop of your own: what ``pot_zk.track`` and ``proven_training`` share.

* :func:`declare` finds the run's statement from the model, the optimizer and a first batch:
  the step kind's capture takes the step on a copy of both (:func:`~pot_zk.runs.observer.shadow`),
  which gives the kind (SGD, momentum, LoRA -- pot-zk's own adapters or peft's), the
  architecture, loss (class labels: cross-entropy, else the mean squared error), batch size and
  learning rate (a model whose copy does not take the kind's float64 reference step is refused:
  :func:`~pot_zk.runs.observer.reference_difference`); pot-zk's configuration with ``overrides`` gives the rest, and the kind writes
  the model settings into it (:meth:`~pot_zk.kinds.base.StepKind.config_values`), so the
  recorded config.yaml builds the same statement again (``pot-zk respond``).
* :class:`ObservedSession` runs a :class:`~pot_zk.runs.session.TrainingSession` on the steps a
  :class:`~pot_zk.runs.observer.StepObserver` hands it: under an exact statement (zk-groth16)
  the declared step is replaced by the statement's integer step, as ``pot-zk train`` does;
  under a float one the declared step must be within the statement's tolerance of its own
  update on the committed grid values, and the model is set to the declared step's state (which
  the observer found equal to the loop's within float rounding).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from omegaconf import OmegaConf
from torch import nn

from pot_zk.config.build import compose_config, configured_schedule
from pot_zk.config.plan import TrainingPlan
from pot_zk.data.datasets import BUILT_IN
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError, PotZkError, StepMismatchError
from pot_zk.kinds.base import BatchStep
from pot_zk.kinds.registry import capture_step, kind_of
from pot_zk.kinds.schedule import declared_schedule, describe
from pot_zk.runs import bundle as files
from pot_zk.runs.lifecycle import RunLifecycle
from pot_zk.runs.observer import Declaration, DeclaredBatch, StepObserver, optimizer_settings, reference_difference, shadow
from pot_zk.runs.proven_run import RunProgress
from pot_zk.runs.session import TrainingSession


@dataclass(frozen=True)
class DeclaredRun:
    """A user loop's run before it starts: its lifecycle and plan, the first step as the kind
    captured it on a copy (``probe``), and the commitments of the kind's constant inputs (a LoRA
    model's frozen base) that the manifest declares."""

    lifecycle: RunLifecycle
    plan: TrainingPlan
    probe: BatchStep
    constants: dict[str, str]

    def check_new(self) -> None:
        """ConfigurationError when ``run_dir`` holds a run already, or files of its own (call it
        holding the run's lock)."""
        files.check_new_run_dir(self.plan.run_dir, "give a new run_dir (track(..., resume=True) continues a tracked run)")


def declare(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    run_dir: Path,
    overrides: Sequence[str],
    scheduler: Any = None,
) -> DeclaredRun:
    """The run of ``model`` trained by ``optimizer`` on batches like ``(inputs, targets)``
    (module docstring); a ``scheduler`` (torch's, fresh) declares the learning-rate schedule,
    which must be the configured ``optimizer.schedule`` if there is one. Raises before anything
    is written: an unsupported model, optimizer, loss, scheduler or configuration
    (:meth:`DeclaredRun.check_new` then refuses a ``run_dir`` that holds a run)."""
    held = sorted({key for state in optimizer.state.values() for key, value in state.items() if value is not None})
    if held:  # review27: a warm start was refused at step 0 as "velocity before the step: ... not on the grid"
        raise ConfigurationError(
            f"the optimizer holds state from before the run ({', '.join(held)}): a run starts from none (its first step's "
            "declared state is zero); hand the loop a fresh optimizer", key="optimizer",
        )
    try:
        probe = capture_step(*shadow(model, optimizer), inputs, targets)
    except RuntimeError as error:  # torch's own: a batch of another width than the model's input, say
        raise InvalidModelStateError(
            f"the first batch (inputs {tuple(inputs.shape)}, targets {tuple(targets.shape)}) does not fit the model: {' '.join(str(error).split())}",
            expected="a batch the model takes", actual=[tuple(inputs.shape), tuple(targets.shape)],
        ) from error
    kind = kind_of(probe)
    unlike = reference_difference(probe, model)
    if unlike is not None:
        raise InvalidModelStateError(f"the first step, taken on a copy, is not the declared {kind.name} step: {unlike}", expected="the declared MLP", actual="another function")
    cfg = compose_config(overrides, run_dir=run_dir)
    declared = {**kind.config_values(probe.architecture), "train.batch_size": probe.batch_size, "train.learning_rate": probe.learning_rate}
    if scheduler is not None:
        schedule = declared_schedule(scheduler)
        configured = configured_schedule(cfg.optimizer.schedule, 1.0)
        if configured is not None and dict(configured.declaration) != schedule:
            raise ConfigurationError(
                f"the scheduler is {describe(schedule)}, the configuration declares {describe(configured.declaration)} (optimizer.schedule)",
                key="scheduler",
            )
        declared["optimizer.schedule"] = schedule
    if scheduler is not None or configured_schedule(cfg.optimizer.schedule, 1.0) is not None:
        declared["train.learning_rate"] = float(optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"]))
    _check_overrides_agree(overrides, cfg, declared)
    for key, value in declared.items():
        OmegaConf.update(cfg, key, value, merge=isinstance(value, dict))  # a schedule: into its typed config node
    lifecycle = RunLifecycle.from_config(cfg)
    plan = dataclasses.replace(lifecycle.runtime.plan, batch_order="recorded")
    encoded = {tensor.name: tensor for tensor in plan.spec.encode(probe)}
    constants = {name: plan.commitments.commit(encoded[name].values, encoded[name].label) for name in kind.constant_inputs}
    return DeclaredRun(lifecycle, plan, probe, constants)


def _check_overrides_agree(overrides: Sequence[str], cfg: Any, declared: dict[str, Any]) -> None:
    """ConfigurationError when an override names a setting the loop's model, optimizer or batch
    declares (``optimizer.weight_decay=0.01``) with another value: the loop's own would be
    declared and the override silently dropped (review27). A schedule is checked by ``declare``."""
    for item in overrides:
        key, equals, _ = item.lstrip("+").partition("=")
        if not equals or key not in declared or key == "optimizer.schedule":
            continue
        given = OmegaConf.select(cfg, key)
        given = OmegaConf.to_container(given) if OmegaConf.is_config(given) else given
        value = declared[key]
        if not _same_setting(given, value):
            raise ConfigurationError(
                f"the override {item} does not match the loop, whose model and optimizer give {key}={value}: the loop's own settings "
                "are declared; drop the override or change the loop", key=key,
            )


def _same_setting(given: Any, value: Any) -> bool:
    """A configured setting equals the loop's (numbers by value: 1 == 1.0)."""
    if isinstance(given, list) and isinstance(value, list):
        return len(given) == len(value) and all(_same_setting(a, b) for a, b in zip(given, value))
    numbers = (int, float)
    if isinstance(given, numbers) and isinstance(value, numbers) and not isinstance(given, bool) and not isinstance(value, bool):
        return float(given) == float(value)
    return bool(given == value)


def put_on_grid(model: nn.Module, plan: TrainingPlan) -> None:
    """Round every parameter, trained or frozen, onto the commitment grid (an exact statement's:
    its integers are the model). Raises WitnessBuilderError naming a parameter out of range."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(plan.commitments.snap(parameter.detach(), name).to(parameter.dtype))


def recorded_config(config: dict[str, Any], data_name: str | None) -> dict[str, Any]:
    """The resolved config as it applies to a user loop, valid for the schema (``pot-zk respond``
    builds it again): no schedule of pot-zk's (the manifest declares ``batch_order: recorded``);
    ``data`` names the declared built-in set, or keeps pot-zk's configured one when the loop
    trains on its own data (the manifest's ``dataset`` is the declaration verify reads)."""
    container = dict(config)
    if data_name in BUILT_IN:
        container["data"] = {**container["data"], "name": data_name}
    container["train"] = {key: container["train"][key] for key in ("batch_size", "learning_rate")}
    return container


class ObservedSession:
    """A session fed by an observer on ``optimizer`` (module docstring); ``before_record`` is told
    the step count a step is about to make, ``on_record`` of each recorded step. :meth:`close`
    removes the observer's hooks."""

    def __init__(
        self,
        session: TrainingSession,
        plan: TrainingPlan,
        on_record: Callable[[BatchStep], None] | None = None,
        before_record: Callable[[int], None] | None = None,
    ) -> None:
        self.session = session
        self.plan = plan
        self.on_record = on_record
        self.before_record = before_record
        self.observer = StepObserver(session.model, session.optimizer, self._on_step, lambda: self.session.next_step, self._on_refused)
        what = f"{plan.spec.kind} step ({plan.kind.mlp(plan.spec.architecture).loss} loss)"
        self.observer.declaration = Declaration(what, plan.learning_rate, optimizer_settings(session.optimizer))

    @property
    def progress(self) -> RunProgress:
        return self.session.progress

    def declare(self, batch: DeclaredBatch) -> None:
        self.observer.declare(batch)

    def _on_refused(self, refused: PotZkError) -> None:
        """A refused step in the audit trail (``step.refused``), also when the loop catches it;
        once per error (a refusal passes through the observer and the loop's ``run.batch``)."""
        if getattr(refused, "_in_audit_trail", False) or self.session.lifecycle.ended:  # review30: after run.end the trail is closed
            return
        refused._in_audit_trail = True  # type: ignore[attr-defined]
        self.session.audit.event("step.refused", step=refused.context.get("step", self.session.next_step), error=refused.to_record())

    refused = _on_refused
    """For the loop's own ``run.batch``: a refusal raised before the observer sees the batch."""

    def _on_step(self, declared: BatchStep, batch: DeclaredBatch) -> None:
        session = self.session
        if session.arithmetic is None:
            self._check_tolerance(declared)
            kind_of(declared).load_after(session.model, session.optimizer, declared)
        if self.before_record is not None:
            self.before_record(session.next_step + 1)
        step = session.record(declared, epoch=None, batch_index=batch.batch_index, samples=batch.samples)
        if self.on_record is not None:
            self.on_record(step)

    def _check_tolerance(self, step: BatchStep) -> None:
        """A float statement proves the update within its tolerance on the committed grid values:
        refuse a step that is not (it could not be proven)."""
        spec, scheme = self.plan.spec, self.plan.commitments
        named = {tensor.name: scheme.snap(tensor.values, tensor.label) for tensor in spec.encode(step)}
        units = float(spec.residual(named).abs().max()) * 2**spec.scale
        if units > spec.tolerance_ulps:
            number = self.session.next_step
            raise StepMismatchError(
                f"step {number}: the observed update is not the declared {spec.kind} step within the statement's tolerance: "
                f"{units:.3g} units of 2^-{spec.scale} from it on the committed values, {spec.tolerance_ulps} allowed (the update "
                "recomputed on values rounded to the grid; an honest step with large inputs or weights can exceed it: "
                "prover=groth16 proves the step exactly, circuit.tolerance_ulps widens the float statement)",
                step=number, differs="tolerance", expected=spec.tolerance_ulps, actual=units,
            )

    def close(self) -> None:
        self.observer.close()
