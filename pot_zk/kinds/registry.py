"""Step kinds: which circuit spec proves a step, and how its witness file is read and written.

``"sgd"``: :class:`~pot_zk.kinds.sgd.circuit.SgdCircuitSpec` over a :class:`~pot_zk.kinds.sgd.step.TrainingStep`;
``"lora"``: :class:`~pot_zk.kinds.lora.circuit.LoraCircuitSpec` over a
:class:`~pot_zk.kinds.lora.step.LoraTrainingStep`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from pot_zk.kinds.sgd.circuit import SgdCircuitSpec
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.lora.step import LoraTrainingStep, load_lora_step, save_lora_step
from pot_zk.kinds.lora.circuit import LoraCircuitSpec
from pot_zk.kinds.spec_base import CircuitSpec
from pot_zk.kinds.sgd.step import TrainingStep, load_step, save_step

STEP_KINDS = ("sgd", "lora")


def circuit_spec_from_dict(data: Mapping[str, Any]) -> SgdCircuitSpec | LoraCircuitSpec:
    """The circuit spec a ``to_dict()`` came from, by its ``kind``."""
    kind = data.get("kind")
    if kind == "sgd":
        return SgdCircuitSpec.from_dict(data)
    if kind == "lora":
        return LoraCircuitSpec.from_dict(data)
    raise ConfigurationError(f"unknown circuit kind {kind!r}; expected one of {list(STEP_KINDS)}", key="circuit.kind")


def step_kind(step: TrainingStep | LoraTrainingStep) -> str:
    return "lora" if isinstance(step, LoraTrainingStep) else "sgd"


def spec_for_step(step: TrainingStep | LoraTrainingStep, **fixed_point: int) -> SgdCircuitSpec | LoraCircuitSpec:
    """The circuit spec that proves ``step`` (``fixed_point`` overrides scale, tolerance...)."""
    spec_type = LoraCircuitSpec if isinstance(step, LoraTrainingStep) else SgdCircuitSpec
    return spec_type(step.architecture, step.batch_size, step.learning_rate, **fixed_point)


def save_training_step(step: TrainingStep | LoraTrainingStep, path: Path) -> None:
    """Write a step's witness file (what ``ProofJob.witness_path`` points at)."""
    if isinstance(step, LoraTrainingStep):
        save_lora_step(step, path)
    else:
        save_step(step, path)


def load_training_step(spec: CircuitSpec, path: Path) -> TrainingStep | LoraTrainingStep:
    """Read the witness file of a step proven by ``spec``."""
    return load_lora_step(Path(path)) if spec.kind == "lora" else load_step(Path(path))
