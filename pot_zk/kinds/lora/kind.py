"""The ``lora`` step kind: one SGD step on the LoRA adapters of a frozen ReLU MLP base."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import torch
from torch import nn

from pot_zk.kinds.base import ModelSettings, StepKind, StepTensor
from pot_zk.kinds.lora.detect import canonical_state
from pot_zk.kinds.lora.capture import adapter_parameters, capture_lora_step, lora_step_from_models
from pot_zk.kinds.lora.reference import lora_after, lora_products
from pot_zk.kinds.lora.step import LoraArchitecture, LoraTrainingStep, attach_lora, encode_lora_step, validate_lora_step
from pot_zk.kinds.mlp import MlpArchitecture, Shapes, flatten, mlp_from_dims, unflatten


class LoraKind(StepKind):
    name = "lora"
    model_kind = "lora"
    step_type = LoraTrainingStep
    state_words = "adapters (on the declared base)"
    architecture_type = LoraArchitecture
    constant_inputs = ("base",)
    file_tensor_names = ("base", "a_before", "a_after", "x", "y")

    def capture(self, model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> LoraTrainingStep:
        return capture_lora_step(model, optimizer, inputs, targets)

    def from_models(self, model_before: nn.Module, model_after: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, learning_rate: float) -> LoraTrainingStep:
        return lora_step_from_models(model_before, model_after, inputs, targets, learning_rate)

    def validate(self, step: LoraTrainingStep) -> None:
        validate_lora_step(step)

    def encode(self, step: LoraTrainingStep) -> list[StepTensor]:
        return encode_lora_step(step)

    def file_tensors(self, step: LoraTrainingStep) -> dict[str, torch.Tensor]:
        return {"base": step.flat_base(), "a_before": step.flat_before(), "a_after": step.flat_after(), "x": step.inputs, "y": step.targets}

    def file_sizes(self, architecture: LoraArchitecture) -> dict[str, int]:
        adapters = architecture.num_adapter_params
        return {"base": architecture.base.num_params, "a_before": adapters, "a_after": adapters}

    def from_file(self, architecture: LoraArchitecture, learning_rate: float, tensors: Mapping[str, torch.Tensor]) -> LoraTrainingStep:
        return LoraTrainingStep(
            architecture=architecture,
            learning_rate=learning_rate,
            base=unflatten(tensors["base"], architecture.base_shapes),
            adapters_before=unflatten(tensors["a_before"], architecture.adapter_shapes),
            adapters_after=unflatten(tensors["a_after"], architecture.adapter_shapes),
            inputs=tensors["x"],
            targets=tensors["y"],
        )

    def architecture(self, model: ModelSettings) -> LoraArchitecture:
        return LoraArchitecture(mlp_from_dims(model.dims, model.loss), tuple(int(l) for l in model.lora_layers), int(model.lora_rank), float(model.lora_alpha))

    def config_values(self, architecture: LoraArchitecture) -> dict[str, Any]:
        base = architecture.base
        return {
            "model.kind": self.name, "model.dims": list(base.dims), "model.loss": base.loss, "model.lora_layers": list(architecture.adapted),
            "model.lora_rank": architecture.rank, "model.lora_alpha": architecture.alpha, "optimizer.momentum": 0.0, "optimizer.weight_decay": 0.0,
        }

    def base_architecture(self, architecture: LoraArchitecture) -> MlpArchitecture:
        return architecture.base

    def mlp(self, architecture: LoraArchitecture) -> MlpArchitecture:
        return architecture.base

    def build_model(self, architecture: LoraArchitecture, base_state: Mapping[str, torch.Tensor] | None) -> nn.Module:
        base = architecture.base.build()
        if base_state is not None:
            base.load_state_dict(base_state)
        return attach_lora(base, tuple(2 * layer for layer in architecture.adapted), architecture.rank, architecture.alpha)

    def model_tensors(self, state: Mapping[str, torch.Tensor], architecture: LoraArchitecture) -> dict[str, torch.Tensor]:
        """Model files of a LoRA run hold pot-zk's LoraLinear state (``i.base.weight``,
        ``i.lora_A``, ...) or a peft model's (:func:`~pot_zk.kinds.lora.detect.canonical_state`):
        the adapters are the weights, the frozen linears the base."""
        state = canonical_state(state)
        base: dict[str, Any] = {}
        used: set[str] = set()
        for key, _ in architecture.base_shapes:
            index, name = key.split(".")
            found = f"{index}.base.{name}" if f"{index}.base.{name}" in state else key
            base[key] = state.get(found)
            if base[key] is None:
                raise KeyError(key)
            used.add(found)
        adapters = {key: state[key] for key, _ in architecture.adapter_shapes}
        if set(state) != used | set(adapters):
            raise KeyError(f"tensors {sorted(set(state) - used - set(adapters))} are not part of this LoRA model")
        return {
            "weights": flatten({k: v.double() for k, v in adapters.items()}, architecture.adapter_shapes),
            "base": flatten({k: v.double() for k, v in base.items()}, architecture.base_shapes),
        }

    def file_shapes(self, architecture: LoraArchitecture) -> Shapes:
        return [*architecture.base_shapes, *architecture.adapter_shapes]

    def trained_shapes(self, architecture: LoraArchitecture) -> Shapes:
        return architecture.adapter_shapes

    def replace_after(self, step: LoraTrainingStep, after: Mapping[str, torch.Tensor]) -> LoraTrainingStep:
        return replace(step, adapters_after=unflatten(after["w_after"], step.architecture.adapter_shapes))

    def load_after(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: LoraTrainingStep) -> None:
        """The adapters after the step into the model's LoRA layers (pot-zk's or peft's)."""
        parameters = adapter_parameters(model)
        with torch.no_grad():
            for name, values in step.adapters_after.items():
                parameters[name].copy_(values.to(parameters[name].dtype))

    def backprop(self, architecture: LoraArchitecture, batch_size: int, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """U_l, Z_l, V_l, the adapter gradients GA_l, GB_l and the back-propagated P_l."""
        return lora_products(architecture, batch_size, named)


    def reference_after(self, step: LoraTrainingStep) -> dict[str, torch.Tensor]:
        named = {tensor.name: tensor.values for tensor in self.encode(step)}
        return lora_after(step.architecture, step.batch_size, step.learning_rate, named)

LORA = LoraKind()
