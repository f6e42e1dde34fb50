"""What every circuit spec (SGD, LoRA) offers the prover and the verifier.

A circuit spec is a frozen value that fully defines one check-the-update statement: the ONNX
graph, its hashed inputs (in instance order, named like the fields of
:class:`~pot_zk.kinds.encoding.StepCommitment`), the fixed-point settings and the tolerance. Its
``circuit_id`` is a hash of ``to_dict()``, so anything that changes the statement changes the
circuit.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol, Sequence

import torch
from torch import nn

from pot_zk.exceptions import ConfigurationError, WitnessBuilderError
from pot_zk.kinds.base import StepTensor


class CircuitSpec(Protocol):
    kind: ClassVar[str]
    backend: ClassVar[str]
    input_names: ClassVar[tuple[str, ...]]
    batch_size: int
    learning_rate: float
    scale: int
    param_scale: int
    decomp_base: int
    decomp_legs: int
    tolerance_ulps: int

    @property
    def value_bound(self) -> float: ...

    @property
    def num_outputs(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...

    def circuit_id(self) -> str: ...

    def input_sizes(self) -> dict[str, int]: ...

    def write_onnx(self, path: Path) -> None: ...

    def step_inputs(self, step: Any) -> list[StepTensor]: ...

    def reference_output(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor: ...

    def calibration_inputs(self) -> list[torch.Tensor]: ...

    @property
    def lookup_range(self) -> tuple[int, int] | None: ...


FIXED_POINT_FIELDS = ("scale", "param_scale", "decomp_base", "decomp_legs", "tolerance_ulps")


class FixedPointCheck:
    """Shared behaviour of the check-the-update specs (a mixin for frozen dataclasses with the
    fields of :class:`CircuitSpec`, plus ``circuit_version``, ``architecture_type``,
    ``encode(step)`` (its step kind's canonical encoding) and ``check_module()``, the torch module
    whose output is the residual)."""

    backend: ClassVar[str] = "ezkl"
    """The prover backend whose statements these are (not part of ``to_dict()``: their dicts
    predate the field, and adding it would change every circuit id)."""

    def write_onnx(self, path: Path) -> None:
        """Export the check graph (float32 example rows of the input sizes) to ``path``."""
        sizes = self.input_sizes()
        export_graph(self.check_module(), tuple(torch.zeros(1, sizes[name]) for name in self.input_names), path, self.input_names)

    def reference_output(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The float64 value of the circuit's output on flat inputs in input order."""
        module = self.check_module().double()
        with torch.no_grad():
            return module(*(x.reshape(1, -1).double() for x in inputs)).reshape(-1)

    def step_inputs(self, step: Any) -> list[StepTensor]:
        """The step's canonical encoding (its kind's), after checking the step is this spec's."""
        if (
            getattr(step, "kind", None) != self.kind
            or step.architecture != self.architecture
            or step.batch_size != self.batch_size
            or step.learning_rate != self.learning_rate
        ):
            architecture = getattr(step, "architecture", None)
            raise WitnessBuilderError(
                "the step does not match the circuit spec",
                expected={"kind": self.kind, "architecture": self.architecture.to_dict(), "batch_size": self.batch_size, "learning_rate": self.learning_rate},
                actual={
                    "kind": getattr(step, "kind", type(step).__name__),
                    "architecture": architecture.to_dict() if architecture is not None else None,
                    "batch_size": getattr(step, "batch_size", None),
                    "learning_rate": getattr(step, "learning_rate", None),
                },
            )
        return self.encode(step)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "circuit_version": self.circuit_version,
            "architecture": self.architecture.to_dict(),
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            **{name: getattr(self, name) for name in FIXED_POINT_FIELDS},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        if data.get("kind") != cls.kind or data.get("circuit_version") != cls.circuit_version:
            raise ConfigurationError(
                f"not an {cls.circuit_version} circuit spec: kind={data.get('kind')!r} version={data.get('circuit_version')!r}",
                key="circuit",
            )
        try:
            return cls(
                architecture=cls.architecture_type.from_dict(data["architecture"]),
                batch_size=int(data["batch_size"]),
                learning_rate=float(data["learning_rate"]),
                **{name: int(data[name]) for name in FIXED_POINT_FIELDS},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"malformed circuit spec: {exc}", key="circuit") from exc

    def default_param_scale(self) -> int:
        """The ``param_scale`` of a spec made with ``param_scale=None``."""
        return 20

    def __post_init__(self) -> None:
        if self.param_scale is None:
            object.__setattr__(self, "param_scale", self.default_param_scale())
        if self.batch_size < 1:
            raise ConfigurationError("batch_size must be >= 1", key="batch_size")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigurationError("learning_rate must be > 0", key="learning_rate")
        if not 1 <= self.scale <= 24 or not 1 <= self.param_scale <= 30:
            raise ConfigurationError("scale must be in 1..24 and param_scale in 1..30", key="scale")
        if self.tolerance_ulps < 0:
            raise ConfigurationError("tolerance_ulps must be >= 0", key="tolerance_ulps")

    @property
    def value_bound(self) -> float:
        """Largest magnitude accepted for any weight or batch value (see docs/proofs.md).

        Intermediate products are range-checked by ezkl's decomposition
        (``decomp_base ** decomp_legs / 2`` at ``scale`` bits); inputs are kept a factor of
        2**8 below that so sums of products stay in range. The prover's decode check catches
        whatever gets past this bound.
        """
        return (self.decomp_base**self.decomp_legs / 2) / 2 ** (self.scale + 8)

    @property
    def lookup_range(self) -> tuple[int, int] | None:
        """The input range of the circuit's lookup tables (fixed-point integers); None: it has none."""
        return None

    def canonical_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def circuit_id(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def calibration_inputs(self) -> list[torch.Tensor]:
        """Deterministic calibration data derived from the spec alone (so a verifier re-derives
        exactly the prover's circuit): uniform values in [-1, 1] in input order, and a
        ``w_after`` that makes the residual zero."""
        generator = torch.Generator().manual_seed(int(self.circuit_id()[:8], 16))
        sizes = self.input_sizes()
        values = {
            name: torch.rand(sizes[name], generator=generator, dtype=torch.float64) * 2 - 1
            for name in self.input_names
            if name != "w_after"
        }
        values["w_after"] = values["w_before"]
        residual = self.reference_output([values[name] for name in self.input_names])
        values["w_after"] = values["w_before"] - residual
        return [values[name] for name in self.input_names]


def export_graph(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, input_names: Sequence[str]) -> None:
    """Export a check graph with one ``residual`` output."""
    with warnings.catch_warnings():
        # the TorchScript exporter is the one that needs no extra dependency (onnxscript)
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning)
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=list(input_names),
            output_names=["residual"],
            opset_version=17,
            dynamo=False,
        )
