"""What a prover backend is, and the statement where a step kind meets it.

A :class:`Statement` is one (step kind x backend) statement: everything one step's proof
speaks of (architecture, batch size, learning rate, the backend's fixed-point settings), its
canonical encoding of a step, its commitments' inputs and its own reference of the update.
Each backend keeps a registry of its statement classes keyed by kind
(:attr:`ProverBackend.statements`), one file (or folder) per statement,
``backends/<backend>/<kind>.py``; shared backend machinery calls methods on the statement and
names no concrete kind.

A :class:`ProverBackend` (``ezkl``, ``groth16``; registered in :mod:`pot_zk.backends.registry`
under the name ``prover.backend`` selects, and under its proof type) owns, for the statements
it proves:

* the statement: derived from a step kind and the run's hyper-parameters and circuit settings
  (:meth:`ProverBackend.circuit_spec`), read back from its ``to_dict()``
  (:meth:`ProverBackend.spec_from_dict`); a statement names its backend in ``spec.backend``;
* what its proofs are: :attr:`ProverBackend.zero_knowledge`, :attr:`ProverBackend.exact`
  (no tolerance: training computes the statement's own integers) and its labels;
* the commitment scheme its circuit exposes (:meth:`ProverBackend.commitments`): the run
  commits every step with it, proven or not, so commitments chain with the circuit's public
  values;
* the training arithmetic, when its statement is exact (:meth:`ProverBackend.training_arithmetic`):
  None means the optimizer's float update is proven within the statement's tolerance;
* keys: generated, imported, cached and checked before training
  (:meth:`ProverBackend.check_key_policy`, :meth:`ProverBackend.prepare`); the auditor's
  (``pot-zk keys new``: :meth:`ProverBackend.new_keys`, checked against a run by
  :meth:`ProverBackend.check_run_keys`); what the prover program is told about them
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
from typing import Any, ClassVar, Mapping, Protocol, Sequence

import torch
from torch import nn

from pot_zk.core.protocol import ProverRequest, ProverResponse
from pot_zk.core.registry import Registry
from pot_zk.exceptions import ConfigurationError
from pot_zk.kinds.base import BatchStep, StepKind, StepTensor
from pot_zk.kinds.encoding import StepCommitment
from pot_zk.kinds.registry import kind_of

class Statement(Protocol):
    """One (step kind x backend) statement: a frozen value that fully defines what one step's
    proof shows. Its ``circuit_id`` is a hash of ``to_dict()``, so anything that changes the
    statement changes the circuit (and its keys)."""

    kind: ClassVar[str]
    """The step kind it states (``sgd``, ``lora``, ...)."""
    backend: ClassVar[str]
    """The backend that proves it."""
    zero_knowledge: ClassVar[bool]
    settings: ClassVar[Mapping[str, Any]]
    """The backend's circuit settings (config group ``circuit``) and their defaults (None: the
    statement's own, derived from its other fields)."""
    batch_size: int
    learning_rate: float
    scale: int
    """Committed values are fixed-point integers at 2**-scale."""
    tolerance_ulps: int
    """How far (units of 2**-scale) W_t+1 may be from the statement's update: 0 when exact."""
    rate_public: bool
    """The learning rate is a public value of each step's proof, up to ``learning_rate`` (a
    scheduled run's statement, :meth:`ProverBackend.scheduled_spec`); False: it is
    ``learning_rate``, fixed in the circuit. Shared code reads it with ``getattr(..., False)``."""

    @property
    def architecture(self) -> Any:
        """The step kind's architecture (``to_dict()`` round-trips through the kind)."""

    @property
    def input_names(self) -> tuple[str, ...]:
        """The committed tensors of a step, in the circuit's order (names of StepCommitment fields)."""

    @property
    def value_bound(self) -> float:
        """The largest magnitude a committed value may have (real units)."""

    def input_sizes(self) -> dict[str, int]:
        """How many values each committed tensor holds."""

    def to_dict(self) -> dict[str, Any]: ...

    def canonical_bytes(self) -> bytes: ...

    def circuit_id(self) -> str: ...

    def encode(self, step: BatchStep) -> list[StepTensor]:
        """The step's canonical encoding (its kind's, in ``input_names`` order), after checking
        the step is this statement's (WitnessBuilderError naming what differs)."""

    def residual(self, named: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """W_t+1 (and any other state after the step) minus the statement's own update of the
        other inputs, flat, in real units: what ``reexec`` recomputes from revealed values."""


def check_step_matches(statement: Statement, step: BatchStep) -> None:
    """WitnessBuilderError unless ``step`` is of the statement's kind, architecture, batch size
    and learning rate (the message names each that differs); a statement whose rate is public
    (``rate_public``: a scheduled run's) takes any rate up to its own."""
    from pot_zk.exceptions import WitnessBuilderError

    architecture = getattr(step, "architecture", None)
    found = {
        "kind": getattr(step, "kind", type(step).__name__),
        "architecture": architecture.to_dict() if architecture is not None else None,
        "batch_size": getattr(step, "batch_size", None),
        "learning_rate": getattr(step, "learning_rate", None),
    }
    declared = {
        "kind": statement.kind,
        "architecture": statement.architecture.to_dict(),
        "batch_size": statement.batch_size,
        "learning_rate": statement.learning_rate,
    }
    if getattr(statement, "rate_public", False) and isinstance(found["learning_rate"], float) and 0 < found["learning_rate"] <= statement.learning_rate:
        found["learning_rate"] = statement.learning_rate  # a scheduled step: any rate up to the statement's bound
    if found != declared:
        differs = ", ".join(f"{key} {found[key]!r} (declared {declared[key]!r})" for key in declared if found[key] != declared[key])
        raise WitnessBuilderError(f"the step does not match the declared statement: {differs}", expected=declared, actual=found)


class CommitmentScheme(Protocol):
    """How one statement's tensors are committed (bound to a spec: its scale and range)."""

    def tensor(self, name: str) -> "CommitmentScheme":
        """The scheme of the encoded tensor ``name`` (``w_before``, ``m_after``, ...): a
        statement may keep some state on a grid of its own (AdamW's moments and step count)."""

    def snap(self, values: torch.Tensor, what: str) -> torch.Tensor:
        """``values`` on the grid the commitment binds (range-checked; WitnessBuilderError
        names ``what`` when a value does not fit)."""

    def commit(self, values: torch.Tensor, what: str) -> str:
        """The commitment of flat ``values`` (range-checked like :meth:`snap`), in hex with or
        without a ``0x`` prefix (batch commitments are the dataset's Merkle leaves)."""

    def is_commitment(self, text: object) -> bool:
        """``text`` is a commitment exactly as :meth:`commit` writes one (verify accepts no
        other form: :mod:`pot_zk.verify.canonical`)."""


class TrainingArithmetic(Protocol):
    """An exact statement's own update rule, used by training instead of the float one."""

    def start(self, model: nn.Module) -> None:
        """Put the initial model on the statement's grid (before it is saved and committed)."""

    def step(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: BatchStep) -> BatchStep:
        """Replace the optimizer's float update by the exact one, in ``model`` (and the
        optimizer's state, e.g. a velocity) and in the returned step."""


class KeyHolder(Protocol):
    """Proving keys kept loaded by a long-lived process that proves many requests (a Dask
    worker): each request is answered as the backend's prover program would answer it."""

    def prove(self, request: Mapping[str, Any]) -> ProverResponse:
        """Prove one parsed protocol request; typed errors as the program's ``prove``."""


@dataclass(frozen=True)
class KeySettings:
    """Where the proving side's key material comes from (config group ``srs``)."""

    path: Path | None = None
    """A key file from a ceremony or from the verifier; None: keys generated here (``dev``)."""
    allow_dev: bool = True
    """Accept keys generated here (their maker can forge proofs). Production: false."""


@dataclass(frozen=True)
class GeneratedKeys:
    """What a backend's key generator wrote into the keys directory."""

    backend: str
    files: Mapping[str, str]
    """Role -> file name in the keys directory, e.g. ``{"srs": "kzg12.srs"}`` or ``{"pk": ..., "vk": ...}``."""
    handover: tuple[str, ...]
    """The roles the trainer receives (ezkl: ``("srs",)``; Groth16: ``("pk",)``)."""
    trainer_overrides: tuple[str, ...]
    """Config overrides the trainer proves with, e.g. ``srs.path=/abs/kzg12.srs``."""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifierOptions:
    """What the verifier brings: its cache (where dev keys are looked up by hash), a directory
    of its own where it derives circuits and keys, and optionally its own key file."""

    cache_dir: Path
    workdir: Path
    key_path: Path | None = None
    allow_dev_keys: bool = False
    """Accept dev keys even in a production-mode run."""
    verifier_cache: bool = True
    """Reuse what verification derived earlier and kept in its own part of ``cache_dir``
    (checked on reuse); False: derive afresh in ``workdir`` (``verify --no-verifier-cache``)."""
    key_path_trusted: bool = False
    """``key_path`` is a key set the auditor's trust store knows (``verify --keys``); else
    (``--srs``) what its directory records about itself is not checked (review57)."""


@dataclass(frozen=True)
class VerifierKeys:
    """Key material a verifier settled on for one proof type, and how to report it."""

    material: Any
    record: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepStatement:
    """What one step's proof must show: the circuit spec and the step's commitments."""

    spec: Statement
    commitment: StepCommitment


@dataclass(frozen=True)
class Receipt:
    """What :meth:`ProverBackend.check_on_receipt` verified: the SHA-256 of the proof bytes, and
    the key they were verified under."""

    proof_sha256: str
    key: str


class StepVerifier(Protocol):
    """Checks proofs of one proof type."""

    proof_type: str
    zero_knowledge: bool
    """Its proofs reveal nothing of the witness beyond the statement's public values."""

    def verifier_keys(self, spec: Statement, declared: Mapping[str, Any] | None, options: VerifierOptions) -> VerifierKeys | None:
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
    zero_knowledge: ClassVar[bool]
    """Its proofs reveal nothing of the witness beyond the statement's public values."""
    exact: ClassVar[bool]
    """Its statements have no tolerance: training computes the statement's own arithmetic
    (:meth:`training_arithmetic`) and a proof pins W_t+1."""
    description: ClassVar[str]
    """One line for people: the proof system and what runs it."""
    statements: ClassVar[Registry[type]]
    """Its statement classes (:class:`Statement`) by step kind."""

    def provable_kinds(self) -> tuple[str, ...]:
        """The step kinds it has statements for."""
        return tuple(self.statements.names())

    def statement_type(self, kind: str) -> type:
        """The statement class of ``kind`` (ConfigurationError naming the kinds it proves)."""
        if kind not in self.statements:
            raise ConfigurationError(
                f"the {self.name} backend proves {', '.join(self.provable_kinds())} steps, not {kind} steps",
                key="prover.backend",
                valid=list(self.provable_kinds()),
            )
        return self.statements.get(kind)

    def circuit_spec(self, kind: StepKind, architecture: Any, batch_size: int, learning_rate: float, settings: Mapping[str, Any]) -> Statement:
        """The statement of one step; ``settings`` is the config group ``circuit`` (an unknown
        or ill-typed setting is a ConfigurationError naming the valid ones)."""
        statement = self.statement_type(kind.name)
        unknown = sorted(set(settings) - set(statement.settings))
        if unknown:
            raise ConfigurationError(
                f"unknown circuit setting(s) {unknown} for the {self.name} backend; valid: {', '.join(statement.settings)}",
                key=f"circuit.{unknown[0]}",
                valid=list(statement.settings),
            )
        given = {}
        for key, value in settings.items():
            if value is None:
                continue  # the statement's own
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(f"circuit.{key} must be an integer, got {value!r} (or null: the statement's own)", key=f"circuit.{key}")
            given[key] = value
        return statement.create(architecture, int(batch_size), float(learning_rate), given)

    def scheduled_spec(self, kind: StepKind, architecture: Any, batch_size: int, learning_rate: float, settings: Mapping[str, Any]) -> Statement:
        """The statement of steps whose learning rate follows a declared schedule, at most
        ``learning_rate``: one circuit (and key) for every rate, each step's a public value. A
        backend whose circuits fix the rate refuses (ConfigurationError, saying why)."""
        raise ConfigurationError(
            f"the {self.name} backend states the learning rate as a constant of its circuit (and key): a learning-rate schedule "
            "would need a circuit per rate; prove scheduled runs with prover=groth16, whose rate is a public input",
            key="optimizer.schedule",
        )

    def statement_for_step(self, step: BatchStep, settings: Mapping[str, Any] | None = None) -> Statement:
        """The statement that proves ``step`` (its kind, architecture, batch size, learning rate)."""
        return self.circuit_spec(kind_of(step), step.architecture, step.batch_size, step.learning_rate, settings or {})

    def spec_from_dict(self, data: Mapping[str, Any]) -> Statement:
        """The statement a ``to_dict()`` of one of its statements came from."""
        return self.statement_type(str(data.get("kind"))).from_dict(data)

    def stated_proof_types(self) -> tuple[str, ...]:
        """The proof types a run of this backend may hold: its own, and the certificates
        (fallbacks) whose verifiers can check its statements -- ``reexec`` recomputes any
        statement's own update, ``freivalds`` checks a float update within a tolerance, so not an
        exact statement's. ``pot-zk verify`` checks no other (``proof-type-mismatch``)."""
        return (self.proof_type, "reexec") if self.exact else (self.proof_type, "freivalds", "reexec")

    @abstractmethod
    def commitments(self, spec: Statement) -> CommitmentScheme:
        """The commitment scheme the circuit of ``spec`` exposes."""

    def training_arithmetic(self, spec: Statement) -> TrainingArithmetic | None:
        """None: training's float update is proven within the statement's tolerance."""
        return None

    program: ClassVar[str] = ""
    """Its prover program's name (``prover.binary`` in ``conf/prover/<backend>.yaml``)."""

    def key_holder(self) -> KeyHolder | None:
        """What proves requests for :attr:`program` inside a long-lived process, keeping each
        proving key loaded (``executor=dask``: one per worker); None: every request runs the
        program."""
        return None

    @abstractmethod
    def check_key_policy(self, keys: KeySettings, mode: str) -> None:
        """Before anything else: ConfigurationError when ``keys`` would use key material the
        ``mode`` refuses (keys generated here, without ``keys.allow_dev``)."""

    def check_keys_at_hand(self, spec: Statement, cache_dir: Path, options: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
        """Before a run proves more (resume, prove-pending, respond): ConfigurationError when the
        key material its requests (``cache_dir``, the prover ``options``) would be proven with is
        not what the run's ``manifest`` declares (the entries :meth:`prepare` returned): a key
        made afresh where the run's is gone would prove steps no verifier of the run accepts
        (found by a review). Nothing is created. A backend without key material: nothing to check."""

    @abstractmethod
    def prepare(self, spec: Statement, cache_dir: Path, keys: KeySettings) -> dict[str, Any]:
        """Before training: build (or find cached) the circuit and its keys, import and check
        the configured key material; return the manifest entries that record them (their
        provenance). ConfigurationError when the keys are unusable."""

    @abstractmethod
    def prover_options(self, keys: KeySettings) -> dict[str, Any]:
        """The ``options`` of the prover program's requests."""

    @abstractmethod
    def prove(self, spec: Statement, step: BatchStep, cache_dir: Path, out_dir: Path, options: Mapping[str, Any]) -> ProverResponse:
        """Prove one step inside the prover program; typed errors on failure."""

    @abstractmethod
    def verifier_keys(self, spec: Statement, declared: Mapping[str, Any] | None, options: VerifierOptions) -> VerifierKeys | None:
        """See :class:`StepVerifier`."""

    @abstractmethod
    def verify(self, statement: StepStatement, proof: Path, keys: VerifierKeys | None, cache_dir: Path) -> None:
        """See :class:`StepVerifier`."""

    def check_on_receipt(
        self, request: ProverRequest, response: ProverResponse, commitments: Mapping[str, Any], key: str | None
    ) -> Receipt | None:
        """In the trainer, when its prover program answers "ok" for ``request``: raise
        ProofVerificationError (with a ``reason``) unless the proof the response names shows the
        step the trainer committed (``commitments``, its record in commitments.jsonl) under the
        key the request was proven with, which must be ``key`` (the run's declared key,
        :meth:`declared_key`, or the one an earlier answer of the same command was checked
        with; None: none yet) and the one the response reports. The trainer's own check of its
        program's answer, not an auditor's verdict: the key is the trainer's. Returns what it
        checked; None where a verification costs too much to run per proof (``zk-halo2`` derives
        its keys: minutes), so "proved" stays the program's word there until ``pot-zk verify``."""
        return None

    def current_key(self, request: ProverRequest) -> str | None:
        """The key ``request`` would be proven with now, named as :meth:`check_on_receipt` names
        keys (None: none yet, or none this backend names): what the seed's single-step APIs pin
        before a program runs."""
        return None

    def declared_key(self, manifest: Mapping[str, Any]) -> str | None:
        """The key a run's manifest declares its proofs are made with (what :meth:`prepare`
        recorded), as :meth:`check_on_receipt` names keys; None: none."""
        return None

    @abstractmethod
    def new_keys(self, statements: Sequence[Statement], out_dir: Path, cache_dir: Path) -> GeneratedKeys:
        """``pot-zk keys new``: generate, as the auditor, the key material the statements'
        proofs rest on into ``out_dir`` (never elsewhere but ``cache_dir``)."""

    @abstractmethod
    def auditor_key_path(self, keys: Any, circuit_id: str) -> Path | None:
        """Where the auditor's ``keys`` (a :class:`~pot_zk.backends.keys.KeySet`) hold what
        proofs of circuit ``circuit_id`` are verified with (the path :class:`VerifierOptions`
        takes as ``key_path``); None when they hold nothing for it."""

    @abstractmethod
    def check_run_keys(self, report: Any, manifest: Mapping[str, Any], proofs: Sequence[Mapping[str, Any]], keys: Any) -> dict[str, Path]:
        """``verify --keys``: add findings to ``report`` when the run declares or reports key
        material other than the auditor's ``keys`` (a :class:`~pot_zk.backends.keys.KeySet`); return the verifier material its proofs
        are checked with (e.g. ``{"key_path": ...}``)."""

    ceremony: ClassVar[bool] = False
    """Its keys can come from a public ceremony pot-zk exports the circuit for and imports the
    result of (:meth:`ceremony_files`, :meth:`import_keys`)."""

    def check_ceremony(self) -> None:
        """ConfigurationError unless the backend takes ceremony keys (before anything is written)."""
        if not self.ceremony:
            raise ConfigurationError(
                f"the {self.name} backend takes no ceremony keys (keys circuit and keys import-zkey are for prover=groth16)", key="prover.backend"
            )

    def ceremony_files(self, spec: Statement, out_dir: Path, statement_args: str) -> Any:
        """``pot-zk keys circuit``: the circuit source and the commands of a public ceremony."""
        self.check_ceremony()

    def import_keys(self, spec: Statement, path: Path, out_dir: Path) -> GeneratedKeys:
        """``pot-zk keys import-zkey``: bring key material made elsewhere (a ceremony's) into a keys directory."""
        self.check_ceremony()
        raise NotImplementedError
