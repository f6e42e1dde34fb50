"""The ``momentum`` step kind: one step of SGD with momentum (and weight decay) of a ReLU MLP,
every parameter trained, the velocity committed next to the weights."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import torch
from torch import nn

from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.base import ModelSettings, StepKind, StepTensor, load_parameters
from pot_zk.kinds.mlp import MlpArchitecture, Shapes, flatten, mlp_from_dims, unflatten
from pot_zk.kinds.momentum.step import MomentumArchitecture, MomentumStep, capture_momentum_step, encode_momentum_step, validate_momentum_step
from pot_zk.kinds.optimizer import OptimizerSettings
from pot_zk.kinds.reference import backprop_products, momentum_after

STATE_NAMES = ("w_before", "w_after", "v_before", "v_after")


class MomentumKind(StepKind):
    name = "momentum"
    optimizer_words = "torch.optim.SGD with momentum (and weight decay; no dampening, no Nesterov)"
    step_type = MomentumStep
    state_words = "weights and velocity"
    optimizer_state = "the velocity V_t"
    architecture_type = MomentumArchitecture
    chained_inputs = (("w_before", "w_after"), ("v_before", "v_after"))
    file_tensor_names = (*STATE_NAMES, "x", "y")

    def takes(self, optimizer: OptimizerSettings) -> bool:
        return optimizer.name == "sgd" and optimizer.momentum > 0 and replace(optimizer, momentum=0.0, weight_decay=0.0) == OptimizerSettings()

    def capture(self, model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> MomentumStep:
        return capture_momentum_step(model, optimizer, inputs, targets)

    def validate(self, step: MomentumStep) -> None:
        validate_momentum_step(step)

    def encode(self, step: MomentumStep) -> list[StepTensor]:
        return encode_momentum_step(step)

    def file_tensors(self, step: MomentumStep) -> dict[str, torch.Tensor]:
        encoded = {x.name: x.values for x in encode_momentum_step(step)}
        return {**{name: encoded[name] for name in STATE_NAMES}, "x": step.inputs, "y": step.targets}

    def file_sizes(self, architecture: MomentumArchitecture) -> dict[str, int]:
        return {name: architecture.num_params for name in STATE_NAMES}

    def from_file(self, architecture: MomentumArchitecture, learning_rate: float, tensors: Mapping[str, torch.Tensor]) -> MomentumStep:
        shapes = architecture.param_shapes
        return MomentumStep(
            architecture=architecture,
            learning_rate=learning_rate,
            weights_before=unflatten(tensors["w_before"], shapes),
            weights_after=unflatten(tensors["w_after"], shapes),
            velocity_before=unflatten(tensors["v_before"], shapes),
            velocity_after=unflatten(tensors["v_after"], shapes),
            inputs=tensors["x"],
            targets=tensors["y"],
        )

    def architecture(self, model: ModelSettings) -> MomentumArchitecture:
        if not self.takes(model.optimizer):
            raise ConfigurationError(f"a momentum step needs {self.optimizer_words}, not {model.optimizer.describe()}", key="optimizer.momentum")
        return MomentumArchitecture(mlp_from_dims(model.dims, model.loss), model.optimizer.momentum, model.optimizer.weight_decay)

    def config_values(self, architecture: MomentumArchitecture) -> dict[str, Any]:
        """An ``sgd`` model trained with momentum (``model.kind=sgd optimizer.momentum=...``)."""
        mlp = architecture.mlp
        return {
            "model.kind": "sgd", "model.dims": list(mlp.dims), "model.loss": mlp.loss,
            "optimizer.momentum": architecture.momentum, "optimizer.weight_decay": architecture.weight_decay,
        }

    def base_architecture(self, architecture: MomentumArchitecture) -> None:
        return None

    def mlp(self, architecture: MomentumArchitecture) -> MlpArchitecture:
        return architecture.mlp

    def build_model(self, architecture: MomentumArchitecture, base_state: Mapping[str, torch.Tensor] | None) -> nn.Module:
        return architecture.build()

    def model_tensors(self, state: Mapping[str, torch.Tensor], architecture: MomentumArchitecture) -> dict[str, torch.Tensor]:
        """The parameters, exactly (the velocity is not in a model file)."""
        if set(state) != {name for name, _ in architecture.param_shapes}:
            raise KeyError(f"tensors {sorted(state)} are not the parameters of {architecture.to_dict()}")
        return {"weights": flatten({k: v.double() for k, v in state.items()}, architecture.param_shapes)}

    def trained_shapes(self, architecture: MomentumArchitecture) -> Shapes:
        return architecture.param_shapes

    def replace_after(self, step: MomentumStep, after: Mapping[str, torch.Tensor]) -> MomentumStep:
        shapes = step.architecture.param_shapes
        return replace(step, weights_after=unflatten(after["w_after"], shapes), velocity_after=unflatten(after["v_after"], shapes))

    def load_after(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: MomentumStep) -> None:
        """The weights into the model, the velocity into the optimizer's momentum buffers."""
        load_parameters(model, step.weights_after)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                state = optimizer.state[parameter]
                state["momentum_buffer"] = step.velocity_after[name].to(parameter.dtype).clone()

    def backprop(self, architecture: MomentumArchitecture, batch_size: int, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Z_l, the weight gradients G_l and the back-propagated products B_l (l > 0)."""
        return backprop_products(architecture, batch_size, named)


    def reference_after(self, step: MomentumStep) -> dict[str, torch.Tensor]:
        named = {tensor.name: tensor.values for tensor in self.encode(step)}
        return momentum_after(step.architecture, step.batch_size, step.learning_rate, named)

MOMENTUM = MomentumKind()
