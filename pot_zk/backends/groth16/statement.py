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
from pot_zk.backends.groth16.commit import StepCommitments, commit_values, format_field
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
    update_floored: ClassVar[bool] = True
    """W_t+1 = W_t - floor(lr x the gradient (momentum: the velocity) at the weights' grid): an
    update under one grid step moves the weight by its sign alone (``pot-zk verify`` notes a
    rate at which that is common). AdamW rounds its update to the nearest grid step instead."""
    public_names: ClassVar[tuple[str, ...]]
    """The commitments the circuit outputs, in public-input order (``batch``: X then Y)."""
    after_names: ClassVar[tuple[str, ...]] = ("w_after",)
    """The committed tensors the step computes from the others (:meth:`exact_step`'s keys)."""
    signal_names: ClassVar[Mapping[str, str]]
    """The circuit's private input signal of each integer tensor (:data:`Integers` names)."""
    tensor_grids: ClassVar[Mapping[str, tuple[int, int]]] = {}
    """(scale, bits) of the committed tensors kept on a grid of their own (AdamW's moments and
    step count); every other tensor is at ``scale`` within ``value_bits`` (:meth:`grid`)."""
    rate_public: bool = False
    """The learning rate is a public input (``c_fix``, at most the c_fix of ``learning_rate``),
    one circuit for a whole schedule; False: fixed in the circuit. True only for a statement
    that :attr:`takes_schedule`."""
    takes_schedule: ClassVar[bool] = False
    """Its circuit can take the rate as a public input (sgd, lora); momentum's and AdamW's fix it."""

    def _check_common(self) -> None:
        object.__setattr__(self, "dims", tuple(self.dims))
        if self.rate_public and not self.takes_schedule:
            raise ConfigurationError(
                f"the groth16 backend proves a learning-rate schedule for sgd and lora steps, not {self.kind} steps "
                "(its circuit fixes the rate); train at one rate or remove the schedule",
                key="schedule",
            )
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
                f"the update products could reach {self.update_bound().bit_length()} bits (limit {UPDATE_BITS}); lower param_scale or the learning rate",
                key="param_scale",
            )

    def grid(self, name: str) -> tuple[int, int]:
        """(scale, bits) of the committed tensor ``name``: its integers are values times
        2**scale, in the signed range of ``bits`` bits."""
        return self.tensor_grids.get(name, (self.scale, self.value_bits))

    def default_value_bits(self) -> int:
        """16, or for cross_entropy the least that holds the largest label ``(d_out - 1) * 2**scale``
        (17 for 10 classes at scale 12) when that is more."""
        if getattr(self, "loss", "mse") != "cross_entropy" or not is_int(self.scale) or not is_int(self.dims[-1]):
            return 16
        return max(16, ((self.dims[-1] - 1) * 2**self.scale).bit_length() + 1)

    def _check_labels(self) -> None:
        largest = (self.dims[-1] - 1) * 2**self.scale
        if largest >= 2 ** (self.value_bits - 1):
            needed = largest.bit_length() + 1
            raise ConfigurationError(
                f"cross-entropy labels are committed at 2**-{self.scale} (label k as k * 2**{self.scale}): "
                f"label {self.dims[-1] - 1} needs value_bits >= {needed} (circuit.value_bits={needed})",
                key="circuit.value_bits",
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
        """The update constant as an integer at ``param_scale`` bits (of a statement whose rate
        is public: the largest, at its bound ``learning_rate``)."""
        return round_half_away(self.step_constant * 2**self.param_scale)

    def rate_constant(self, learning_rate: float) -> int:
        """c_fix of a step at ``learning_rate``: the update constant is linear in the rate, so
        exactly ``step_constant * learning_rate / self.learning_rate``, rounded half away from zero
        at ``param_scale`` bits (docs/groth16.md, schedules)."""
        return round_half_away(self.step_constant * Fraction(learning_rate) / Fraction(self.learning_rate) * 2**self.param_scale)

    @property
    def public_order(self) -> tuple[str, ...]:
        """The proof's public values by name, in order: the commitments (:attr:`public_names`),
        then, when the rate is public, ``rate`` (the step's c_fix)."""
        return (*self.public_names, "rate") if self.rate_public else self.public_names

    def _fixed_point_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "scale": self.scale,
            "param_scale": self.param_scale,
            "value_bits": self.value_bits,
            "quotient_bits": self.quotient_bits,
            **({"rate": "public"} if self.rate_public else {}),
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
            **({"rate_public": True} if _rate_public(data) else {}),
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

    def update_constant(self, integers: Mapping[str, np.ndarray]) -> int:
        """The step's c_fix: its own (``integers["c_fix"]``, between 0 and the statement's, as the
        circuit range-checks it, and not 0: a step that trains nothing is refused, as verify
        refuses it) when the rate is public, else the statement's."""
        if not self.rate_public:
            return self.c_fix
        c_fix = int(integers["c_fix"])
        if not 0 <= c_fix <= self.c_fix:
            raise WitnessBuilderError(
                f"the step's update constant {c_fix} is outside 0..{self.c_fix} (its learning rate exceeds the statement's {self.learning_rate})",
                expected=f"0..{self.c_fix}", actual=c_fix, tensor="c_fix",
            )
        if c_fix == 0:
            raise WitnessBuilderError(
                f"the step's learning rate rounds to the update constant 0 at param_scale={self.param_scale}: the step would train "
                "nothing (verify refuses such a step, zero-rate); keep the schedule's rate higher (eta_min, end_factor, gamma) or raise circuit.param_scale",
                expected=f"1..{self.c_fix}", actual=c_fix, tensor="c_fix",
            )
        return c_fix

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
        training is about to replace). A statement whose rate is public adds ``c_fix``, the
        step's update constant (:meth:`rate_constant` of its learning rate)."""
        bits, scale = self.value_bits, self.scale
        out: Integers = {"c_fix": np.array(self.rate_constant(step.learning_rate))} if self.rate_public else {}
        for tensor in self.encode(step):
            if tensor.name == "batch":
                out["x"] = quantise_batch(step.inputs.numpy(), scale, bits, "batch inputs X").reshape(step.inputs.shape)
                out["y"] = quantise_batch(step.targets.numpy(), scale, bits, "batch targets Y").reshape(step.targets.shape)
            elif with_after or tensor.name not in self.after_names:
                out[tensor.name] = quantise_weights(tensor.values.numpy(), *self.grid(tensor.name), tensor.label)
        return out

    def check_witness(self, integers: Mapping[str, np.ndarray]) -> None:
        """WitnessBuilderError unless the tensors after the step are exactly its integer step."""
        expected = self.exact_step(integers)
        for name in self.after_names:
            _check_after(expected[name], integers[name], self.grid(name)[1], name.replace("_", " "))

    def commitments(self, integers: Mapping[str, np.ndarray]) -> StepCommitments:
        """The circuit's public values for these integers, in :attr:`public_order` order."""
        values = {name: commit_values(self._committed(integers, name), self.grid(name)[1], name.replace("_", " ")) for name in self.public_names}
        if self.rate_public:
            values["rate"] = format_field(int(integers["c_fix"]))
        return StepCommitments(values)

    def circuit_inputs(self, integers: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The circuit's input signals (private; ``c_fix`` public when the rate is)."""
        inputs = {signal: np.asarray(integers[name], dtype=np.int64).tolist() for name, signal in self.signal_names.items()}
        return {**inputs, "c_fix": int(integers["c_fix"])} if self.rate_public else inputs

    def public_values(self, commitments: Mapping[str, Any], learning_rate: float | None) -> dict[str, Any]:
        """The proof's public values a verifier holds: the recorded ``commitments`` and, when the
        rate is public, the c_fix of the ``learning_rate`` the verifier recomputed for the step."""
        public = {name: commitments.get(name) for name in self.public_names}
        if self.rate_public:
            public["rate"] = None if learning_rate is None else format_field(self.rate_constant(learning_rate))
        return public

    def residual(self, named: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The tensors after the step minus the exact step of the revealed others, in real units
        (exactly zero for an honest step): what ``reexec`` checks (a public rate: ``named`` has
        the step's ``learning_rate``, the verifier's)."""
        integers = self._from_flat(named)
        if self.rate_public:
            integers["c_fix"] = np.array(self.rate_constant(float(named["learning_rate"])))
        expected = self.exact_step(integers)
        return torch.cat([named[name].reshape(-1).to(torch.float64) - torch.from_numpy(dequantise(expected[name], self.grid(name)[0])) for name in self.after_names])

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
        if self.rate_public:
            integers["c_fix"] = np.array(self.c_fix)
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
                out[name] = quantise_weights(values, *self.grid(name), name.replace("_", " "))
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


def _rate_public(data: Mapping[str, Any]) -> bool:
    rate = data.get("rate", "fixed")
    if rate not in ("fixed", "public"):
        raise ValueError(f"rate must be 'public' (or absent), got {rate!r}")
    return rate == "public"


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


def class_labels(spec: Any, y: np.ndarray) -> np.ndarray:
    """The class of each committed label ``k * 2**scale`` of a cross-entropy statement (any
    kind's: ``spec`` has ``scale`` and ``dims``; WitnessBuilderError unless every label is one
    of 0, S, ..., (d_out - 1) S)."""
    unit = 2**spec.scale
    classes = y // unit
    bad = np.flatnonzero((y % unit != 0) | (classes < 0) | (classes >= spec.dims[-1]))
    if bad.size:
        raise WitnessBuilderError(
            f"class labels must be integers in 0..{spec.dims[-1] - 1} (at 2**-{spec.scale}: multiples of {unit})",
            expected=f"k * {unit}, k in 0..{spec.dims[-1] - 1}",
            actual=int(y[bad[0]]),
            tensor="Y",
            first_index=int(bad[0]),
        )
    return classes
