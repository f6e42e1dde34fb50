"""The run bundle: one directory per run holding everything ``pot-zk verify`` needs.

Layout (docs/bundle.md)::

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

JSON-lines files are appended one complete line per write with fsync; a line cut short by a
crash is dropped (and reported) when the run is resumed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pot_zk.core.atomic import StorageError, append_line, atomic_path, write_json_atomic
from pot_zk.exceptions import ConfigurationError

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


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    append_line(path, (json.dumps(record, sort_keys=True) + "\n").encode())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete records of a JSON-lines file; raises ValueError on a malformed line."""
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path.name} line {number} is not a JSON record: {exc}") from exc
    return records


def discard_incomplete_tail(path: Path) -> bytes:
    """Cut a last line that a crash left without its newline; return what was cut."""
    if not path.exists():
        return b""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return b""
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as handle:
        handle.truncate(keep)
        os.fsync(handle.fileno())
    return data[keep:]


@dataclass(frozen=True)
class RunBundle:
    root: Path

    @classmethod
    def open(cls, root: Path) -> "RunBundle":
        root = Path(root)
        if not (root / MANIFEST).is_file():
            raise ConfigurationError(f"{root} is not a pot-zk run directory (no {MANIFEST})", key="run")
        return cls(root)

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
        return json.loads(self.path(MANIFEST).read_text())

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.path(MANIFEST), manifest)

    def dataset(self) -> dict[str, Any]:
        return json.loads(self.path(DATASET).read_text())

    def commitments(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path(COMMITMENTS))

    def proofs(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path(PROOFS))

    def evaluations(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path(EVALUATIONS))

    def append_evaluation(self, record: dict[str, Any]) -> None:
        append_jsonl(self.path(EVALUATIONS), record)

    def append_commitment(self, record: dict[str, Any]) -> None:
        append_jsonl(self.path(COMMITMENTS), record)

    def append_proof(self, record: dict[str, Any]) -> None:
        append_jsonl(self.path(PROOFS), record)

    def relative(self, path: str | Path) -> str:
        return os.path.relpath(Path(path).resolve(), self.root.resolve())


def save_model(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    from safetensors import SafetensorError

    with atomic_path(path) as tmp:
        try:
            save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp), metadata=metadata)
        except SafetensorError as error:  # safetensors reports a full disk as its own error
            raise StorageError(path, error) from error


def load_model(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, dict(handle.metadata() or {})
