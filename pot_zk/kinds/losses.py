"""The losses a proven step may train with, written once for training, check graphs,
references and certificates.

``mse``: mean squared error against float targets (N x d_out), ``torch.nn.functional.mse_loss``.
``cross_entropy``: softmax cross-entropy against integer class labels (N),
``torch.nn.functional.cross_entropy`` (mean over the batch).

For each: the loss value torch trains on (:func:`loss_value`), the gradient at the outputs up
to a constant factor (:func:`output_delta`, the delta the backward pass starts from; these
operations are exported into the check graphs, so they are what the circuits compute) and that
factor (:func:`gradient_scale`). Which loss a batch trains with follows from its targets, as
in torch: integer class labels (one value per sample) train with cross-entropy, float target
rows with the mean squared error (:func:`loss_for_targets`).
"""

from __future__ import annotations

import torch

from pot_zk.exceptions import ConfigurationError, WitnessBuilderError

LOSSES = ("mse", "cross_entropy")
EXP_RANGE = 12
"""cross_entropy: each logit minus its row's largest is clamped to [-EXP_RANGE, 0] before the
softmax, so the circuit's exp table (12 * 4096 entries at scale 12) covers every input;
exp(-12) ~ 6e-6, so the clamp moves a probability by less than 10**-4."""


def check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ConfigurationError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}", key="model.loss")
    return loss


def loss_for_targets(targets: torch.Tensor) -> str:
    """``cross_entropy`` for integer class labels (a 1-D integer tensor), else ``mse``."""
    integer = not (targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool)
    return "cross_entropy" if integer and targets.dim() == 1 else "mse"


def targets_per_sample(loss: str, outputs: int) -> int:
    """How many values one sample's target has: ``outputs`` for mse, 1 (the label) for cross_entropy."""
    return 1 if check_loss(loss) == "cross_entropy" else outputs


def target_shape(loss: str, batch_size: int, outputs: int) -> tuple[int, ...]:
    return (batch_size,) if check_loss(loss) == "cross_entropy" else (batch_size, outputs)


def one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Row n is 1 at column ``labels[n]`` and 0 elsewhere, computed as
    ``relu(1 - |label - k|)``: exact for integer labels, and made of operations ezkl proves
    exactly (its Equal/Cast give a 0/1 at the wrong fixed-point scale)."""
    classes_row = torch.arange(classes, dtype=labels.dtype).reshape(1, classes)
    return torch.relu(1 - torch.abs(labels.reshape(-1, 1) - classes_row))


def clamped_softmax(outputs: torch.Tensor) -> torch.Tensor:
    """softmax over each row after clamping ``logit - max`` to [-EXP_RANGE, 0] (with ReLUs)."""
    shifted = outputs - outputs.max(dim=1, keepdim=True).values
    return torch.softmax(torch.relu(shifted + EXP_RANGE) - EXP_RANGE, dim=1)


def output_delta(loss: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The gradient of the summed loss at the outputs, divided by :func:`gradient_scale`:
    ``outputs - targets`` (mse), ``clamped_softmax(outputs) - one_hot(labels)`` (cross_entropy)."""
    if check_loss(loss) == "cross_entropy":
        return clamped_softmax(outputs) - one_hot(targets, outputs.shape[1])
    return outputs - targets


def gradient_scale(loss: str, batch_size: int, outputs: int) -> float:
    """The factor that turns the backward pass from :func:`output_delta` into the gradient of
    the mean loss: ``2 / (N * d_out)`` (mse), ``1 / N`` (cross_entropy)."""
    if check_loss(loss) == "cross_entropy":
        return 1.0 / batch_size
    return 2.0 / (batch_size * outputs)


def loss_value(loss: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The loss torch trains on (mean over the batch)."""
    if check_loss(loss) == "cross_entropy":
        return torch.nn.functional.cross_entropy(outputs, targets.long())
    return torch.nn.functional.mse_loss(outputs, targets)


def check_labels(targets: torch.Tensor, classes: int) -> None:
    """Class labels must be integers in ``0..classes-1`` (WitnessBuilderError otherwise)."""
    if targets.numel() and (not torch.equal(targets, targets.round()) or float(targets.min()) < 0 or float(targets.max()) >= classes):
        raise WitnessBuilderError(
            f"class labels must be integers in 0..{classes - 1}",
            expected=f"integers in 0..{classes - 1}",
            actual=sorted({float(v) for v in targets.reshape(-1).tolist()})[:10],
        )
