"""What the zk-groth16 statements share: the field, the accumulator bound, the fixed-point
checks of the SGD and LoRA specs (:class:`FixedPointStatement`) and small helpers."""

from __future__ import annotations

import hashlib
import json
import math
from fractions import Fraction
from typing import Any, ClassVar, Mapping

from pot_zk.exceptions import ConfigurationError

BACKEND = "groth16"

FIELD_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617
"""p, the BN254 scalar field of circom, groth16py and light-poseidon."""

ACCUMULATOR_BITS = 62
"""Every integer the step computes (products, sums, scaled gradients) stays below
2**ACCUMULATOR_BITS in magnitude for any inputs in range: exact in int64, and far below the
BN254 field modulus (~2**253.6), so no circuit value wraps around."""

UPDATE_BITS = 200
"""The update products c_fix * gradient (exact Python integers in the reference) stay below
2**UPDATE_BITS: the offset the circuit's update hint adds before taking a remainder, and far
below half the field modulus, so the update equation holds over the integers."""


def round_half_away(value: Fraction) -> int:
    """Round a rational to the nearest integer, halves away from zero."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


class FixedPointStatement:
    """What the zk-groth16 specs share (a mixin for frozen dataclasses with the fields
    ``dims``, ``batch_size``, ``learning_rate``, ``scale``, ``param_scale``, ``value_bits``,
    ``quotient_bits``, ``circuit_version`` and a ClassVar ``expected_version``)."""

    losses: ClassVar[tuple[str, ...]] = ("mse",)
    """The losses the statement's circuit states."""

    def _check_common(self) -> None:
        object.__setattr__(self, "dims", tuple(self.dims))
        if self.circuit_version != self.expected_version:
            raise ConfigurationError(
                f"unknown circuit version {self.circuit_version!r}; this code builds {self.expected_version!r}",
                key="circuit_version",
            )
        if len(self.dims) < 2 or not all(is_int(d) and d >= 1 for d in self.dims):
            raise ConfigurationError(f"dims must be two or more widths >= 1, not {list(self.dims)}", key="dims")
        if not (is_int(self.batch_size) and self.batch_size >= 1):
            raise ConfigurationError(f"batch_size must be an integer >= 1, not {self.batch_size!r}", key="batch_size")
        if not (isinstance(self.learning_rate, float) and math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigurationError(f"learning_rate must be a finite float > 0, not {self.learning_rate!r}", key="learning_rate")
        for key, low, high in (("scale", 1, 24), ("param_scale", 1, 40), ("value_bits", 2, 32), ("quotient_bits", 2, 48)):
            value = getattr(self, key)
            if not (is_int(value) and low <= value <= high):
                raise ConfigurationError(f"{key} must be an integer in {low}..{high}, not {value!r}", key=key)
        if self.quotient_bits < self.value_bits:
            raise ConfigurationError("quotient_bits must be >= value_bits", key="quotient_bits")

    def _check_constants(self) -> None:
        if self.c_fix < 1:
            raise ConfigurationError(
                f"the update constant {float(self.step_constant):.3g} rounds to 0 at "
                f"param_scale={self.param_scale}; raise param_scale or the learning rate",
                key="param_scale",
            )
        worst = self.accumulator_bound()
        if worst >= 2**ACCUMULATOR_BITS:
            raise ConfigurationError(
                f"values in range could reach {worst.bit_length()} bits inside the step (limit {ACCUMULATOR_BITS}); "
                "lower value_bits, quotient_bits, the widths or the batch size",
                key="quotient_bits",
            )
        if self.update_bound() >= 2**UPDATE_BITS:
            raise ConfigurationError(
                f"the update products could reach {self.update_bound().bit_length()} bits (limit {UPDATE_BITS}); lower param_scale",
                key="param_scale",
            )

    @property
    def num_layers(self) -> int:
        return len(self.dims) - 1

    @property
    def input_names(self) -> tuple[str, ...]:
        """The committed tensors, in public-input order (the names of the run's commitments)."""
        return self.public_names

    @property
    def value_bound(self) -> float:
        """The largest magnitude of a committed value in real units: (2**(value_bits-1) - 1) / 2**scale."""
        return (2 ** (self.value_bits - 1) - 1) / 2**self.scale

    @property
    def num_batch_values(self) -> int:
        return self.batch_size * (self.dims[0] + self.dims[-1])

    @property
    def c_fix(self) -> int:
        """The update constant as an integer at ``param_scale`` bits."""
        return round_half_away(self.step_constant * 2**self.param_scale)

    def _fixed_point_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "scale": self.scale,
            "param_scale": self.param_scale,
            "value_bits": self.value_bits,
            "quotient_bits": self.quotient_bits,
        }

    @classmethod
    def _fixed_point_fields(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "batch_size": strict_int(data["batch_size"]),
            "learning_rate": float(data["learning_rate"]),
            "scale": strict_int(data["scale"]),
            "param_scale": strict_int(data["param_scale"]),
            "value_bits": strict_int(data["value_bits"]),
            "quotient_bits": strict_int(data["quotient_bits"]),
            "circuit_version": str(data["circuit_version"]),
        }

    @classmethod
    def _check_header(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        if data.get("kind") != cls.kind or data.get("backend") != BACKEND:
            raise ConfigurationError(
                f"not a groth16 {cls.kind} spec: kind={data.get('kind')!r} backend={data.get('backend')!r}", key="circuit"
            )
        architecture = data["architecture"]
        base = architecture.get("base", architecture)
        if base.get("activation", "relu") != "relu" or base.get("loss", "mse") not in cls.losses:
            raise ConfigurationError(f"only ReLU MLPs with loss {' or '.join(cls.losses)} are supported", key="circuit.architecture")
        return architecture

    def canonical_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def circuit_id(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()


def offsets_of(shapes: list[tuple[int, ...]]) -> list[int]:
    """Where each tensor of ``shapes`` starts in their concatenation, flattened."""
    offsets, offset = [], 0
    for shape in shapes:
        offsets.append(offset)
        offset += math.prod(shape)
    return offsets


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def strict_int(value: object) -> int:
    if is_int(value):
        return value
    raise ValueError(f"expected an integer, got {value!r}")
