"""What the zk-groth16 statements share (:class:`Groth16Statement`): the accumulator bound, the
fixed-point checks of every statement's parameters, and everything the shared machinery asks
a statement (its step's integers, the exact step's check, commitments, circuit input signals,
the reexec residual, a sample step) written once over the statement's own ``exact_step`` and
``circuit_source``.

A statement lives in ``backends/groth16/<kind>/``: ``spec.py`` (its parameters, bounds and
dict), ``exact.py`` (its integer step), ``circuit.py`` (its circom main) and ``statement.py``
(the class the backend registers, tying them together).
"""

from __future__ import annotations

import hashlib
import json
import math
from fractions import Fraction
from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from pot_zk.backends.base import check_step_matches
from pot_zk.backends.groth16.commit import StepCommitments, commit_values
from pot_zk.backends.groth16.integers import check_range, dequantise, quantise_batch, quantise_weights
from pot_zk.exceptions import ConfigurationError, WitnessBuilderError
from pot_zk.kinds.base import BatchStep, StepTensor
from pot_zk.kinds.registry import STEP_KINDS

Integers = dict[str, np.ndarray]
"""A step's integers by name: the committed tensors (``w_before``, ``w_after``, ``base``,
``v_before``, ...) flat, and the batch as ``x`` (N x d_in) and ``y`` (the targets)."""

SETTINGS: Mapping[str, Any] = {"scale": 12, "param_scale": 20, "value_bits": None, "quotient_bits": 24}
"""The groth16 circuit settings (config group ``circuit``) and their defaults; ``value_bits``
None: the statement's own."""

BACKEND = "groth16"

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


