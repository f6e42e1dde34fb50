"""The step kinds by name, and the functions that find a step's kind for it.

``kind`` strings: ``"sgd"`` (:mod:`pot_zk.kinds.sgd.kind`), ``"lora"``
(:mod:`pot_zk.kinds.lora.kind`) and ``"momentum"`` (:mod:`pot_zk.kinds.momentum.kind`). A new kind is one subpackage with a
:class:`~pot_zk.kinds.base.StepKind` and one line here (docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pot_zk.core.registry import Registry
from pot_zk.exceptions import InvalidModelStateError, WitnessBuilderError
from pot_zk.kinds.base import BatchStep, StepKind, read_step_file
from pot_zk.kinds.lora.detect import detect_training
from pot_zk.kinds.mlp import uses_momentum

STEP_KINDS: Registry[StepKind] = Registry(
    "step kind",
    "model.kind",
    {
        "sgd": "pot_zk.kinds.sgd.kind:SGD",
        "lora": "pot_zk.kinds.lora.kind:LORA",
        "momentum": "pot_zk.kinds.momentum.kind:MOMENTUM",
    },
)


def kind_of(step: BatchStep) -> StepKind:
    return STEP_KINDS.get(step.kind)


def capture_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> BatchStep:
    """Capture one step of the kind :func:`~pot_zk.kinds.lora.detect.detect_training` finds;
    an SGD step whose optimizer has momentum is a ``momentum`` step."""
    kind = detect_training(model).kind
    if kind == "sgd" and uses_momentum(optimizer):
        kind = "momentum"
    return STEP_KINDS.get(kind).capture(model, optimizer, inputs, targets)


def step_from_models(model_before: nn.Module, model_after: nn.Module, inputs: Any, targets: Any, learning_rate: float) -> BatchStep:
    """The step that took ``model_before`` to ``model_after`` on ``(inputs, targets)``, of the
    kind :func:`~pot_zk.kinds.lora.detect.detect_training` finds in both (they must agree)."""
    kind, kind_after = detect_training(model_before).kind, detect_training(model_after).kind
    if kind != kind_after:
        raise InvalidModelStateError(f"model_before is a {kind} model but model_after a {kind_after} model", expected=kind, actual=kind_after)
    return STEP_KINDS.get(kind).from_models(model_before, model_after, torch.as_tensor(inputs), torch.as_tensor(targets), learning_rate)


def save_training_step(step: BatchStep, path: Path) -> None:
    """Write a step's witness file (what ``ProofJob.witness_path`` points at)."""
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
