"""What a prover backend is: the extension point for the proof systems pot-zk proves steps with.

A :class:`ProverBackend` (``ezkl``; registered in :mod:`pot_zk.backends.registry` under the name
``prover.backend`` selects, and under its proof type) owns, for the statements it proves:

* the circuit spec: derived from a step kind and the run's hyper-parameters and circuit
  settings (:meth:`ProverBackend.circuit_spec`), read back from its ``to_dict()``
  (:meth:`ProverBackend.spec_from_dict`); a spec names its backend in ``spec.backend``;
* the commitment scheme its circuit exposes (:meth:`ProverBackend.commitments`): the run
  commits every step with it, proven or not, so commitments chain with the circuit's public
  values;
* the training arithmetic, when its statement is exact (:meth:`ProverBackend.training_arithmetic`):
  None means the optimizer's float update is proven within the spec's tolerance;
* keys: generated, imported, cached and checked before training
  (:meth:`ProverBackend.check_key_policy`, :meth:`ProverBackend.prepare`), and what the
  prover program is told about them
  (:meth:`ProverBackend.prover_options`);
* proving, inside its prover program (:meth:`ProverBackend.prove`, served by
  :func:`pot_zk.backends.program.serve`; the trainer runs the program through a
  ``ProgramStrategy``);
* verification of one step's proof with keys the verifier chose (:class:`StepVerifier`).

The non-ZK certificates (``freivalds``, ``reexec``) are :class:`StepVerifier` too, in the same
proof-type registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol

import torch
from torch import nn

from pot_zk.core.protocol import ProverResponse
from pot_zk.kinds.base import BatchStep, StepKind
from pot_zk.kinds.encoding import StepCommitment


class CommitmentScheme(Protocol):
    """How one statement's tensors are committed (bound to a spec: its scale and range)."""

    def snap(self, values: torch.Tensor, what: str) -> torch.Tensor:
        """``values`` on the grid the commitment binds (range-checked; WitnessBuilderError
        names ``what`` when a value does not fit)."""

    def commit(self, values: torch.Tensor, what: str) -> str:
        """The commitment of flat ``values`` (range-checked like :meth:`snap`), in hex with or
        without a ``0x`` prefix (batch commitments are the dataset's Merkle leaves)."""


class TrainingArithmetic(Protocol):
    """An exact statement's own update rule, used by training instead of the float one."""

    def start(self, model: nn.Module) -> None:
        """Put the initial model on the statement's grid (before it is saved and committed)."""

    def step(self, model: nn.Module, step: BatchStep) -> BatchStep:
        """Replace the optimizer's float update by the exact one, in ``model`` and in the
        returned step."""


@dataclass(frozen=True)
class KeySettings:
    """Where the proving side's key material comes from (config group ``srs``)."""

    path: Path | None = None
    """A key file from a ceremony or from the verifier; None: keys generated here (``dev``)."""
    allow_dev: bool = True
    """Accept keys generated here (their maker can forge proofs). Production: false."""


@dataclass(frozen=True)
class VerifierOptions:
    """What the verifier brings: its cache (where dev keys are looked up by hash), a directory
    of its own where it derives circuits and keys, and optionally its own key file."""

    cache_dir: Path
    workdir: Path
    key_path: Path | None = None
    allow_dev_keys: bool = False
    """Accept dev keys even in a production-mode run."""


@dataclass(frozen=True)
class VerifierKeys:
    """Key material a verifier settled on for one proof type, and how to report it."""

    material: Any
    record: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepStatement:
    """What one step's proof must show: the circuit spec and the step's commitments."""

    spec: Any
    commitment: StepCommitment


class StepVerifier(Protocol):
    """Checks proofs of one proof type."""

    proof_type: str

    def verifier_keys(self, spec: Any, declared: Mapping[str, Any] | None, options: VerifierOptions) -> VerifierKeys | None:
        """The key material to verify proofs of ``spec`` with; ``declared`` is the run's
        manifest (None for a single step). Raises ProofVerificationError (with a ``reason``)
        when no acceptable keys exist."""

    def verify(self, statement: StepStatement, proof: Path, keys: VerifierKeys | None, cache_dir: Path) -> None:
        """Raise ProofVerificationError (with a ``reason``) unless ``proof`` shows ``statement``."""


class ProverBackend(ABC):
    """One proof system. Subclasses fill in every abstract method; see the module docstring."""

    name: ClassVar[str]
    """The ``prover.backend`` config value."""
    proof_type: ClassVar[str]
    """The label of its proofs in bundles and audit trails."""

    @abstractmethod
    def provable_kinds(self) -> tuple[str, ...]:
        """The step kinds it has circuits for."""

    def stated_proof_types(self) -> tuple[str, ...]:
        """The proof types a run of this backend may hold: its own, and the certificates
        (fallbacks) whose verifiers can check its statements. ``pot-zk verify`` checks no other
        (``proof-type-mismatch``)."""
        return (self.proof_type,)

    @abstractmethod
    def circuit_spec(self, kind: StepKind, architecture: Any, batch_size: int, learning_rate: float, settings: Mapping[str, Any]) -> Any:
        """The spec of one step's statement; ``settings`` is the config group ``circuit``
        (an unknown or ill-typed setting is a ConfigurationError naming the valid ones)."""

    @abstractmethod
    def spec_from_dict(self, data: Mapping[str, Any]) -> Any:
        """The spec a ``to_dict()`` of one of its specs came from."""

    @abstractmethod
    def commitments(self, spec: Any) -> CommitmentScheme:
        """The commitment scheme the circuit of ``spec`` exposes."""

    def training_arithmetic(self, spec: Any) -> TrainingArithmetic | None:
        """None: training's float update is proven within the spec's tolerance."""
        return None

    @abstractmethod
    def check_key_policy(self, keys: KeySettings, mode: str) -> None:
        """Before anything else: ConfigurationError when ``keys`` would use key material the
        ``mode`` refuses (keys generated here, without ``keys.allow_dev``)."""

    @abstractmethod
    def prepare(self, spec: Any, cache_dir: Path, keys: KeySettings) -> dict[str, Any]:
        """Before training: build (or find cached) the circuit and its keys, import and check
        the configured key material; return the manifest entries that record them (their
        provenance). ConfigurationError when the keys are unusable."""

    @abstractmethod
    def prover_options(self, keys: KeySettings) -> dict[str, Any]:
        """The ``options`` of the prover program's requests."""

    @abstractmethod
    def prove(self, spec: Any, step: BatchStep, cache_dir: Path, out_dir: Path, options: Mapping[str, Any]) -> ProverResponse:
        """Prove one step inside the prover program; typed errors on failure."""

    @abstractmethod
    def verifier_keys(self, spec: Any, declared: Mapping[str, Any] | None, options: VerifierOptions) -> VerifierKeys | None:
        """See :class:`StepVerifier`."""

    @abstractmethod
    def verify(self, statement: StepStatement, proof: Path, keys: VerifierKeys | None, cache_dir: Path) -> None:
        """See :class:`StepVerifier`."""
