"""The ``adamw`` step kind: one step of AdamW (decoupled weight decay) or Adam (weight decay in
the gradient) of a ReLU MLP, every parameter trained, the moments and the step count committed
next to the weights."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import torch
from torch import nn

from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.adamw.step import MOMENTS, AdamwArchitecture, AdamwStep, capture_adamw_step, encode_adamw_step, validate_adamw_step
from pot_zk.kinds.base import ModelSettings, StepKind, StepTensor, load_parameters
from pot_zk.kinds.mlp import MlpArchitecture, Shapes, flatten, mlp_from_dims, unflatten
from pot_zk.kinds.optimizer import OptimizerSettings
from pot_zk.kinds.adamw.reference import adamw_reference
from pot_zk.kinds.reference import backprop_products

STATE_NAMES = ("w_before", "w_after", "m_before", "m_after", "v_before", "v_after")
FIELDS = dict(zip(STATE_NAMES, ("weights_before", "weights_after", "exp_avg_before", "exp_avg_after", "exp_avg_sq_before", "exp_avg_sq_after")))


class AdamwKind(StepKind):
    name = "adamw"
    optimizer_words = "torch.optim.AdamW or Adam (no AMSGrad)"
    step_type = AdamwStep
    state_words = "weights, moments and step count"
    optimizer_state = "the moments m_t and v_t"
    step_count_input = "t_after"
    exact_step_words = (  # a review: Adam's normalised step turns a gradient below the grid into a near-full step
        "close to yours, except that a coordinate whose gradient rounds to 0 on the grid does not move, where float Adam moves "
        "it by up to the learning rate"
    )
    architecture_type = AdamwArchitecture
    chained_inputs = (("w_before", "w_after"), ("m_before", "m_after"), ("v_before", "v_after"), ("t_before", "t_after"))
    file_tensor_names = (*STATE_NAMES, "t", "x", "y")

    def takes(self, optimizer: OptimizerSettings) -> bool:
        return optimizer.name in ("adam", "adamw") and optimizer.momentum == 0.0

    def capture(self, model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> AdamwStep:
        return capture_adamw_step(model, optimizer, inputs, targets)

    def validate(self, step: AdamwStep) -> None:
        validate_adamw_step(step)

    def encode(self, step: AdamwStep) -> list[StepTensor]:
        return encode_adamw_step(step)

    def file_tensors(self, step: AdamwStep) -> dict[str, torch.Tensor]:
        state = {name: step.flat(getattr(step, field)) for name, field in FIELDS.items()}
        return {**state, "t": torch.tensor([float(step.step_count)], dtype=torch.float64), "x": step.inputs, "y": step.targets}

    def file_sizes(self, architecture: AdamwArchitecture) -> dict[str, int]:
        return {**{name: architecture.num_params for name in STATE_NAMES}, "t": 1}

    def from_file(self, architecture: AdamwArchitecture, learning_rate: float, tensors: Mapping[str, torch.Tensor]) -> AdamwStep:
        shapes = architecture.param_shapes
        count = float(tensors["t"].reshape(-1)[0])
        if count != int(count):
            raise ValueError(f"the step count {count} is not an integer")
        return AdamwStep(
            architecture=architecture,
            learning_rate=learning_rate,
            **{field: unflatten(tensors[name], shapes) for name, field in FIELDS.items()},
            step_count=int(count),
            inputs=tensors["x"],
            targets=tensors["y"],
        )

    def architecture(self, model: ModelSettings) -> AdamwArchitecture:
        optimizer = model.optimizer
        if not self.takes(optimizer):
            raise ConfigurationError(f"an adamw step needs {self.optimizer_words}, not {optimizer.describe()}", key="optimizer.name")
        return AdamwArchitecture(mlp_from_dims(model.dims, model.loss), optimizer.betas, optimizer.eps, optimizer.weight_decay, optimizer.name == "adamw")

    def config_values(self, architecture: AdamwArchitecture) -> dict[str, Any]:
        """An ``sgd`` model trained by AdamW or Adam (``optimizer.name=adamw|adam``)."""
        mlp = architecture.mlp
        return {
            "model.kind": "sgd", "model.dims": list(mlp.dims), "model.loss": mlp.loss,
            "optimizer.name": "adamw" if architecture.decoupled_weight_decay else "adam", "optimizer.momentum": 0.0,
            "optimizer.weight_decay": architecture.weight_decay, "optimizer.betas": list(architecture.betas), "optimizer.eps": architecture.eps,
        }

    def base_architecture(self, architecture: AdamwArchitecture) -> None:
        return None

    def mlp(self, architecture: AdamwArchitecture) -> MlpArchitecture:
        return architecture.mlp

    def build_model(self, architecture: AdamwArchitecture, base_state: Mapping[str, torch.Tensor] | None) -> nn.Module:
        return architecture.build()

    def model_tensors(self, state: Mapping[str, torch.Tensor], architecture: AdamwArchitecture) -> dict[str, torch.Tensor]:
        """The parameters, exactly (the moments are not in a model file)."""
        if set(state) != {name for name, _ in architecture.param_shapes}:
            raise KeyError(f"tensors {sorted(state)} are not the parameters of {architecture.to_dict()}")
        return {"weights": flatten({k: v.double() for k, v in state.items()}, architecture.param_shapes)}

    def trained_shapes(self, architecture: AdamwArchitecture) -> Shapes:
        return architecture.param_shapes

    def replace_after(self, step: AdamwStep, after: Mapping[str, torch.Tensor]) -> AdamwStep:
        shapes = step.architecture.param_shapes
        count = float(after["t_after"].reshape(-1)[0])
        return replace(
            step,
            weights_after=unflatten(after["w_after"], shapes),
            exp_avg_after=unflatten(after["m_after"], shapes),
            exp_avg_sq_after=unflatten(after["v_after"], shapes),
            step_count=int(count),
        )

    def load_after(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: AdamwStep) -> None:
        """The weights into the model; the moments into the optimizer's ``exp_avg`` and
        ``exp_avg_sq`` (its dtype) and, exactly, into the float64 copies capture reads; the
        step count into its ``step``."""
        load_parameters(model, step.weights_after)
        moments = {"exp_avg": step.exp_avg_after, "exp_avg_sq": step.exp_avg_sq_after}
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                state = optimizer.state[parameter]
                state["step"] = torch.tensor(float(step.step_count), dtype=torch.float32)
                for key, exact in MOMENTS.items():
                    state[key] = moments[key][name].to(parameter.dtype).clone()
                    state[exact] = moments[key][name].to(torch.float64).clone()

    def backprop(self, architecture: AdamwArchitecture, batch_size: int, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Z_l, the weight gradients G_l and the back-propagated products B_l (l > 0)."""
        return backprop_products(architecture, batch_size, named)


    def reference_after(self, step: AdamwStep) -> dict[str, torch.Tensor]:
        """m, v and the step count (not W_t+1: :meth:`StepKind.reference_after`)."""
        named = {tensor.name: tensor.values for tensor in self.encode(step)}
        reference = adamw_reference(step.architecture, step.batch_size, step.learning_rate, named)
        return {name: reference[name] for name in ("m_after", "v_after", "t_after")}

ADAMW = AdamwKind()
