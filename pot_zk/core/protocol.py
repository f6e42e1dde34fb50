"""The prover-program protocol, version 1 (documented in docs/protocol.md).

A prover is a separate program. pot-zk writes one JSON request to its stdin and reads one
JSON response from its stdout. The exit code carries the outcome class:

=====  ===============================  =============================  =========
exit   meaning                          pot-zk error                   retryable
=====  ===============================  =============================  =========
0      success, response on stdout      --                             --
64     bad request (EX_USAGE)           ConfigurationError             no
65     invalid witness (EX_DATAERR)     WitnessBuilderError            no
70     proof failed deterministically   ProofGenerationError           no
75     transient failure (EX_TEMPFAIL)  ProofGenerationError           yes
other  crash (incl. death by signal)    ProverCrashError               yes
=====  ===============================  =============================  =========

On exit 0 the stdout must be exactly one JSON object with ``"protocol": PROTOCOL`` and
``"status": "ok"``; anything else is a :class:`~pot_zk.exceptions.ProverProtocolError`. On a
non-zero documented exit, the program may print ``{"status": "error", "message": ...}``; the
message is used when present.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

PROTOCOL = "pot-zk-prover/1"

EXIT_OK = 0
EXIT_BAD_REQUEST = 64
EXIT_INVALID_WITNESS = 65
EXIT_PROOF_FAILED = 70
EXIT_TRANSIENT = 75


@dataclass(frozen=True)
class ProverRequest:
    """One step to prove: what a prover strategy is handed, what a prover program receives on
    stdin (:meth:`to_json_dict`) and what a parked job keeps (:meth:`to_stored_dict`)."""

    step: int
    kind: str
    """Step kind: ``"sgd"``, ``"lora"``, or a test kind."""
    circuit: dict[str, Any]
    """The circuit spec (architecture, hyper-parameters, fixed-point scale)."""
    witness_path: str
    """A safetensors file with the step's tensors."""
    cache_dir: str
    """Where circuit artefacts and keys are cached by content hash."""
    output_dir: str
    """Where the prover writes its proof artefacts."""
    options: dict[str, Any] = field(default_factory=dict)
    protocol: str = PROTOCOL
    progress_path: str | None = None
    """Optional: a file the program may append stage lines to (:mod:`pot_zk.core.stages`)."""

    def to_json_dict(self) -> dict[str, Any]:
        document = asdict(self)
        if self.progress_path is None:
            del document["progress_path"]
        return document

    def to_stored_dict(self) -> dict[str, Any]:
        """The request without its progress file (which only a watcher of this attempt reads):
        what a parked job keeps."""
        return replace(self, progress_path=None).to_json_dict()

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> "ProverRequest":
        return cls(
            step=int(data["step"]),
            kind=str(data["kind"]),
            circuit=dict(data["circuit"]),
            witness_path=str(data["witness_path"]),
            cache_dir=str(data["cache_dir"]),
            output_dir=str(data["output_dir"]),
            options=dict(data.get("options", {})),
            protocol=str(data.get("protocol", PROTOCOL)),
        )


@dataclass(frozen=True)
class ProverResponse:
    """What a successful prover program prints on stdout."""

    proof_type: str
    artifacts: dict[str, str]
    """Name -> path of every file the prover produced (proof, settings, vk ...)."""
    public: dict[str, Any] = field(default_factory=dict)
    """Public values of the proof (commitments, outputs)."""
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    protocol: str = PROTOCOL
    status: str = "ok"
    notes: list[str] = field(default_factory=list)
    """Optional: what the person running the trainer should know about how the proof was
    made (e.g. no key holder could start, so each proof loads its key). Shown once per run."""

    def to_json_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.notes:
            del data["notes"]
        return data

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> "ProverResponse":
        return cls(
            proof_type=str(data["proof_type"]),
            artifacts=dict(data.get("artifacts", {})),
            public=dict(data.get("public", {})),
            timings={k: float(v) for k, v in data.get("timings", {}).items()},
            sizes={k: int(v) for k, v in data.get("sizes", {}).items()},
            protocol=str(data["protocol"]),
            status=str(data["status"]),
            notes=_notes(data.get("notes", [])),
        )


MAX_NOTES = 4
MAX_NOTE_CHARS = 500


def _notes(value: Any) -> list[str]:
    """review56: a program's notes reach the terminal and every attempt's audit record, so they
    are few and short (a megabyte note was copied into each record)."""
    if not isinstance(value, list) or not all(isinstance(note, str) for note in value):
        raise ValueError("notes must be a list of strings")
    if len(value) > MAX_NOTES or any(len(note) > MAX_NOTE_CHARS for note in value):
        raise ValueError(f"notes must be at most {MAX_NOTES} strings of at most {MAX_NOTE_CHARS} characters")
    return list(value)
