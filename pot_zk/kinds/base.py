"""What a step kind is: the extension point for the kinds of training step pot-zk proves.

A :class:`StepKind` (``sgd``, ``lora``, ``momentum``, ``adamw``; registered in
:mod:`pot_zk.kinds.registry` under the ``kind`` string that step files, circuit specs and
prover requests carry) owns, for its kind of step:

* which steps are its: the model kind it trains (:attr:`StepKind.model_kind`, which
  :func:`pot_zk.kinds.lora.detect.detect_training` finds in a model) and the optimizers it
  takes (:meth:`StepKind.takes`, :mod:`pot_zk.kinds.optimizer`);
* capture from torch (:meth:`StepKind.capture`) and validation
  (:meth:`StepKind.validate`: names, shapes, dtype float64, finite values, learning rate);
* the canonical flat encoding (:meth:`StepKind.encode`: the step's tensors in circuit input
  order, ``w_before``, ``batch``, ``w_after`` and any constant input such as LoRA's ``base``),
  which every backend commits to and proves over;
* the witness file (:meth:`StepKind.save` / :meth:`StepKind.load`, safetensors with the kind
  in its metadata);
* the float64 reference: the products of its forward and backward pass
  (:meth:`StepKind.backprop`: what ``freivalds`` reveals, from :func:`pot_zk.kinds.mlp.backprop`),
  which backends' float statements build on, and the state after the step
  (:meth:`StepKind.reference_after`, which a user loop's step is checked against);
* what a run needs: the architecture from the model settings, the seeded model, the frozen
  base it starts from (if any) and the tensors of a saved model file that commitments bind.

A kind knows no backend: the statements that prove it live in ``pot_zk/backends/<backend>/<kind>.py``.

Steps themselves are frozen dataclasses with float64 tensors and the :class:`BatchStep`
behaviour (batch size, the batch's canonical encoding).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import nn

from pot_zk.exceptions import ConfigurationError, InvalidModelStateError, WitnessBuilderError
from pot_zk.kinds.dtypes import check_batch_dtype, weights_dtype
from pot_zk.kinds.losses import check_labels, target_shape
from pot_zk.kinds.mlp import MlpArchitecture, Shapes
from pot_zk.kinds.optimizer import OptimizerSettings


@dataclass(frozen=True)
class StepTensor:
    """One tensor of a step's canonical encoding: its input name, a label for messages, the
    flat float64 values."""

    name: str
    label: str
    values: torch.Tensor


@dataclass(frozen=True)
class ModelSettings:
    """The model a run trains, as configured (config group ``model``)."""

    kind: str
    dims: tuple[int, ...]
    loss: str = "mse"
    optimizer: OptimizerSettings = OptimizerSettings()
    lora_layers: tuple[int, ...] = (0,)
    lora_rank: int = 2
    lora_alpha: float = 4.0
    base_run: Path | None = None


class BatchStep:
    """What every captured step has: ``architecture``, ``learning_rate``, ``inputs``,
    ``targets`` (float64) and ``loss``; a subclass names its ``kind``."""

    kind: ClassVar[str]
    inputs: torch.Tensor
    targets: torch.Tensor
    learning_rate: float

    @property
    def batch_size(self) -> int:
        return int(self.inputs.shape[0])

    def flat_batch(self) -> torch.Tensor:
        """Canonical batch encoding: X row-major, then Y row-major."""
        return torch.cat([self.inputs.reshape(-1), self.targets.reshape(-1)])


def copy_tensor(tensor: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(tensor).detach().to(torch.float64).clone()


EXACT_STATE = "pot_zk_exact_"
"""The prefix of optimizer state entries an exact statement keeps in float64 beside torch's own
(which a float32 tensor cannot hold exactly); the user-loop observer keeps them float64 across
``optimizer.load_state_dict``, which casts every other floating-point entry to the parameter's dtype."""


def optimizer_tensor(tensor: torch.Tensor, key: str, name: str, parameter: torch.Tensor) -> torch.Tensor:
    """A float64 copy of the optimizer's state ``key`` of ``parameter`` (named ``name``);
    InvalidModelStateError when it is kept in float16 / bfloat16 while the parameter is not (a
    narrower copy rounds the state, so the step taken is not the declared one; torch keeps it in
    the parameter's dtype)."""
    if tensor.dtype in (torch.float16, torch.bfloat16) and tensor.dtype != parameter.dtype:
        raise InvalidModelStateError(
            f"the optimizer's {key} of {name} is {str(tensor.dtype).removeprefix('torch.')}: the declared step keeps its state in float32 "
            "or float64, which a narrower copy rounds; keep the optimizer's state in the parameters' dtype",
            expected="float32 or float64", actual=str(tensor.dtype), keys=[name],
        )
    return copy_tensor(tensor)


