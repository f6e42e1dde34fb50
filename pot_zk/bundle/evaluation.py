"""Scoring a model on the held-out samples: loss, and accuracy for a classification set; the
records of ``evaluations.jsonl``.

One function, :func:`evaluate`, used by training (the initial model, each epoch's end, the
final model; ``evaluations.jsonl`` and the audit trail's ``evaluation`` records) and by
``pot-zk verify`` (which re-scores the initial and final model files of a built-in data set).
It runs in float64 on a copy of the model, so the numbers do not depend on the training dtype
and a verifier's recomputation gives the same counts.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from pot_zk.data.datasets import CLASSES, HeldOut
from pot_zk.kinds.losses import loss_value


@dataclass(frozen=True)
class Evaluation:
    after_step: int
    """Steps trained before the model was scored: 0 is the initial model."""
    samples: int
    loss: float
    """The training loss (``mse`` or ``cross_entropy``, mean over the held-out samples)."""
    correct: int | None
    """Held-out samples classified correctly (argmax of the outputs); None for regression."""

    @property
    def accuracy(self) -> float | None:
        return None if self.correct is None else self.correct / self.samples

    def to_record(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy": self.accuracy}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Evaluation":
        correct = record.get("correct")
        return cls(int(record["after_step"]), int(record["samples"]), float(record["loss"]), None if correct is None else int(correct))


def classification(dataset: str, loss: str) -> bool:
    """Whether a run's models are scored by accuracy: a classification data set, or class labels."""
    return dataset in CLASSES or loss == "cross_entropy"


def class_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class labels of one-hot rows (N x C), or the labels themselves (N)."""
    return targets.argmax(dim=1) if targets.dim() == 2 else targets.long()


def evaluate(model: nn.Module, held_out: HeldOut, loss: str, classification: bool, after_step: int) -> Evaluation:
    """Score ``model`` (unchanged: a float64 copy runs) on ``held_out``."""
    scored = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        outputs = scored(held_out.inputs.double())
        value = loss_value(loss, outputs, held_out.targets if loss == "cross_entropy" else held_out.targets.double())
        correct = int((outputs.argmax(dim=1) == class_labels(held_out.targets)).sum()) if classification else None
    return Evaluation(after_step, len(held_out.inputs), float(value), correct)
