"""Deciding from the model itself whether a training step is full SGD or LoRA.

Rules (docs/lora.md), decided from module types and ``requires_grad`` -- never from parameter
names:

* A *recognised LoRA module* is a :class:`pot_zk.kinds.lora.step.LoraLinear` or a peft ``LoraLayer``.
  peft is recognised only when it is already imported (a peft model cannot exist otherwise),
  so pot-zk never imports peft on its own.
* No recognised LoRA module: every parameter must be trainable -> ``"sgd"``. A model with
  frozen and trainable parameters but no recognised LoRA module is rejected, naming both
  sets of keys (a hand-rolled adapter named ``lora_A`` is *not* LoRA to pot-zk).
* Recognised LoRA modules: the trainable parameters must be exactly their adapters' A and B
  -> ``"lora"``. A trainable base weight, a trainable parameter outside the LoRA modules
  (``conv_Block.weight``) or a frozen adapter is rejected, naming the keys.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Mapping

import torch

from torch import nn

from pot_zk.exceptions import InvalidModelStateError
from pot_zk.kinds.lora.step import LoraLinear


@dataclass(frozen=True)
class LoraLayerView:
    """One recognised LoRA module reduced to what a LoRA step needs."""

    name: str
    module: nn.Module
    base: nn.Linear
    lora_A: nn.Parameter
    lora_B: nn.Parameter
    rank: int
    alpha: float


@dataclass(frozen=True)
class DetectedTraining:
    kind: str
    """``"sgd"`` or ``"lora"``."""
    trainable: tuple[str, ...]
    lora_layers: tuple[LoraLayerView, ...] = ()


def _peft_lora_types() -> tuple[type, type] | None:
    if "peft" not in sys.modules:
        return None
    from peft.tuners.lora import Linear, LoraLayer

    return LoraLayer, Linear


def unwrap_peft(model: nn.Module) -> nn.Module:
    """The user's own module inside peft's wrappers (``PeftModel`` -> ``LoraModel`` -> model)."""
    if "peft" not in sys.modules:
        return model
    from peft import PeftModel
    from peft.tuners.lora import LoraModel

    if isinstance(model, PeftModel):
        model = model.get_base_model()
    if isinstance(model, LoraModel):
        model = model.model
    return model


def _peft_view(name: str, module: nn.Module) -> LoraLayerView:
    adapters = sorted(module.lora_A.keys())
    active = list(module.active_adapters)
    if len(adapters) != 1 or active != adapters:
        raise InvalidModelStateError(
            f"peft LoRA layer {name!r} has adapters {adapters} with {active} active; pot-zk proves one adapter, active",
            expected="one active adapter",
            actual={"present": adapters, "active": active},
            key=name,
        )
    adapter = adapters[0]
    rslora = bool(getattr(module, "use_rslora", {}).get(adapter, False))
    checks = {
        "merged": module.merged,
        "use_dora": module.use_dora.get(adapter, False),
        "lora_bias": getattr(module, "lora_bias", {}).get(adapter, False),
        "fan_in_fan_out": getattr(module, "fan_in_fan_out", False),
        "dropout": not isinstance(module.lora_dropout[adapter], nn.Identity),
        "use_rslora": rslora,
        "scaling is not alpha/r": not rslora and module.scaling[adapter] != module.lora_alpha[adapter] / module.r[adapter],
    }
    problems = {key: True for key, bad in checks.items() if bad}
    if problems:
        raise InvalidModelStateError(
            f"peft LoRA layer {name!r} uses features pot-zk cannot prove: {', '.join(sorted(problems))}",
            expected="one active adapter, unmerged, no DoRA/bias/dropout/rslora/fan_in_fan_out, scaling alpha/r",
            actual=problems,
            key=name,
        )
    adapter = adapters[0]
    return LoraLayerView(
        name=name,
        module=module,
        base=module.base_layer,
        lora_A=module.lora_A[adapter].weight,
        lora_B=module.lora_B[adapter].weight,
        rank=int(module.r[adapter]),
        alpha=float(module.lora_alpha[adapter]),
    )


def lora_layer_views(model: nn.Module) -> list[LoraLayerView]:
    """Every recognised LoRA module of ``model`` (unsupported variants raise)."""
    peft_types = _peft_lora_types()
    views = []
    for name, module in model.named_modules():
        if isinstance(module, LoraLinear):
            views.append(LoraLayerView(name, module, module.base, module.lora_A, module.lora_B, module.rank, module.alpha))
        elif peft_types is not None and isinstance(module, peft_types[0]):
            if type(module) is not peft_types[1] or not isinstance(module.base_layer, nn.Linear):
                raise InvalidModelStateError(
                    f"peft LoRA layer {name!r} is a {type(module).__name__}; only lora.Linear over nn.Linear is supported",
                    expected="peft.tuners.lora.Linear",
                    actual=type(module).__name__,
                    key=name,
                )
            views.append(_peft_view(name, module))
    return views


def detect_training(model: nn.Module) -> DetectedTraining:
    """Classify ``model`` as full-SGD or LoRA training, or say precisely why it is neither."""
    params = dict(model.named_parameters())
    if not params:
        raise InvalidModelStateError("the model has no parameters", expected="parameters", actual=[])
    trainable = tuple(name for name, p in params.items() if p.requires_grad)
    frozen = sorted(name for name, p in params.items() if not p.requires_grad)
    if not trainable:
        raise InvalidModelStateError("no parameter of the model is trainable", expected="trainable parameters", actual=frozen, frozen=frozen)
    views = lora_layer_views(model)
    if not views:
        if frozen:
            raise InvalidModelStateError(
                "some parameters are frozen but the model has no recognised LoRA module "
                f"(pot_zk.kinds.lora.step.LoraLinear or peft LoraLayer); frozen: {frozen}; trainable: {list(trainable)}",
                expected="all parameters trainable (full SGD) or recognised LoRA modules",
                actual={"frozen": frozen, "trainable": list(trainable)},
            )
        return DetectedTraining("sgd", trainable)
    adapter_ids = {id(p) for view in views for p in (view.lora_A, view.lora_B)}
    outside = [name for name in trainable if id(params[name]) not in adapter_ids]
    if outside:
        raise InvalidModelStateError(
            f"trainable parameters outside the LoRA adapters: {outside}; LoRA steps train only A and B "
            "(freeze them, or remove the adapters for full SGD)",
            expected="only LoRA adapters trainable",
            actual=outside,
            keys=outside,
        )
    frozen_adapters = [name for name in frozen if id(params[name]) in adapter_ids]
    if frozen_adapters:
        raise InvalidModelStateError(
            f"frozen LoRA adapters: {frozen_adapters}", expected="every adapter trainable", actual=frozen_adapters, keys=frozen_adapters
        )
    return DetectedTraining("lora", trainable, tuple(views))


PEFT_PREFIX = "base_model.model."
_PEFT_KEY = re.compile(r"^(?P<index>\d+)\.(?:(?P<base>base_layer)\.(?P<name>weight|bias)|(?P<adapter>lora_[AB])\.[^.]+\.weight)$")


def canonical_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A LoRA model's state dict under pot-zk's own names (:class:`~pot_zk.kinds.lora.step.LoraLinear`
    in an ``nn.Sequential``: ``"{i}.base.weight"``, ``"{i}.lora_A"``, ...). A peft model's keys
    (``base_model.model.{i}.base_layer.weight``, ``base_model.model.{i}.lora_A.<adapter>.weight``,
    ``base_model.model.{i}.weight`` for a layer without adapters) are renamed; any other state
    is returned as it is. KeyError when two keys name one tensor (several adapters)."""
    if not state or not all(key.startswith(PEFT_PREFIX) for key in state):
        return dict(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        inner = key.removeprefix(PEFT_PREFIX)
        found = _PEFT_KEY.match(inner)
        if found is not None:
            inner = f"{found['index']}.base.{found['name']}" if found["base"] else f"{found['index']}.{found['adapter']}"
        if inner in out:
            raise KeyError(f"{key} names {inner} a second time")
        out[inner] = value
    return out