class Groth16Statement:
    """What the zk-groth16 statements share (a mixin for frozen dataclasses with the fields
    ``dims``, ``batch_size``, ``learning_rate``, ``scale``, ``param_scale``, ``value_bits``,
    ``quotient_bits``, ``circuit_version``, a ClassVar ``expected_version``, and the methods
    ``exact_step``, ``circuit_source``, ``create``, ``to_dict``, ``from_dict`` of the kind's
    statement)."""

    backend: ClassVar[str] = BACKEND
    zero_knowledge: ClassVar[bool] = True
    tolerance_ulps: ClassVar[int] = 0
    """Exact: W_t+1 is a function of the committed inputs."""
    settings: ClassVar[Mapping[str, Any]] = SETTINGS
    losses: ClassVar[tuple[str, ...]] = ("mse",)
    """The losses the statement's circuit states."""
    public_names: ClassVar[tuple[str, ...]]
    """The commitments the circuit outputs, in public-input order (``batch``: X then Y)."""
    after_names: ClassVar[tuple[str, ...]] = ("w_after",)
    """The committed tensors the step computes from the others (:meth:`exact_step`'s keys)."""
    signal_names: ClassVar[Mapping[str, str]]
    """The circuit's private input signal of each integer tensor (:data:`Integers` names)."""

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
    def num_batch_values(self) -> int:
        return self.batch_size * (self.dims[0] + self.targets_per_sample)

    @property
    def value_bound(self) -> float:
        """The largest magnitude of a committed value in real units: (2**(value_bits-1) - 1) / 2**scale."""
        return (2 ** (self.value_bits - 1) - 1) / 2**self.scale

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

    def exact_step(self, integers: Mapping[str, np.ndarray]) -> Integers:
        """The tensors of :attr:`after_names` from the others (the statement's integer step)."""
        raise NotImplementedError

    def circuit_source(self) -> str:
        """The complete circom source of the statement's circuit (the same bytes for the same statement)."""
        raise NotImplementedError

    @property
    def targets_per_sample(self) -> int:
        """Batch values per sample after X: d_out targets (mse), one class label (cross_entropy)."""
        return 1 if getattr(self, "loss", "mse") == "cross_entropy" else self.dims[-1]

    @property
    def target_shape(self) -> tuple[int, ...]:
        """The shape of Y: N x d_out targets (mse), N class labels (cross_entropy)."""
        n = self.batch_size
        return (n,) if getattr(self, "loss", "mse") == "cross_entropy" else (n, self.dims[-1])

    def encode(self, step: BatchStep) -> list[StepTensor]:
        """The step's canonical encoding (its kind's), after checking the step is this statement's."""
        check_step_matches(self, step)
        return STEP_KINDS.get(self.kind).encode(step)

    def integers(self, step: BatchStep, *, with_after: bool = True) -> Integers:
        """The step's integers (:data:`Integers`): every committed tensor but the batch exactly on
        the grid (exact-mode training keeps it there), the batch rounded onto it;
        ``with_after=False``: without the tensors the step computes (a float step that exact
        training is about to replace)."""
        bits, scale = self.value_bits, self.scale
        out: Integers = {}
        for tensor in self.encode(step):
            if tensor.name == "batch":
                out["x"] = quantise_batch(step.inputs.numpy(), scale, bits, "batch inputs X").reshape(step.inputs.shape)
                out["y"] = quantise_batch(step.targets.numpy(), scale, bits, "batch targets Y").reshape(step.targets.shape)
            elif with_after or tensor.name not in self.after_names:
                out[tensor.name] = quantise_weights(tensor.values.numpy(), scale, bits, tensor.label)
        return out

    def check_witness(self, integers: Mapping[str, np.ndarray]) -> None:
        """WitnessBuilderError unless the tensors after the step are exactly its integer step."""
        expected = self.exact_step(integers)
        for name in self.after_names:
            _check_after(expected[name], integers[name], self.value_bits, name.replace("_", " "))

    def commitments(self, integers: Mapping[str, np.ndarray]) -> StepCommitments:
        """The circuit's public values for these integers, in :attr:`public_names` order."""
        return StepCommitments(
            {name: commit_values(self._committed(integers, name), self.value_bits, name.replace("_", " ")) for name in self.public_names}
        )

    def circuit_inputs(self, integers: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The circuit's private input signals."""
        return {signal: np.asarray(integers[name], dtype=np.int64).tolist() for name, signal in self.signal_names.items()}

    def residual(self, named: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The tensors after the step minus the exact step of the revealed others, in real units
        (exactly zero for an honest step): what ``reexec`` checks."""
        integers = self._from_flat(named)
        expected = self.exact_step(integers)
        return torch.cat([named[name].reshape(-1).to(torch.float64) - torch.from_numpy(dequantise(expected[name], self.scale)) for name in self.after_names])

    def sample_step(self, seed: int = 0) -> Integers:
        """A fixed honest step: small random values for every input (Y: labels ``k * 2**scale``
        for cross-entropy), the tensors after the step from :meth:`exact_step`."""
        rng = np.random.default_rng(seed)
        grid = 2.0**self.scale

        def values(count: int | tuple[int, ...], spread: float) -> np.ndarray:
            return np.round(rng.uniform(-spread, spread, count) * grid).astype(np.int64)

        sizes = self.input_sizes()
        integers: Integers = {"x": values((self.batch_size, self.dims[0]), 1.0)}
        if getattr(self, "loss", "mse") == "cross_entropy":
            integers["y"] = rng.integers(0, self.dims[-1], self.batch_size).astype(np.int64) * 2**self.scale
        else:
            integers["y"] = values(self.target_shape, 1.0)
        for name in self.public_names:
            if name != "batch" and name not in self.after_names:
                integers[name] = values(sizes[name], 0.5)
        return {**integers, **self.exact_step(integers)}

    def _committed(self, integers: Mapping[str, np.ndarray], name: str) -> np.ndarray:
        if name == "batch":
            return np.concatenate([np.asarray(integers["x"], dtype=np.int64).reshape(-1), np.asarray(integers["y"], dtype=np.int64).reshape(-1)])
        return np.asarray(integers[name], dtype=np.int64).reshape(-1)

    def _from_flat(self, named: Mapping[str, torch.Tensor]) -> Integers:
        """Integers of flat grid values by input name (the batch split into X and Y)."""
        out: Integers = {}
        n, d_in = self.batch_size, self.dims[0]
        for name in self.public_names:
            values = named[name].reshape(-1).to(torch.float64).numpy()
            if name == "batch":
                batch = quantise_batch(values, self.scale, self.value_bits, "batch values")
                out["x"], out["y"] = batch[: n * d_in].reshape(n, d_in), batch[n * d_in :].reshape(self.target_shape)
            else:
                out[name] = quantise_weights(values, self.scale, self.value_bits, name.replace("_", " "))
        return out


def _check_after(expected: np.ndarray, after: np.ndarray, value_bits: int, what: str) -> None:
    actual = np.asarray(after)
    if actual.shape != expected.shape or actual.dtype.kind not in "iu":
        raise WitnessBuilderError(
            f"{what} have the wrong shape or type",
            expected=[list(expected.shape), "integers"],
            actual=[list(actual.shape), str(actual.dtype)],
            tensor=what,
        )
    check_range(actual.astype(np.int64), value_bits, what)
    wrong = np.flatnonzero(actual != expected)
    if wrong.size:
        index = int(wrong[0])
        raise WitnessBuilderError(
            f"{what} are not the exact step on this batch: {wrong.size} of {expected.size} value(s) differ "
            f"(largest difference {int(np.abs(actual - expected).max())} grid steps)",
            expected=int(expected[index]),
            actual=int(actual[index]),
            tensor=what,
            first_index=index,
        )


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
