"""Capturing and validating SGD steps: bad input is a typed error naming what was wrong."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pot_zk.exceptions import InvalidModelStateError, WitnessBuilderError
from pot_zk.kinds.mlp import MlpArchitecture, architecture_of
from pot_zk.kinds.registry import STEP_KINDS, load_training_step, save_training_step
from pot_zk.kinds.sgd.step import TrainingStep, capture_sgd_step, step_from_states

ARCH = MlpArchitecture((4, 3, 2))


def _states():
    torch.manual_seed(0)
    model = ARCH.build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(2, 4), torch.randn(2, 2)
    step = capture_sgd_step(model, optimizer, x, y)
    return before, model.state_dict(), x, y, step


def test_capture_records_the_real_update():
    before, after, x, y, step = _states()
    assert step.learning_rate == 0.1 and step.batch_size == 2 and step.loss > 0
    for key in before:
        assert torch.allclose(step.weights_before[key], before[key].double())
        assert torch.allclose(step.weights_after[key], after[key].double())
    assert not torch.equal(step.flat_before(), step.flat_after())


def test_save_and_load_round_trip(tmp_path):
    *_, step = _states()
    save_training_step(step, tmp_path / "s.safetensors")
    loaded = load_training_step(tmp_path / "s.safetensors")
    assert torch.equal(loaded.flat_after(), step.flat_after()) and loaded.learning_rate == step.learning_rate


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_weights_are_rejected_naming_the_key(bad):
    before, after, x, y, _ = _states()
    after = dict(after)
    after["2.weight"] = after["2.weight"].clone()
    after["2.weight"][0, 0] = bad
    with pytest.raises(InvalidModelStateError) as raised:
        step_from_states(before, after, x, y, 0.1, ARCH)
    assert raised.value.context["key"] == "2.weight"


def test_nan_in_batch_is_rejected():
    before, after, x, y, _ = _states()
    x = x.clone()
    x[1, 1] = float("nan")
    with pytest.raises(WitnessBuilderError, match="NaN"):
        step_from_states(before, after, x, y, 0.1, ARCH)


def test_key_mismatch_lists_missing_and_unexpected_keys():
    before, after, x, y, _ = _states()
    after = {("2.W" if k == "2.weight" else k): v for k, v in after.items()}
    with pytest.raises(InvalidModelStateError) as raised:
        step_from_states(before, after, x, y, 0.1, ARCH)
    assert raised.value.context["missing"] == ["2.weight"] and raised.value.context["unexpected"] == ["2.W"]


def test_shape_mismatch_says_expected_and_actual():
    before, after, x, y, _ = _states()
    after = dict(after, **{"0.bias": torch.zeros(4)})
    with pytest.raises(InvalidModelStateError) as raised:
        step_from_states(before, after, x, y, 0.1, ARCH)
    assert raised.value.expected == [3] and raised.value.actual == [4]


def test_empty_state_is_rejected():
    _, after, x, y, _ = _states()
    with pytest.raises(InvalidModelStateError, match="empty"):
        step_from_states({}, after, x, y, 0.1, ARCH)


@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan")])
def test_non_positive_learning_rate_is_rejected(lr):
    before, after, x, y, _ = _states()
    with pytest.raises(InvalidModelStateError, match="learning rate"):
        step_from_states(before, after, x, y, lr, ARCH)


def test_batch_shape_must_match_the_architecture():
    before, after, x, y, _ = _states()
    with pytest.raises(WitnessBuilderError) as raised:
        step_from_states(before, after, torch.randn(2, 5), y, 0.1, ARCH)
    assert raised.value.actual["inputs"] == [2, 5]


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)),
        nn.Sequential(nn.Linear(4, 3), nn.ReLU()),
        nn.Sequential(nn.Linear(4, 3, bias=False)),
        nn.Linear(4, 2),
    ],
)
def test_unsupported_models_are_named(model):
    with pytest.raises(InvalidModelStateError):
        architecture_of(model)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.Adam(p, lr=0.1),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01),
    ],
)
def test_only_plain_sgd_steps_are_captured(make):
    model = ARCH.build()
    with pytest.raises(InvalidModelStateError):
        capture_sgd_step(model, make(model.parameters()), torch.randn(2, 4), torch.randn(2, 2))


def test_architecture_is_read_from_the_model():
    assert architecture_of(MlpArchitecture((5, 7, 6, 2)).build()).dims == (5, 7, 6, 2)


def test_tensors_that_are_not_float64_are_rejected_naming_the_key():
    """Captured steps are float64 copies; a step built around another dtype is refused
    before any encoding (removing the dtype checks lets it through)."""
    *_, step = _states()
    sgd = STEP_KINDS.get("sgd")
    half = {key: value.to(torch.float32) for key, value in step.weights_after.items()}
    bad_state = TrainingStep(step.architecture, step.learning_rate, step.weights_before, half, step.inputs, step.targets)
    with pytest.raises(InvalidModelStateError, match="is not float64") as raised:
        sgd.validate(bad_state)
    assert raised.value.context["key"] == "0.weight"
    bad_batch = TrainingStep(step.architecture, step.learning_rate, step.weights_before, step.weights_after, step.inputs.float(), step.targets)
    with pytest.raises(WitnessBuilderError, match="inputs are not float64"):
        sgd.validate(bad_batch)


def test_a_batch_or_state_that_does_not_fit_says_how_in_its_message():
    """review27: "batch shapes do not match the architecture" gave no shapes, and "weights_before
    keys do not match the architecture" named no key (an extra buffer, say)."""
    import types

    import torch

    from pot_zk.exceptions import InvalidModelStateError, WitnessBuilderError
    from pot_zk.kinds.base import check_batch, check_state

    batch = types.SimpleNamespace(inputs=torch.zeros(2, 4, dtype=torch.float64), targets=torch.zeros(2, dtype=torch.float64))
    with pytest.raises(WitnessBuilderError, match=r"^batch shapes do not match the architecture: inputs \(2, 4\) and targets \(2,\), "
                       r"the statement takes inputs \(N, 4\) and targets \(N, 3\) for the mse loss$"):
        check_batch(batch, [4, 3, 3], "mse")
    state = {"0.weight": torch.zeros(3, 4, dtype=torch.float64), "0.running_mean": torch.zeros(3, dtype=torch.float64)}
    with pytest.raises(InvalidModelStateError, match=r"^weights_before keys do not match the architecture: missing \['0.bias'\]; not in it \['0.running_mean'\]$"):
        check_state("weights_before", state, [("0.weight", (3, 4)), ("0.bias", (3,))], "architecture")
