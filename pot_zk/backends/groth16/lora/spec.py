"""The parameters of one exactly proven LoRA step: :class:`Groth16LoraSpec` (the statement is
:class:`~pot_zk.backends.groth16.lora.statement.Groth16LoraStatement`).

A ReLU MLP with frozen base weights (``dims``, torch's nn.Linear order per layer) and adapters
A (rank x in), B (out x rank) of one rank and alpha on the layers ``adapted`` (layer numbers
0..L-1, as :class:`pot_zk.kinds.lora.step.LoraArchitecture`). The adapters' scaling s = alpha / rank is
the integer ``sigma = round_half_away(s * 2**param_scale)``; the update constant is
``c = 2 * learning_rate * s / (batch_size * d_out)``, as ``c_fix`` at ``param_scale`` bits.
Fixed point and bounds as for SGD (pot_zk.backends.groth16.sgd.spec).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Mapping

from pot_zk.backends.groth16.statement import BACKEND, Groth16Statement, is_int, offsets_of, round_half_away, strict_int
from pot_zk.exceptions import ConfigurationError

LORA_CIRCUIT_VERSION = "groth16-lora/2"
LORA_CE_CIRCUIT_VERSION = "groth16-lora-ce/2"
VERSIONS = {"mse": LORA_CIRCUIT_VERSION, "cross_entropy": LORA_CE_CIRCUIT_VERSION}
"""The circuit version of each loss the LoRA circuit states."""


@dataclass(frozen=True)
class Groth16LoraSpec(Groth16Statement):
    """One exact SGD step on the LoRA adapters of a frozen ReLU MLP (MSE or softmax cross-entropy loss)."""

    kind: ClassVar[str] = "lora"
    losses: ClassVar[tuple[str, ...]] = tuple(VERSIONS)
    public_names: ClassVar[tuple[str, ...]] = ("w_before", "batch", "w_after", "base")
    """Commitments in public-input order: adapters before, batch, adapters after, base."""
    signal_names: ClassVar[Mapping[str, str]] = {"w_before": "a_before", "x": "x", "y": "y", "w_after": "a_after", "base": "base"}

    dims: tuple[int, ...]
    adapted: tuple[int, ...]
    rank: int
    alpha: float
    batch_size: int
    learning_rate: float
    scale: int = 12
    param_scale: int = 20
    value_bits: int | None = None
    """None: the statement's own (:meth:`default_value_bits`)."""
    quotient_bits: int = 24
    circuit_version: str | None = None
    """None: the loss's own (:data:`VERSIONS`)."""
    loss: str = field(default="mse", metadata={"setting": False})
    """A hyper-parameter of the training (like ``dims``), not a fixed-point setting."""
    rate_public: bool = field(default=False, metadata={"setting": False})
    takes_schedule: ClassVar[bool] = True
    """The learning rate is each step's public input, up to ``learning_rate`` (a schedule's
    statement; ``"rate": "public"`` in its dict), not a constant of the circuit."""

    def __post_init__(self) -> None:
        if self.loss not in VERSIONS:
            raise ConfigurationError(f"the groth16 LoRA circuit states losses {list(VERSIONS)}, not {self.loss!r}", key="model.loss")
        if self.circuit_version is None:
            object.__setattr__(self, "circuit_version", self.default_circuit_version())
        if self.value_bits is None:
            object.__setattr__(self, "value_bits", self.default_value_bits())
        self._check_common()
        object.__setattr__(self, "adapted", tuple(self.adapted))
        layers = self.num_layers
        if not self.adapted or list(self.adapted) != sorted(set(self.adapted)) or not all(is_int(l) and 0 <= l < layers for l in self.adapted):
            raise ConfigurationError(f"adapted must be distinct increasing layer numbers in 0..{layers - 1}, not {list(self.adapted)}", key="adapted")
        if not (is_int(self.rank) and self.rank >= 1):
            raise ConfigurationError(f"rank must be an integer >= 1, not {self.rank!r}", key="rank")
        if not (isinstance(self.alpha, float) and math.isfinite(self.alpha) and self.alpha > 0):
            raise ConfigurationError(f"alpha must be a finite float > 0, not {self.alpha!r}", key="alpha")
        if self.sigma < 1:
            raise ConfigurationError(f"alpha / rank rounds to 0 at param_scale={self.param_scale}", key="alpha")
        self._check_constants()
        if self.loss == "cross_entropy":
            self._check_labels()

    @property
    def expected_version(self) -> str:
        return VERSIONS[self.loss]

    def default_circuit_version(self) -> str:
        return VERSIONS[self.loss]

    @property
    def architecture(self) -> Any:
        """The step kind's :class:`~pot_zk.kinds.lora.step.LoraArchitecture` (imported here)."""
        from pot_zk.kinds.lora.step import LoraArchitecture
        from pot_zk.kinds.mlp import MlpArchitecture

        return LoraArchitecture(MlpArchitecture(self.dims, loss=self.loss), self.adapted, self.rank, self.alpha)

    def input_sizes(self) -> dict[str, int]:
        adapters = self.num_adapter_params
        return {"w_before": adapters, "batch": self.num_batch_values, "w_after": adapters, "base": self.num_base_params}

    @property
    def scaling(self) -> Fraction:
        return Fraction(self.alpha) / self.rank

    @property
    def sigma(self) -> int:
        """alpha / rank as an integer at ``param_scale`` bits."""
        return round_half_away(self.scaling * 2**self.param_scale)

    @property
    def step_constant(self) -> Fraction:
        """c = 2 lr s / (N d_out) (mse) or lr s / N (cross_entropy): c times the backward pass from
        the output delta is lr times the gradient of the mean loss (s = alpha / rank)."""
        if self.loss == "cross_entropy":
            return Fraction(self.learning_rate) * self.scaling / self.batch_size
        return 2 * Fraction(self.learning_rate) * self.scaling / (self.batch_size * self.dims[-1])

    @property
    def base_shapes(self) -> list[tuple[int, ...]]:
        shapes: list[tuple[int, ...]] = []
        for layer in range(self.num_layers):
            shapes += [(self.dims[layer + 1], self.dims[layer]), (self.dims[layer + 1],)]
        return shapes

    @property
    def adapter_shapes(self) -> list[tuple[int, ...]]:
        """Per adapted layer: A (rank x in), then B (out x rank)."""
        shapes: list[tuple[int, ...]] = []
        for layer in self.adapted:
            shapes += [(self.rank, self.dims[layer]), (self.dims[layer + 1], self.rank)]
        return shapes

    @property
    def num_base_params(self) -> int:
        return sum(math.prod(shape) for shape in self.base_shapes)

    @property
    def num_adapter_params(self) -> int:
        return sum(math.prod(shape) for shape in self.adapter_shapes)

    @property
    def base_offsets(self) -> list[int]:
        return offsets_of(self.base_shapes)

    @property
    def adapter_offsets(self) -> list[int]:
        return offsets_of(self.adapter_shapes)

    def update_bound(self) -> int:
        """An upper bound on |c_fix * GA| and |c_fix * GB|, the products the update rounds."""
        v = 2 ** (self.value_bits - 1)
        q = 2 ** (self.quotient_bits - 1)
        worst = 0
        for layer in self.adapted:
            activation = v if layer == 0 else q
            delta = q + v if layer == self.num_layers - 1 else q
            worst = max(worst, self.batch_size * q * activation, self.batch_size * delta * q)  # p^T @ h, delta^T @ u
        return self.c_fix * worst

    def accumulator_bound(self) -> int:
        """An upper bound on |every integer the step computes| for inputs in range, except the
        update products (:meth:`update_bound`)."""
        v = 2 ** (self.value_bits - 1)
        q = 2 ** (self.quotient_bits - 1)
        n, r, shift = self.batch_size, self.rank, 2**self.scale
        worst = 0
        for layer in range(self.num_layers):
            fan_in, fan_out = self.dims[layer], self.dims[layer + 1]
            activation = v if layer == 0 else q
            delta = q + v if layer == self.num_layers - 1 else q
            worst = max(
                worst,
                fan_in * activation * v + (3 * q + v) * shift,  # forward (z - b - adapter term) * S
                r * q * v,  # u @ B^T, P @ A
                self.sigma * q,  # scaled adapter terms
                fan_out * delta * v,  # delta @ B, delta @ W0
                n * q * activation,  # P^T @ h
                n * delta * q,  # delta^T @ u
            )
        return worst

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "backend": BACKEND,
            "circuit_version": self.circuit_version,
            "architecture": {
                "base": {"dims": list(self.dims), "activation": "relu", "loss": self.loss},
                "adapted": list(self.adapted),
                "rank": self.rank,
                "alpha": self.alpha,
            },
            **self._fixed_point_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Groth16LoraSpec":
        try:
            architecture = cls._check_header(data)
            return cls(
                dims=tuple(strict_int(d) for d in architecture["base"]["dims"]),
                adapted=tuple(strict_int(l) for l in architecture["adapted"]),
                rank=strict_int(architecture["rank"]),
                alpha=float(architecture["alpha"]),
                loss=str(architecture["base"].get("loss", "mse")),
                **cls._fixed_point_fields(data),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigurationError(f"malformed groth16 lora spec: {exc!r}", key="circuit") from exc
