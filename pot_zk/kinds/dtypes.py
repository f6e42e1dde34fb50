"""The dtypes a training step may have: one floating-point dtype for all its weights and its
batch, except class labels (a 1-D integer tensor of targets, trained with cross-entropy).

A step's witness holds float64 copies of its tensors. A copy would silently turn int64 weights
into integers-as-floats and bool weights into 0.0/1.0, and would hide a float32 "before" next to
a float64 "after" (no torch step produces that). So the dtypes are checked on the original
tensors, before anything is copied, trained or proven.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from pot_zk.exceptions import InvalidModelStateError, WitnessBuilderError
from pot_zk.kinds.losses import loss_for_targets

FLOATING_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def weights_dtype(groups: Mapping[str, Mapping[str, torch.Tensor]]) -> torch.dtype:
    """The one floating dtype of every tensor of ``groups`` (e.g. ``{"weights_before": ...,
    "weights_after": ...}``).

    Raises InvalidModelStateError for a tensor that is not floating point (naming it), for
    tensors of several floating dtypes (listing the dtypes of each group) and for no tensor."""
    found: dict[str, set[str]] = {}
    dtype: torch.dtype | None = None
    for group, state in groups.items():
        for key, tensor in state.items():
            if tensor.dtype not in FLOATING_DTYPES:
                raise InvalidModelStateError(
                    f"{group}[{key}] has dtype {_dtype_name(tensor.dtype)}: weights must be floating point",
                    expected=[_dtype_name(d) for d in FLOATING_DTYPES],
                    actual=_dtype_name(tensor.dtype),
                    key=key,
                )
            found.setdefault(group, set()).add(_dtype_name(tensor.dtype))
            dtype = tensor.dtype
    if dtype is None:
        raise InvalidModelStateError("there are no weights", expected="parameters", actual=sorted(groups))
    if len(set().union(*found.values())) > 1:
        actual = {group: sorted(names) for group, names in found.items()}
        raise InvalidModelStateError(
            f"the weights mix dtypes {actual}: one training step keeps one dtype",
            expected="one floating dtype for all weights",
            actual=actual,
        )
    return dtype


def check_batch_dtype(inputs: torch.Tensor, targets: torch.Tensor, weights: torch.dtype, **context: Any) -> None:
    """The batch has the weights' dtype, as torch's forward pass needs (targets that are class
    labels: any integer dtype); WitnessBuilderError (with ``context``, e.g. the batch's index) if not."""
    for name, tensor in (("inputs", inputs), ("targets", targets)):
        if name == "targets" and loss_for_targets(tensor) == "cross_entropy":
            continue
        if tensor.dtype != weights:
            raise WitnessBuilderError(
                f"batch {name} have dtype {_dtype_name(tensor.dtype)}, the weights {_dtype_name(weights)}",
                expected=_dtype_name(weights),
                actual=_dtype_name(tensor.dtype),
                tensor=name,
                **context,
            )
