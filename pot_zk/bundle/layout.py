"""The run bundle: one directory per run holding everything ``pot-zk verify`` needs.

Layout (docs/runs.md)::

    manifest.json            architecture, hyper-parameters, circuit spec, dataset root,
                             SRS provenance, policy, mode, versions
    config.yaml              the resolved configuration (``pot-zk resume`` reads it)
    dataset.json             batch commitments (Merkle leaves) and their root, fixed before training
    commitments.jsonl        one record per training step: commitments of W_t, batch, W_t+1
    proofs.jsonl             one record per final proof outcome (proved / failed / parked)
    evaluations.jsonl        held-out loss and accuracy of the initial model, at each epoch's end, of the final model
    proofs/step-NNNNNNNN/    proof artefacts (zk-halo2 proof.json, or a certificate)
    witness/                 step witnesses awaiting a proof (deleted once the outcome is final)
    pending/                 jobs parked by the ``retry`` handler
    model_initial.safetensors, model_final.safetensors, checkpoint.safetensors
    audit.jsonl, stats.json, metrics.prom

:class:`BundleReader` reads it; the trainer's :class:`pot_zk.runs.bundle.RunBundle` adds the writers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pot_zk.exceptions import BundleRecordsError, ConfigurationError

if TYPE_CHECKING:
    import torch

RUN_FORMAT = "pot-zk-run/1"
"""The bundle format this pot-zk writes and reads (the manifest's ``format``)."""
MANIFEST = "manifest.json"
DATASET = "dataset.json"
COMMITMENTS = "commitments.jsonl"
PROOFS = "proofs.jsonl"
CONFIG = "config.yaml"
INITIAL_MODEL = "model_initial.safetensors"
FINAL_MODEL = "model_final.safetensors"
CHECKPOINT = "checkpoint.safetensors"
AUDIT = "audit.jsonl"
EVALUATIONS = "evaluations.jsonl"
EXPORT_INVENTORY = "EXPORT.json"
"""What ``pot-zk export`` adds to its archive: the files and the commitment head (not evidence)."""


MODES = ("custom", "development", "research", "production", "disabled")
"""The manifest's ``mode`` (``proving.mode``): the presets of ``conf/mode/`` and ``custom`` (no
preset). verify fails any other (``unknown-mode``): a production run refuses dev keys by this name."""


READ_FILES = (MANIFEST, DATASET, COMMITMENTS, PROOFS, EVALUATIONS, AUDIT, INITIAL_MODEL, FINAL_MODEL)
"""The run files ``pot-zk verify`` (and ``challenge``, ``report``) read."""


def not_regular(root: Path) -> str | None:
    """Why a file of :data:`READ_FILES` is not one of the bundle's own (None: each is a regular
    file or absent). review24: an export unpacked by hand keeps a link such as audit.jsonl ->
    /dev/zero, which verify read until memory ran out (verify unpacks an archive without links
    itself); review33: `challenge` and `report` blocked on a named pipe there."""
    for name in READ_FILES:
        path = Path(root) / name
        if path.is_symlink():
            return f"{name} is a symbolic link (to {os.readlink(path)}): a bundle holds its own files (unpack an export with pot-zk verify ARCHIVE)"
        if path.exists() and not path.is_file():
            return f"{name} is not a regular file"
    return None


def own_file(root: Path, name: str) -> Path | str:
    """The file a record names (``name``, relative to the bundle's ``root``) when it is a regular
    file of the bundle reached without a symbolic link; else why not. review38: a proof record
    naming a link (to another file of the bundle) verified, though a bundle holds its own files."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return f"{name!r} is not a path inside the bundle"
    path = Path(root)
    try:
        for part in relative.parts:
            path = path / part
            if path.is_symlink():
                return f"{name!r} is reached through a symbolic link ({path.name} -> {os.readlink(path)}): a bundle holds its own files"
        if not path.is_file():
            return f"{name!r} is not a file of the bundle"
    except (OSError, ValueError) as exc:  # review39: a name too long for the file system stopped every proof's check
        return f"{name[:80]!r}... cannot be looked up ({exc.strerror if isinstance(exc, OSError) else exc})"
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete records of a JSON-lines file; raises BundleRecordsError (a ValueError) on a
    malformed line or one that is not a JSON object (every reader takes a record apart by its fields)."""
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if line.strip():
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as exc:  # review49: a line nested 50,000 deep
                raise BundleRecordsError(f"{path.name} line {number} is not a JSON record: {str(exc)[:200]}", path=str(path)) from exc
            if not isinstance(record, dict):
                raise BundleRecordsError(f"{path.name} line {number} is not a JSON object", path=str(path))
            records.append(record)
    return records


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; BundleRecordsError (a ValueError) for anything else (review49:
    a manifest that is a JSON list, or nested 50,000 deep, made verify raise)."""
    try:
        found = json.loads(path.read_text())
    except RecursionError as exc:
        raise BundleRecordsError(f"{path.name} is nested too deeply to be read", path=str(path)) from exc
    if not isinstance(found, dict):
        raise BundleRecordsError(f"{path.name} is not a JSON object", path=str(path))
    return found


def training_ends(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The audit trail's ``run.end`` records of the run's training (train, resume, a user loop):
    ``respond`` and ``prove-pending`` end sessions of their own, marked with their ``command``,
    whose status is not the run's."""
    return [e for e in events if e.get("event") == "run.end" and "command" not in e]


def complete_records(path: Path) -> list[Any]:
    """The records of a JSON-lines file a kill may have cut short (its last, partial line left
    out); none for a missing file. ValueError for a line in the middle that is not JSON."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].split(b"\n") if line.strip()]


def open_session(events: list[dict[str, Any]]) -> str | None:
    """The command of a later session (``respond``, ``prove-pending``) the audit trail ends in
    without its ``run.end`` (killed, or still running): verify fails such a trail
    (``not-closed``) whatever the training's end (review53: export handed it over as finished)."""
    if not events or events[-1].get("event") == "run.end":
        return None
    last_end = max((i for i, e in enumerate(events) if e.get("event") == "run.end"), default=-1)
    opened = [e for e in events[last_end + 1:] if str(e.get("event", "")).endswith(".start") and "command" in e]
    return str(opened[-1]["command"]) if opened else None


def load_model(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors model file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, dict(handle.metadata() or {})


@dataclass(frozen=True)
class BundleReader:
    """A run directory, read."""

    root: Path

    @classmethod
    def open(cls, root: Path) -> "BundleReader":
        root = Path(root)
        if not (root / MANIFEST).is_file():
            raise ConfigurationError(f"{root} is not a pot-zk run directory (no {MANIFEST})", key="run")
        return cls(root)

    @classmethod
    def open_received(cls, root: Path) -> "BundleReader":
        """A run someone else wrote (the auditor's ``challenge``, ``report``): :meth:`open`, and
        ConfigurationError (saying which file, not which run) when a file it reads is a link or
        not a regular file (:func:`not_regular`)."""
        bundle = cls.open(root)
        foreign = not_regular(bundle.root)
        if foreign is not None:
            raise ConfigurationError(foreign, key="run")
        return bundle

    def path(self, name: str) -> Path:
        return self.root / name

    def proof_dir(self, step: int) -> Path:
        return self.root / "proofs" / f"step-{step:08d}"

    def witness_path(self, step: int) -> Path:
        return self.root / "witness" / f"step-{step:08d}.safetensors"

    @property
    def park_dir(self) -> Path:
        return self.root / "pending"

    def manifest(self) -> dict[str, Any]:
        return _json_object(self.path(MANIFEST))

    def dataset(self) -> dict[str, Any]:
        return _json_object(self.path(DATASET))

    def commitments(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path(COMMITMENTS))

    def proofs(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path(PROOFS))

    def evaluations(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path(EVALUATIONS))

    def relative(self, path: str | Path) -> str:
        return os.path.relpath(Path(path).resolve(), self.root.resolve())
