"""The step kinds by name, and the functions that find a step's kind for it.

``kind`` strings: ``"sgd"`` (:mod:`pot_zk.kinds.sgd.kind`), ``"lora"``
(:mod:`pot_zk.kinds.lora.kind`), ``"momentum"`` (:mod:`pot_zk.kinds.momentum.kind`) and
``"adamw"`` (:mod:`pot_zk.kinds.adamw.kind`). A new kind is one subpackage with a
:class:`~pot_zk.kinds.base.StepKind` and one line here (docs/architecture.md). Which kind a
model trained with an optimizer makes, the kinds say (:func:`kind_for`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pot_zk.core.registry import Registry
from pot_zk.exceptions import ConfigurationError, InvalidModelStateError, WitnessBuilderError
from pot_zk.kinds.base import BatchStep, StepKind, read_step_file
from pot_zk.kinds.lora.detect import detect_training
from pot_zk.kinds.mlp import check_optimizer_covers
from pot_zk.kinds.optimizer import OptimizerSettings

STEP_KINDS: Registry[StepKind] = Registry(
    "step kind",
    "model.kind",
    {
        "sgd": "pot_zk.kinds.sgd.kind:SGD",
        "lora": "pot_zk.kinds.lora.kind:LORA",
        "momentum": "pot_zk.kinds.momentum.kind:MOMENTUM",
        "adamw": "pot_zk.kinds.adamw.kind:ADAMW",
    },
)


def kind_of(step: BatchStep) -> StepKind:
    return STEP_KINDS.get(step.kind)


def kind_for(model_kind: str, optimizer: OptimizerSettings) -> StepKind:
    """The step kind a ``model_kind`` model trained with ``optimizer`` makes: the one kind that
    trains that model kind and takes the optimizer (:meth:`StepKind.takes`). A ConfigurationError
    names the optimizer setting no kind takes (:func:`_offending`) and what the model kind takes."""
    kinds = [STEP_KINDS.get(name) for name in STEP_KINDS.names()]
    takers = [kind for kind in kinds if kind.model_kind == model_kind and kind.takes(optimizer)]
    if len(takers) == 1:
        return takers[0]
    offered = [f"{kind.optimizer_words} ({kind.name} steps)" for kind in kinds if kind.model_kind == model_kind]
    if not offered:
        valid = sorted({k.model_kind for k in kinds})
        raise ConfigurationError(f"unknown model.kind {model_kind!r}; valid: {', '.join(valid)}", key="model.kind", valid=valid)
    raise ConfigurationError(
        f"model.kind={model_kind} trained with {optimizer.describe()} makes no provable step; it takes {'; or '.join(offered)}",
        key=_offending(optimizer, [kind for kind in kinds if kind.model_kind == model_kind]),
        valid=offered,
    )


def _offending(optimizer: OptimizerSettings, kinds: list[StepKind]) -> str:
    """The changed setting whose default would make a kind take the optimizer (the last such,
    e.g. momentum rather than the name for AdamW with momentum), else the first changed one."""
    default = OptimizerSettings()
    changed = optimizer.changed()
    for key in reversed(changed):
        name = key.removeprefix("optimizer.")
        if any(kind.takes(replace(optimizer, **{name: getattr(default, name)})) for kind in kinds):
            return key
    return changed[0] if changed else "optimizer"


def capture_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> BatchStep:
    """Capture one step of the kind that trains the model :func:`~pot_zk.kinds.lora.detect.detect_training`
    finds with ``optimizer`` (:func:`kind_for`; e.g. SGD with momentum makes ``momentum`` steps,
    AdamW and Adam ``adamw`` steps). InvalidModelStateError before the step runs when no kind takes it."""
    settings = OptimizerSettings.of(optimizer)
    check_optimizer_covers(model, optimizer)
    try:
        kind = kind_for(detect_training(model).kind, settings)
    except ConfigurationError as exc:
        raise InvalidModelStateError(exc.message, expected=exc.context.get("valid"), actual=type(optimizer).__name__) from exc
    return kind.capture(model, optimizer, inputs, targets)


def step_from_models(model_before: nn.Module, model_after: nn.Module, inputs: Any, targets: Any, learning_rate: float) -> BatchStep:
    """The step that took ``model_before`` to ``model_after`` on ``(inputs, targets)``, of the
    kind :func:`~pot_zk.kinds.lora.detect.detect_training` finds in both (they must agree)."""
    kind, kind_after = detect_training(model_before).kind, detect_training(model_after).kind
    if kind != kind_after:
        raise InvalidModelStateError(f"model_before is a {kind} model but model_after a {kind_after} model", expected=kind, actual=kind_after)
    return STEP_KINDS.get(kind).from_models(model_before, model_after, torch.as_tensor(inputs), torch.as_tensor(targets), learning_rate)


def save_training_step(step: BatchStep, path: Path) -> None:
    """Write a step's witness file (what ``ProverRequest.witness_path`` points at)."""
    kind_of(step).save(step, Path(path))


def load_training_step(path: Path, kind: str | None = None) -> BatchStep:
    """Read a witness file of any kind (``kind``: the one expected; another is an error).
    Files without a kind in their metadata are ``sgd`` step files."""
    path = Path(path)
    meta, tensors = read_step_file(path)
    found = meta.get("kind", "sgd")
    if kind is not None and found != kind:
        raise WitnessBuilderError(f"{path} holds a {found} step, expected a {kind} step", expected=kind, actual=found)
    if found not in STEP_KINDS:
        raise WitnessBuilderError(f"{path} holds a step of unknown kind {found!r}", expected=STEP_KINDS.names(), actual=found)
    return STEP_KINDS.get(found).parse(path, meta, tensors)