def copy_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: copy_tensor(value) for key, value in state.items()}


def check_learning_rate(learning_rate: Any) -> None:
    if not (isinstance(learning_rate, float) and math.isfinite(learning_rate) and learning_rate > 0):
        raise InvalidModelStateError("learning rate must be a finite number > 0", expected="> 0", actual=learning_rate)


def check_state(name: str, state: Mapping[str, torch.Tensor], shapes: Shapes, what: str) -> None:
    """``state`` holds exactly the tensors of ``shapes``, float64, finite (``what`` names the
    architecture in messages)."""
    expected = dict(shapes)
    if set(state) != set(expected):
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise InvalidModelStateError(  # review27: the message named neither (an extra buffer, say)
            f"{name} keys do not match the {what}" + (f": missing {missing}" if missing else "") + (f"; not in it {unexpected}" if unexpected else ""),
            expected=sorted(expected),
            actual=sorted(state),
            missing=sorted(set(expected) - set(state)),
            unexpected=sorted(set(state) - set(expected)),
        )
    for key, shape in expected.items():
        tensor = state[key]
        if tuple(tensor.shape) != shape:
            raise InvalidModelStateError(f"{name}[{key}] has the wrong shape", expected=list(shape), actual=list(tensor.shape), key=key)
        if tensor.dtype != torch.float64:
            raise InvalidModelStateError(f"{name}[{key}] is not float64", expected="torch.float64", actual=str(tensor.dtype), key=key)
        if not torch.isfinite(tensor).all():
            raise InvalidModelStateError(f"{name}[{key}] contains NaN or Inf", expected="finite values", actual="NaN/Inf", key=key)


def check_batch(step: BatchStep, dims: Sequence[int], loss: str = "mse") -> None:
    """The batch is N x d_in inputs and the targets of ``loss`` (N x d_out values, or N class
    labels in 0..d_out-1), float64, finite."""
    n = step.inputs.shape[0] if step.inputs.dim() == 2 else -1
    if n < 1 or tuple(step.inputs.shape) != (n, dims[0]) or tuple(step.targets.shape) != target_shape(loss, n, dims[-1]):
        targets = ", ".join(["N", *map(str, target_shape(loss, 1, dims[-1])[1:])])
        raise WitnessBuilderError(  # review27: the message gave no shapes
            f"batch shapes do not match the architecture: inputs {tuple(step.inputs.shape)} and targets {tuple(step.targets.shape)}, "
            f"the statement takes inputs (N, {dims[0]}) and targets ({targets}) for the {loss} loss",
            expected={"inputs": ["N", dims[0]], "targets": ["N", *target_shape(loss, 1, dims[-1])[1:]], "loss": loss},
            actual={"inputs": list(step.inputs.shape), "targets": list(step.targets.shape)},
        )
    for name, tensor in (("inputs", step.inputs), ("targets", step.targets)):
        if tensor.dtype != torch.float64:
            raise WitnessBuilderError(f"batch {name} are not float64", expected="torch.float64", actual=str(tensor.dtype))
        if not torch.isfinite(tensor).all():
            raise WitnessBuilderError(f"batch {name} contain NaN or Inf", expected="finite values", actual="NaN/Inf")
    if loss == "cross_entropy":
        check_labels(step.targets, dims[-1])


