"""The parameters of one exactly proven SGD step: :class:`Groth16SgdSpec` (the statement is
:class:`~pot_zk.backends.groth16.sgd.statement.Groth16SgdStatement`).

A spec fixes everything the circuit depends on (architecture, batch size, learning rate and
the fixed-point layout). ``circuit_id()`` is the SHA-256 of its canonical JSON, so another
learning rate, shape or bound is another circuit with other keys.

Fixed point (docs/groth16.md): every value is an integer at ``scale`` bits; weights, batch
values and the weights after the step lie in the signed range of ``value_bits`` bits,
``[-2**(value_bits-1), 2**(value_bits-1))``; every rescaled quantity (pre-activations,
back-propagated deltas; the weight gradients are rounded only in the update) in the signed
range of ``quotient_bits`` bits. The
update constant ``c = 2 * learning_rate / (batch_size * d_out)`` (``loss="mse"``) or
``c = learning_rate / batch_size`` (``loss="cross_entropy"``: the output delta is the integer
softmax minus the one-hot label, :mod:`pot_zk.kinds.exact_softmax`) is the integer
``c_fix = round_half_away(c * 2**param_scale)``. A cross-entropy batch is X then the class
labels at ``scale`` bits (label k as ``k * 2**scale``, the encoding every backend commits), so
the largest label must fit ``value_bits``. MSE and cross-entropy statements have their own
circuit versions, hence their own circuit ids and keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Mapping

from pot_zk.backends.groth16.statement import BACKEND, Groth16Statement, offsets_of, strict_int
from pot_zk.exceptions import ConfigurationError

CIRCUIT_VERSION = "groth16-sgd/2"
CE_CIRCUIT_VERSION = "groth16-sgd-ce/2"
VERSIONS = {"mse": CIRCUIT_VERSION, "cross_entropy": CE_CIRCUIT_VERSION}
"""The circuit version of each loss the SGD circuit states."""
KIND = "sgd"


@dataclass(frozen=True)
class Groth16SgdSpec(Groth16Statement):
    """One exact SGD step of a ReLU MLP with MSE or softmax cross-entropy loss, proven with Groth16."""

    kind: ClassVar[str] = KIND
    losses: ClassVar[tuple[str, ...]] = tuple(VERSIONS)
    versions: ClassVar[Mapping[str, str]] = VERSIONS
    """The circuit version of each loss (a statement built on this one names its own)."""
    public_names: ClassVar[tuple[str, ...]] = ("w_before", "batch", "w_after")
    signal_names: ClassVar[Mapping[str, str]] = {"w_before": "w_before", "x": "x", "y": "y", "w_after": "w_after"}

    dims: tuple[int, ...]
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
            raise ConfigurationError(f"the groth16 SGD circuit states losses {list(VERSIONS)}, not {self.loss!r}", key="model.loss")
        if self.circuit_version is None:
            object.__setattr__(self, "circuit_version", self.default_circuit_version())
        if self.value_bits is None:
            object.__setattr__(self, "value_bits", self.default_value_bits())
        self._check_common()
        self._check_constants()
        if self.loss == "cross_entropy":
            self._check_labels()

    @property
    def expected_version(self) -> str:
        return self.versions[self.loss]

    def default_circuit_version(self) -> str:
        return self.versions[self.loss]

    @property
    def architecture(self) -> Any:
        """The step kind's :class:`~pot_zk.kinds.mlp.MlpArchitecture` (imported here: the prover
        program reads specs without importing torch)."""
        from pot_zk.kinds.mlp import MlpArchitecture

        return MlpArchitecture(self.dims, loss=self.loss)

    def input_sizes(self) -> dict[str, int]:
        return {"w_before": self.num_params, "batch": self.num_batch_values, "w_after": self.num_params}

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        """Per layer: weight (out x in), then bias (out,) -- torch's nn.Linear order."""
        shapes: list[tuple[int, ...]] = []
        for layer in range(self.num_layers):
            shapes += [(self.dims[layer + 1], self.dims[layer]), (self.dims[layer + 1],)]
        return shapes

    @property
    def num_params(self) -> int:
        return sum(math.prod(shape) for shape in self.param_shapes)

    @property
    def param_offsets(self) -> list[int]:
        """Where each tensor of ``param_shapes`` starts in the flat parameter vector."""
        return offsets_of(self.param_shapes)

    @property
    def step_constant(self) -> Fraction:
        """c = 2 * lr / (N * d_out) (mse) or lr / N (cross_entropy), exactly (lr is the binary
        value of the float): c times the backward pass from the output delta is lr times the
        gradient of the mean loss."""
        if self.loss == "cross_entropy":
            return Fraction(self.learning_rate) / self.batch_size
        return 2 * Fraction(self.learning_rate) / (self.batch_size * self.dims[-1])

    def accumulator_bound(self) -> int:
        """An upper bound on |every integer the step computes| for inputs in range, except the
        update products (:meth:`update_bound`) and the softmax's own integers (exact products
        below 2**89, bounded apart: :mod:`pot_zk.kinds.exact_softmax`)."""
        return max(max(forward, gradient, back) for forward, gradient, back, _ in self._layer_bounds())

    def update_bound(self) -> int:
        """An upper bound on |c_fix * GW| and |c_fix * gb|, the products the update rounds."""
        return max(update for *_, update in self._layer_bounds())

    def _layer_bounds(self) -> list[tuple[int, int, int, int]]:
        """Per layer: the forward accumulator (and z - b), the weight-gradient accumulator, the
        back-propagation accumulator and the update product, for inputs in range."""
        v = 2 ** (self.value_bits - 1)
        q = 2 ** (self.quotient_bits - 1)
        n = self.batch_size
        bounds = []
        delta = 2**self.scale if self.loss == "cross_entropy" else q + v  # output layer: p - S onehot, or z_L - y
        for layer in range(self.num_layers, 0, -1):
            fan_in, fan_out = self.dims[layer - 1], self.dims[layer]
            activation = v if layer == 1 else q
            gradient = n * delta * activation
            bounds.append((fan_in * activation * v + q * 2**self.scale, gradient, fan_out * delta * v, self.c_fix * max(gradient, n * delta)))
            delta = q
        return bounds

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "backend": BACKEND,
            "circuit_version": self.circuit_version,
            "architecture": {"dims": list(self.dims), "activation": "relu", "loss": self.loss},
            **self._fixed_point_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Groth16SgdSpec":
        try:
            architecture = cls._check_header(data)
            loss = str(architecture.get("loss", "mse"))
            return cls(dims=tuple(strict_int(d) for d in architecture["dims"]), loss=loss, **cls._fixed_point_fields(data))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigurationError(f"malformed groth16 sgd spec: {exc!r}", key="circuit") from exc
