"""SGD vs LoRA is decided from module types and requires_grad, never from parameter names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pot_zk.backends.ezkl.backend import EZKL
from pot_zk.kinds.lora.detect import detect_training
from pot_zk.exceptions import InvalidModelStateError
from pot_zk.kinds.lora.step import LoraTrainingStep, attach_lora
from pot_zk.kinds.lora.capture import capture_lora_step
from pot_zk.backends.ezkl.lora import LoraCircuitSpec
from pot_zk.kinds.mlp import MlpArchitecture
from pot_zk.kinds.registry import capture_step
from pot_zk.kinds.sgd.step import TrainingStep

peft = pytest.importorskip("peft")

BASE = MlpArchitecture((4, 3, 2))


def _peft_model(**config) -> nn.Module:
    torch.manual_seed(0)
    options = {"r": 2, "lora_alpha": 4, "target_modules": ["0"], "lora_dropout": 0.0, "init_lora_weights": False, **config}
    return peft.get_peft_model(BASE.build(), peft.LoraConfig(**options))


def _batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(3, 4, generator=generator), torch.randn(3, 2, generator=generator)


def _sgd(model: nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)


class ConvBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, 2))


class HandRolledAdapter(nn.Module):
    """Looks like LoRA by its parameter names; is not a recognised LoRA module."""

    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Linear(4, 2)
        self.base.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.zeros(1, 4))
        self.lora_B = nn.Parameter(torch.zeros(2, 1))


def test_plain_trainable_mlp_is_sgd():
    detected = detect_training(BASE.build())
    assert detected.kind == "sgd" and detected.trainable == ("0.weight", "0.bias", "2.weight", "2.bias")
    model = BASE.build()
    assert isinstance(capture_step(model, _sgd(model), *_batch()), TrainingStep)


def test_pot_zk_lora_layers_are_lora():
    model = attach_lora(BASE.build(), (0, 2), rank=2, alpha=4)
    detected = detect_training(model)
    assert detected.kind == "lora"
    assert sorted(detected.trainable) == ["0.lora_A", "0.lora_B", "2.lora_A", "2.lora_B"]
    step = capture_step(model, _sgd(model), *_batch())
    assert isinstance(step, LoraTrainingStep) and step.architecture.adapted == (0, 1)


def test_peft_lora_model_is_lora_and_its_step_is_the_sgd_update_of_the_adapters():
    model = _peft_model()
    assert detect_training(model).kind == "lora"
    step = capture_step(model, _sgd(model), *_batch())
    assert isinstance(step, LoraTrainingStep)
    assert (step.architecture.rank, step.architecture.alpha, step.architecture.adapted) == (2, 4.0, (0,))
    assert torch.equal(step.base["0.weight"], model.base_model.model[0].base_layer.weight.detach().double())
    spec = EZKL.statement_for_step(step)
    assert isinstance(spec, LoraCircuitSpec)
    residual = spec.reference_output([x.values for x in spec.encode(step)])
    assert float(residual.abs().max()) < 1e-6
    assert float((step.flat_after() - step.flat_before()).abs().max()) > 1e-4


def test_trainable_base_weight_next_to_adapters_is_rejected_naming_it():
    model = attach_lora(BASE.build(), (0,), rank=2, alpha=4)
    model[2].weight.requires_grad_(True)
    with pytest.raises(InvalidModelStateError, match="outside the LoRA adapters") as raised:
        detect_training(model)
    assert raised.value.context["keys"] == ["2.weight"]


def test_conv_block_weight_is_never_taken_for_an_adapter():
    model = _peft_model()
    model.base_model.model.add_module("conv_Block", ConvBlock())
    with pytest.raises(InvalidModelStateError) as raised:
        detect_training(model)
    assert raised.value.context["keys"] == ["base_model.model.conv_Block.weight"]
    plain = nn.Sequential(BASE.build(), ConvBlock())
    assert detect_training(plain).kind == "sgd"


def test_parameters_named_lora_on_a_plain_module_are_not_lora():
    with pytest.raises(InvalidModelStateError, match="no recognised LoRA module") as raised:
        detect_training(HandRolledAdapter())
    assert raised.value.actual == {"frozen": ["base.bias", "base.weight"], "trainable": ["lora_A", "lora_B"]}


def test_fully_frozen_model_is_rejected():
    model = BASE.build().requires_grad_(False)
    with pytest.raises(InvalidModelStateError, match="no parameter of the model is trainable"):
        detect_training(model)


def test_frozen_adapter_is_rejected_naming_it():
    model = attach_lora(BASE.build(), (0, 2), rank=2, alpha=4)
    model[2].lora_B.requires_grad_(False)
    with pytest.raises(InvalidModelStateError, match="frozen LoRA adapters") as raised:
        detect_training(model)
    assert raised.value.context["keys"] == ["2.lora_B"]


@pytest.mark.parametrize("config, feature", [({"lora_dropout": 0.1}, "dropout"), ({"use_rslora": True}, "rslora"), ({"use_dora": True}, "use_dora")])
def test_peft_features_that_cannot_be_proven_are_named(config, feature):
    with pytest.raises(InvalidModelStateError, match=f"uses features pot-zk cannot prove: .*{feature}") as raised:
        detect_training(_peft_model(**config))
    assert raised.value.context["key"] == "base_model.model.0"


def test_a_peft_scaling_changed_by_hand_is_named_as_such_not_as_rslora():
    model = _peft_model()
    model.base_model.model[0].scaling["default"] = 3.0
    with pytest.raises(InvalidModelStateError, match=r"cannot prove: scaling is not alpha/r$") as raised:
        detect_training(model)
    assert raised.value.actual == {"scaling is not alpha/r": True}


def test_rslora_is_named_once_not_also_as_a_changed_scaling():
    with pytest.raises(InvalidModelStateError, match=r"cannot prove: use_rslora$"):
        detect_training(_peft_model(use_rslora=True))


def test_a_second_peft_adapter_is_named_with_the_adapters_present_and_active():
    model = _peft_model()
    model.add_adapter("second", peft.LoraConfig(r=2, lora_alpha=4, target_modules=["0"], lora_dropout=0.0))
    with pytest.raises(InvalidModelStateError, match=r"has adapters \['default', 'second'\] with \['default'\] active; pot-zk proves one adapter"):
        detect_training(model)


def test_lora_layers_with_different_ranks_are_rejected():
    model = attach_lora(attach_lora(BASE.build(), (0,), rank=2, alpha=4), (2,), rank=1, alpha=4)
    with pytest.raises(InvalidModelStateError, match="one rank and alpha"):
        capture_lora_step(model, _sgd(model), *_batch())


def test_optimizer_that_skips_an_adapter_is_rejected():
    model = attach_lora(BASE.build(), (0,), rank=2, alpha=4)
    optimizer = torch.optim.SGD([model[0].lora_A], lr=0.1)
    with pytest.raises(InvalidModelStateError, match="does not update the adapters") as raised:
        capture_lora_step(model, optimizer, *_batch())
    assert raised.value.context["keys"] == ["0.lora_B"]
