"""A step whose weights are all integers -- not only a mix of integer and floating weights -- is
refused by its dtype: its float64 witness copy would turn int64 weights into integers-as-floats
and train them as if nothing were wrong (pot_zk/kinds/dtypes.py). Built from states and read
from a step file; the batch is int64 too, so nothing but the weights' dtype can refuse it."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pot_zk.exceptions import InvalidModelStateError
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import capture_step, load_training_step, save_training_step
from pot_zk.kinds.sgd.step import step_from_states

ARCH = MlpArchitecture((4, 3, 2))


def _integer_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {key: (value * 8).round().long() for key, value in ARCH.build().state_dict().items()}


def test_a_step_of_int64_weights_and_an_int64_batch_is_refused_by_the_weights_dtype():
    state = _integer_state()
    inputs, targets = torch.randint(-4, 4, (2, 4)), torch.randint(-4, 4, (2, 2))
    with pytest.raises(InvalidModelStateError, match="weights must be floating point") as raised:
        step_from_states(state, state, inputs, targets, 0.1, ARCH)
    assert raised.value.actual == "int64" and raised.value.context["key"] in state


def test_a_step_file_whose_every_tensor_is_int64_is_refused(tmp_path):
    torch.manual_seed(0)
    model = ARCH.build()
    step = capture_step(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.randn(2, 4), torch.randn(2, 2))
    path = tmp_path / "step.safetensors"
    save_training_step(step, path)
    with safe_open(str(path), framework="pt") as opened:
        metadata = opened.metadata()
    save_file({key: (value * 8).round().long() for key, value in load_file(str(path)).items()}, str(path), metadata=metadata)
    with pytest.raises(InvalidModelStateError, match="has dtype int64") as raised:
        load_training_step(path)
    assert raised.value.actual == "int64"
