"""The ``sgd`` step kind: one plain SGD step of a ReLU MLP, every parameter trained."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import torch
from torch import nn

from pot_zk.kinds.base import ModelSettings, StepKind, StepTensor, load_parameters
from pot_zk.kinds.losses import loss_for_targets
from pot_zk.exceptions import InvalidModelStateError
from pot_zk.kinds.mlp import MlpArchitecture, Shapes, architecture_of, flatten, mlp_from_dims, unflatten
from pot_zk.kinds.reference import backprop_products, sgd_after
from pot_zk.kinds.sgd.step import TrainingStep, capture_sgd_step, encode_sgd_step, step_from_states, validate_sgd_step


class SgdKind(StepKind):
    name = "sgd"
    step_type = TrainingStep
    architecture_type = MlpArchitecture
    file_tensor_names = ("w_before", "w_after", "x", "y")

    def capture(self, model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> TrainingStep:
        return capture_sgd_step(model, optimizer, inputs, targets)

    def from_models(self, model_before: nn.Module, model_after: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, learning_rate: float) -> TrainingStep:
        architecture, after = architecture_of(model_before), architecture_of(model_after)
        if after != architecture:
            raise InvalidModelStateError("model_before and model_after have different architectures", expected=architecture.to_dict(), actual=after.to_dict())
        architecture = replace(architecture, loss=loss_for_targets(targets))
        return step_from_states(model_before.state_dict(), model_after.state_dict(), inputs, targets, learning_rate, architecture)

    def validate(self, step: TrainingStep) -> None:
        validate_sgd_step(step)

    def encode(self, step: TrainingStep) -> list[StepTensor]:
        return encode_sgd_step(step)

    def file_tensors(self, step: TrainingStep) -> dict[str, torch.Tensor]:
        return {"w_before": step.flat_before(), "w_after": step.flat_after(), "x": step.inputs, "y": step.targets}

    def file_sizes(self, architecture: MlpArchitecture) -> dict[str, int]:
        return {"w_before": architecture.num_params, "w_after": architecture.num_params}

    def from_file(self, architecture: MlpArchitecture, learning_rate: float, tensors: Mapping[str, torch.Tensor]) -> TrainingStep:
        return TrainingStep(
            architecture=architecture,
            learning_rate=learning_rate,
            weights_before=unflatten(tensors["w_before"], architecture.param_shapes),
            weights_after=unflatten(tensors["w_after"], architecture.param_shapes),
            inputs=tensors["x"],
            targets=tensors["y"],
        )

    def architecture(self, model: ModelSettings) -> MlpArchitecture:
        return mlp_from_dims(model.dims, model.loss)

    def config_values(self, architecture: MlpArchitecture) -> dict[str, Any]:
        return {"model.kind": self.name, "model.dims": list(architecture.dims), "model.loss": architecture.loss, "optimizer.momentum": 0.0, "optimizer.weight_decay": 0.0}

    def base_architecture(self, architecture: MlpArchitecture) -> None:
        return None

    def mlp(self, architecture: MlpArchitecture) -> MlpArchitecture:
        return architecture

    def build_model(self, architecture: MlpArchitecture, base_state: Mapping[str, torch.Tensor] | None) -> nn.Module:
        return architecture.build()

    def model_tensors(self, state: Mapping[str, torch.Tensor], architecture: MlpArchitecture) -> dict[str, torch.Tensor]:
        """The parameters, exactly: a model file with any other tensor is not this model."""
        if set(state) != {name for name, _ in architecture.param_shapes}:
            raise KeyError(f"tensors {sorted(state)} are not the parameters of {architecture.to_dict()}")
        return {"weights": flatten({k: v.double() for k, v in state.items()}, architecture.param_shapes)}

    def trained_shapes(self, architecture: MlpArchitecture) -> Shapes:
        return architecture.param_shapes

    def replace_after(self, step: TrainingStep, after: Mapping[str, torch.Tensor]) -> TrainingStep:
        return replace(step, weights_after=unflatten(after["w_after"], step.architecture.param_shapes))

    def load_after(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: TrainingStep) -> None:
        load_parameters(model, step.weights_after)

    def backprop(self, architecture: MlpArchitecture, batch_size: int, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Z_l, the weight gradients G_l and the back-propagated products B_l (l > 0)."""
        return backprop_products(architecture, batch_size, named)


    def reference_after(self, step: TrainingStep) -> dict[str, torch.Tensor]:
        named = {tensor.name: tensor.values for tensor in self.encode(step)}
        return sgd_after(step.architecture, step.batch_size, step.learning_rate, named)

SGD = SgdKind()
