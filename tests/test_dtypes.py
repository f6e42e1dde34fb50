"""Dtypes: a step's weights share one floating dtype and its batch has it too, checked on the
original tensors before anything is copied, trained or proven (SGD, LoRA, step files, hooks)."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pot_zk.exceptions import InvalidModelStateError, WitnessBuilderError
from pot_zk.hooks import proven_training
from pot_zk.kinds.lora.step import attach_lora
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import capture_step, load_training_step, save_training_step
from pot_zk.kinds.sgd.step import step_from_states

ARCH = MlpArchitecture((4, 3, 2))


def _model(dtype: torch.dtype = torch.float32) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return ARCH.build().to(dtype)


def _lora_model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return attach_lora(ARCH.build(), (0,), rank=2, alpha=4.0)


def _sgd(model: torch.nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_a_step_of_one_floating_dtype_is_accepted_with_its_values(dtype):
    state = _model(dtype).state_dict()
    x, y = torch.randn(2, 4).to(dtype), torch.randn(2, 2).to(dtype)
    step = step_from_states(state, state, x, y, 0.1, ARCH)
    assert all(torch.equal(step.weights_before[key], state[key].double()) for key in state)
    assert torch.equal(step.inputs, x.double())


@pytest.mark.parametrize(("batch", "tensor", "actual"), [
    ("inputs", "inputs", "float64"),
    ("targets", "targets", "int64"),
])
def test_a_batch_of_another_dtype_than_the_weights_is_a_witness_error(batch, tensor, actual):
    state = _model().state_dict()
    x, y = torch.randn(2, 4), torch.randn(2, 2)
    if batch == "inputs":
        x = x.double()
    else:
        y = y.round().long()
    with pytest.raises(WitnessBuilderError, match=f"batch {tensor} have dtype {actual}, the weights float32") as raised:
        step_from_states(state, state, x, y, 0.1, ARCH)
    assert (raised.value.expected, raised.value.actual, raised.value.context["tensor"]) == ("float32", actual, tensor)


def test_capturing_an_sgd_step_on_a_batch_of_another_dtype_refuses_before_the_step_runs():
    model = _model()
    before = _snapshot(model)
    with pytest.raises(WitnessBuilderError, match="batch inputs have dtype float64, the weights float32"):
        capture_step(model, _sgd(model), torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 2))
    assert all(torch.equal(model.state_dict()[key], before[key]) for key in before), "the model was trained"


def test_capturing_a_lora_step_with_adapters_of_another_dtype_than_the_base_refuses_before_the_step_runs():
    model = _lora_model()
    with torch.no_grad():
        model[0].lora_A.data = model[0].lora_A.data.double()
        model[0].lora_B.data = model[0].lora_B.data.double()
    before = _snapshot(model)
    with pytest.raises(InvalidModelStateError, match="the weights mix dtypes") as raised:
        capture_step(model, _sgd(model), torch.randn(2, 4), torch.randn(2, 2))
    assert raised.value.actual == {"base": ["float32"], "adapters": ["float64"]}
    assert all(torch.equal(model.state_dict()[key], before[key]) for key in before), "the adapters were trained"


def test_capturing_a_lora_step_on_a_batch_of_another_dtype_is_a_witness_error():
    model = _lora_model()
    with pytest.raises(WitnessBuilderError, match="batch targets have dtype float16, the weights float32"):
        capture_step(model, _sgd(model), torch.randn(2, 4), torch.randn(2, 2).half())


def test_a_lora_step_file_with_integer_adapters_is_refused(tmp_path):
    model = _lora_model()
    step = capture_step(model, _sgd(model), torch.randn(2, 4), torch.randn(2, 2))
    path = tmp_path / "step.safetensors"
    save_training_step(step, path)
    assert load_training_step(path).flat_after().equal(step.flat_after())
    with safe_open(str(path), framework="pt") as opened:
        metadata = opened.metadata()
    tensors = load_file(str(path))
    tensors["a_after"] = tensors["a_after"].round().long()
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(InvalidModelStateError, match=r"step file\[a_after\] has dtype int64"):
        load_training_step(path)


def test_proven_training_refuses_batches_of_another_dtype_before_the_run_exists(tmp_path):
    model = _model(torch.float64)
    batches = [(torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)), (torch.randn(2, 4), torch.randn(2, 2))]
    run = tmp_path / "run"
    with pytest.raises(WitnessBuilderError, match="batch inputs have dtype float32, the weights float64") as raised:
        with proven_training(model, _sgd(model), batches, run_dir=run, overrides=["mode=disabled"]):
            pytest.fail("the run was opened")
    assert raised.value.context["batch"] == 1
    assert not run.exists()