class StepKind(ABC):
    """One kind of training step. Subclasses fill in the abstract methods; the witness file
    format follows from ``file_tensors`` / ``from_file``."""

    name: ClassVar[str]
    """The ``kind`` string of step files, circuit specs and prover requests."""
    model_kind: ClassVar[str] = "sgd"
    """The ``model.kind`` it trains, which :func:`~pot_zk.kinds.lora.detect.detect_training`
    finds in a torch model (``sgd``: every parameter of the MLP; ``lora``: adapters)."""
    optimizer_words: ClassVar[str] = "plain torch.optim.SGD (no momentum, no weight decay)"
    """The optimizers it takes (:meth:`takes`), in words."""
    step_type: ClassVar[type]
    architecture_type: ClassVar[type]
    constant_inputs: ClassVar[tuple[str, ...]] = ()
    """Encoded tensors that stay the same for a whole run (committed once, e.g. LoRA's base)."""
    chained_inputs: ClassVar[tuple[tuple[str, str], ...]] = (("w_before", "w_after"),)
    """(before, after) pairs of encoded state: each step's ``before`` is the previous step's
    ``after``. The first pair is the weights; any other is optimizer state (a momentum step's
    velocity, Adam's moments and step count), zero before a run's first step as torch creates it."""
    optimizer_state: ClassVar[str] = ""
    """The optimizer state a step starts from, in words (``the velocity V_t``); "" for none."""
    step_count_input: ClassVar[str | None] = None
    """The one-value encoded tensor holding the optimizer's step count after the step
    (``t_after``), which ``verify`` pins to the step's number + 1; None when the kind counts none."""
    exact_step_words: ClassVar[str] = "within float rounding of yours"
    """How the exact statement's integer step compares with the float step a user's loop took
    (the run summary says it once)."""
    file_tensor_names: ClassVar[tuple[str, ...]]
    """The tensors of the witness file (their names are part of its format)."""
    state_words: ClassVar[str] = "weights"
    """What a step's committed state is, in words (``weights and velocity``...)."""

    def takes(self, optimizer: OptimizerSettings) -> bool:
        """Whether a model of :attr:`model_kind` trained with ``optimizer`` makes this kind's
        steps (plain SGD unless the kind says otherwise); one kind of a model kind takes it."""
        return optimizer == OptimizerSettings()

    @abstractmethod
    def capture(self, model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor) -> BatchStep:
        """Run one optimizer step on ``model`` and capture it, validated."""

    def from_models(self, model_before: nn.Module, model_after: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, learning_rate: float) -> BatchStep:
        """The step that took ``model_before`` to ``model_after`` on the batch, validated (the
        seed's ``auto_prove_training_step``); a kind that cannot tell says so."""
        raise InvalidModelStateError(f"{self.name} steps cannot be built from two models; capture them instead", expected="capture", actual=self.name)

    @abstractmethod
    def validate(self, step: BatchStep) -> None:
        """Reject a malformed step before any witness or proof work starts."""

    @abstractmethod
    def encode(self, step: BatchStep) -> list[StepTensor]:
        """The step's flat float64 tensors in circuit input order."""

    @abstractmethod
    def file_tensors(self, step: BatchStep) -> dict[str, torch.Tensor]:
        """The witness file's tensors, named as in ``file_tensor_names``."""

    @abstractmethod
    def from_file(self, architecture: Any, learning_rate: float, tensors: Mapping[str, torch.Tensor]) -> BatchStep:
        """A step from a witness file's tensors (sizes already checked), not yet validated."""

    @abstractmethod
    def file_sizes(self, architecture: Any) -> dict[str, int]:
        """How many values each witness-file tensor holds for ``architecture``."""

    @abstractmethod
    def architecture(self, model: ModelSettings) -> Any:
        """The architecture the model settings describe (ConfigurationError if incomplete)."""

    def config_values(self, architecture: Any) -> dict[str, Any]:
        """The configuration (dotted keys: ``model.*``, ``optimizer.*``) whose model settings
        give ``architecture`` back through :meth:`architecture`: how a run of a model pot-zk did
        not build (a loop of your own) declares it. A kind without them cannot be declared so."""
        raise ConfigurationError(f"{self.name} steps cannot be declared from a model in your own loop", key="model.kind")

    @abstractmethod
    def base_architecture(self, architecture: Any) -> MlpArchitecture | None:
        """The frozen base MLP that a base run must supply, or None (nothing frozen)."""

    @abstractmethod
    def mlp(self, architecture: Any) -> MlpArchitecture:
        """The MLP that maps the batch inputs to outputs (its dims fix the data shapes)."""

    @abstractmethod
    def build_model(self, architecture: Any, base_state: Mapping[str, torch.Tensor] | None) -> nn.Module:
        """The model to train (call after seeding torch), on the base run's weights if any."""

    @abstractmethod
    def model_tensors(self, state: Mapping[str, torch.Tensor], architecture: Any) -> dict[str, torch.Tensor]:
        """A saved model's tensors as encoded: ``"weights"`` (what ``w_before``/``w_after``
        commit) and each constant input by name."""

    @abstractmethod
    def trained_shapes(self, architecture: Any) -> Shapes:
        """The model parameters a step changes, by parameter name, in canonical order."""

    def file_shapes(self, architecture: Any) -> Shapes:
        """The tensors of a saved model of ``architecture`` (what :meth:`model_tensors` takes
        apart): the trained parameters, unless the kind keeps more (a frozen base)."""
        return self.trained_shapes(architecture)

    @abstractmethod
    def replace_after(self, step: BatchStep, after: Mapping[str, torch.Tensor]) -> BatchStep:
        """``step`` with the state after it replaced: ``after`` holds flat float64 tensors by
        encoding name (``w_after``, and e.g. ``v_after``), as an exact statement computed them."""

    @abstractmethod
    def load_after(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: BatchStep) -> None:
        """Set ``model``'s trained parameters (and the optimizer's state, e.g. a velocity) to the
        state after ``step``."""

    @abstractmethod
    def backprop(self, architecture: Any, batch_size: int, named: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The products of the step's forward and backward pass (float64) from its canonical
        encoding ``named``, by the names the ``freivalds`` certificate reveals them under."""

    @abstractmethod
    def reference_after(self, step: BatchStep) -> dict[str, torch.Tensor]:
        """The declared step's state after it, computed in float64 from the step's own encoded
        state before it and its batch with tensor arithmetic only (:func:`pot_zk.kinds.mlp.backprop`,
        no module of the model that took the step): flat tensors by encoding name. It holds the
        tensors that are well-conditioned functions of the gradient: AdamW's leaves ``w_after``
        out (m / (sqrt(v) + eps) turns float32 round-off of a gradient near eps into a large
        change; its moments pin the gradient). A user loop's step is checked against it."""

    def save(self, step: BatchStep, path: Path) -> None:
        """Write the step's witness file (safetensors, atomically) with its metadata."""
        from safetensors.torch import save_file

        from pot_zk.core.atomic import atomic_path

        meta = {"kind": self.name, "architecture": json.dumps(step.architecture.to_dict()), "learning_rate": repr(step.learning_rate)}
        with atomic_path(Path(path)) as tmp:
            save_file({k: v.contiguous() for k, v in self.file_tensors(step).items()}, str(tmp), metadata=meta)

    def load(self, path: Path) -> BatchStep:
        """Read and validate a witness file of this kind."""
        return self.parse(Path(path), *read_step_file(Path(path)))

    def parse(self, path: Path, meta: Mapping[str, str], tensors: Mapping[str, torch.Tensor]) -> BatchStep:
        """The validated step of a witness file read from ``path``."""
        required = set(self.file_tensor_names)
        if required - set(tensors) or meta.get("kind", "sgd") != self.name or "architecture" not in meta or "learning_rate" not in meta:
            raise WitnessBuilderError(
                f"{path} is not a complete {self.name} step file",
                expected=sorted(required) + [f"metadata: kind={self.name}, architecture, learning_rate"],
                actual=sorted(tensors) + sorted(meta),
            )
        try:
            architecture = self.architecture_type.from_dict(json.loads(meta["architecture"]))
            sizes = self.file_sizes(architecture)
            if any(tensors[key].numel() != size for key, size in sizes.items()):
                raise ValueError(f"tensor sizes {[tensors[k].numel() for k in sizes]} differ from the architecture's {list(sizes.values())}")
            learning_rate = float(meta["learning_rate"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WitnessBuilderError(f"{path} has malformed {self.name} metadata: {exc}", expected=f"{self.name} architecture", actual=dict(meta)) from exc
        weights = {key: tensors[key] for key in self.file_tensor_names if key not in ("x", "y")}
        check_batch_dtype(tensors["x"], tensors["y"], weights_dtype({"step file": weights}))
        step = self.from_file(architecture, learning_rate, {key: copy_tensor(value) for key, value in tensors.items()})
        self.validate(step)
        return step


def load_parameters(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model``'s parameters of the same names (in place, their dtypes)."""
    with torch.no_grad():
        for name, values in state.items():
            parameter = model.get_parameter(name)
            parameter.copy_(values.to(parameter.dtype))


def read_step_file(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A step file's metadata and tensors; WitnessBuilderError if it is not a safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises several unrelated types on a bad file
        raise WitnessBuilderError(f"cannot read step file {path}: {exc}", expected="a pot-zk step file (safetensors)", actual=str(path)) from exc
    return meta, tensors
