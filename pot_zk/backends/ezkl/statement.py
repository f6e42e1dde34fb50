"""What the ``ezkl`` statements share (``backends/ezkl/{sgd,momentum,lora}.py``).

An ezkl statement is a frozen value that fully defines one check-the-update statement (a
:class:`~pot_zk.backends.base.Statement`): the ONNX graph, its hashed inputs (in instance
order, named like the fields of :class:`~pot_zk.kinds.encoding.StepCommitment`), the
fixed-point settings and the tolerance. Its ``circuit_id`` is a hash of ``to_dict()``, so
anything that changes the statement changes the circuit. The check graphs compute their
products with the step kinds' float reference (:mod:`pot_zk.kinds.reference`,
:mod:`pot_zk.kinds.lora.reference`).

Cross-entropy (``loss=cross_entropy``): ezkl's softmax looks exp up in a table at the scale of
its input, which with ``param_scale = 20`` would be 2**-20. So a cross-entropy statement takes
``param_scale = scale``, its constants are applied by :func:`scaled_product`, and the table
covers [-EXP_RANGE, 0], where :func:`~pot_zk.kinds.losses.clamped_softmax` keeps every exp
input (ezkl's prover does not terminate on a lookup outside its table).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import nn

from pot_zk.backends.base import check_step_matches
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.base import BatchStep, StepTensor
from pot_zk.kinds.losses import EXP_RANGE, gradient_scale, targets_per_sample
from pot_zk.kinds.reference import unpack, weight_gradients
from pot_zk.kinds.registry import STEP_KINDS


FIXED_POINT_FIELDS = ("scale", "param_scale", "decomp_base", "decomp_legs", "tolerance_ulps")
SETTINGS: Mapping[str, Any] = {"scale": 12, "param_scale": None, "decomp_base": 256, "decomp_legs": 4, "tolerance_ulps": 4}
"""The ezkl circuit settings (config group ``circuit``) and their defaults; ``param_scale``
None: the statement's own (20 for mse, ``scale`` for cross_entropy)."""


class FixedPointCheck:
    """Shared behaviour of the ezkl check-the-update statements (a mixin for frozen dataclasses
    with the fields ``architecture``, ``batch_size``, ``learning_rate`` and
    :data:`FIXED_POINT_FIELDS`, ClassVars ``kind``, ``input_names``, ``circuit_version``,
    ``architecture_type``, and ``check_module()``, the torch module whose output is the
    residual)."""

    backend: ClassVar[str] = "ezkl"
    """The prover backend whose statements these are (not part of ``to_dict()``: their dicts
    predate the field, and adding it would change every circuit id)."""
    zero_knowledge: ClassVar[bool] = True
    settings: ClassVar[Mapping[str, Any]] = SETTINGS

    @classmethod
    def create(cls, architecture: Any, batch_size: int, learning_rate: float, settings: Mapping[str, Any]):
        """The statement for these hyper-parameters and (validated, non-null) circuit settings."""
        return cls(architecture, batch_size, learning_rate, **settings)

    def write_onnx(self, path: Path) -> None:
        """Export the check graph (float32 example rows of the input sizes) to ``path``."""
        sizes = self.input_sizes()
        export_graph(self.check_module(), tuple(torch.zeros(1, sizes[name]) for name in self.input_names), path, self.input_names)

    def reference_output(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The float64 value of the circuit's output on flat inputs in input order."""
        module = self.check_module().double()
        with torch.no_grad():
            return module(*(x.reshape(1, -1).double() for x in inputs)).reshape(-1)

    def encode(self, step: BatchStep) -> list[StepTensor]:
        """The step's canonical encoding (its kind's), after checking the step is this statement's."""
        check_step_matches(self, step)
        return STEP_KINDS.get(self.kind).encode(step)

    def residual(self, named: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The check graph's output in float64: W_t+1 minus the update (per input name)."""
        return self.reference_output([named[name] for name in self.input_names])

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
        if not 2 <= self.decomp_base <= 1 << 16 or not 1 <= self.decomp_legs <= 16:  # review51: decomp_legs 2**70 made verify compute 256**(2**70)
            raise ConfigurationError("decomp_base must be in 2..65536 and decomp_legs in 1..16", key="decomp_base")
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


def scaled_product(values: torch.Tensor, constant: float, bits: int) -> torch.Tensor:
    """``values * constant`` for a circuit whose constants have ``bits`` fractional bits: as
    is when ``constant`` is exact at ``bits``; else ``constant * 2**s`` (in [0.5, 1), so
    ~``bits`` significant bits survive), then times 2**-s in exact powers of two of at most
    ``bits`` bits each."""
    if float(constant * 2.0**bits).is_integer():
        return values * constant  # exact at ``bits``: one product
    shift = max(0, -math.floor(math.log2(constant)) - 1)
    out = values * (constant * 2.0**shift)
    while shift > 0:
        step = min(shift, bits)
        out = out * 2.0**-step
        shift -= step
    return out


class MlpCheck(FixedPointCheck):
    """Mixin of the full-MLP check specs (frozen dataclasses whose ``architecture`` has
    ``dims``, ``loss``, ``param_shapes`` and ``num_params``)."""

    def default_param_scale(self) -> int:
        return self.scale if self.cross_entropy else 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cross_entropy and self.param_scale != self.scale:
            raise ConfigurationError(
                f"a cross_entropy statement needs circuit.param_scale = circuit.scale ({self.scale}): ezkl's softmax "
                f"looks exp up at the scale of its input; got param_scale {self.param_scale}",
                key="circuit.param_scale",
            )

    def to_dict(self) -> dict[str, Any]:
        """A cross_entropy statement also names its exp clamp (``exp_range``); an mse one's dict
        is as it always was (same circuit ids)."""
        data = super().to_dict()
        if self.cross_entropy:
            data["exp_range"] = EXP_RANGE
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        spec = super().from_dict(data)
        if data.get("exp_range", EXP_RANGE if spec.cross_entropy else None) != (EXP_RANGE if spec.cross_entropy else None):
            raise ConfigurationError(
                f"this pot-zk proves cross_entropy statements with exp_range {EXP_RANGE} (and mse ones without), not {data.get('exp_range')!r}",
                key="circuit.exp_range",
            )
        return spec

    @property
    def cross_entropy(self) -> bool:
        return self.architecture.loss == "cross_entropy"

    @property
    def gradient_constant(self) -> float:
        """The factor that makes the backward pass the gradient of the mean loss."""
        return gradient_scale(self.architecture.loss, self.batch_size, self.architecture.dims[-1])

    @property
    def step_constant(self) -> float:
        return self.learning_rate * self.gradient_constant

    @property
    def lookup_range(self) -> tuple[int, int] | None:
        """The exp table's input range (fixed-point integers), for cross_entropy."""
        return (-EXP_RANGE * 2**self.scale, 0) if self.cross_entropy else None

    def batch_values(self) -> int:
        """How many values the batch input holds: X, then Y or the labels."""
        dims = self.architecture.dims
        return self.batch_size * (dims[0] + targets_per_sample(self.architecture.loss, dims[-1]))

    def unpack(self, w_before: torch.Tensor, batch: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        return unpack(self.architecture, self.batch_size, w_before, batch)

    def gradients(self, w_before: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The backward pass's weight gradients, in parameter order, as one ``(1, P)`` row."""
        return weight_gradients(self.architecture, self.batch_size, w_before, batch)
