"""The trainer's scorer of its models on the held-out set (the record and the scoring function,
which ``pot-zk verify`` shares, are in :mod:`pot_zk.bundle.evaluation`)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from pot_zk.bundle.evaluation import Evaluation, classification, evaluate
from pot_zk.data.datasets import HeldOut

__all__ = ["Evaluation", "Evaluator", "classification", "evaluate"]


@dataclass(frozen=True)
class Evaluator:
    """Scores a run's models on its held-out set with the run's loss."""

    held_out: HeldOut
    loss: str
    classification: bool

    def __call__(self, model: nn.Module, after_step: int) -> Evaluation:
        return evaluate(model, self.held_out, self.loss, self.classification, after_step)
