"""The run bundle, write side: the trainer's :class:`RunBundle` is a
:class:`~pot_zk.bundle.layout.BundleReader` (the format, file names and readers live in
:mod:`pot_zk.bundle`, which the verifier shares) that also writes the manifest and appends
records.

JSON-lines files are appended one complete line per write with fsync; a line cut short by a
crash is dropped (and reported) when the run is resumed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pot_zk.bundle.layout import (
    AUDIT,
    CHECKPOINT,
    COMMITMENTS,
    CONFIG,
    DATASET,
    EVALUATIONS,
    FINAL_MODEL,
    INITIAL_MODEL,
    MANIFEST,
    PROOFS,
    BundleReader,
    load_model,
    read_jsonl,
)
from pot_zk.core.atomic import StorageError, append_line, atomic_path, write_json_atomic

if TYPE_CHECKING:
    import torch

__all__ = [
    "AUDIT", "CHECKPOINT", "COMMITMENTS", "CONFIG", "DATASET", "EVALUATIONS", "FINAL_MODEL", "INITIAL_MODEL", "MANIFEST", "PROOFS",
    "RunBundle", "append_jsonl", "discard_incomplete_tail", "load_model", "read_jsonl", "save_model",
]


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    append_line(path, (json.dumps(record, sort_keys=True) + "\n").encode())


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
class RunBundle(BundleReader):
    """A run directory the trainer writes."""

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.path(MANIFEST), manifest)

    def append_evaluation(self, record: dict[str, Any]) -> None:
        append_jsonl(self.path(EVALUATIONS), record)

    def append_commitment(self, record: dict[str, Any]) -> None:
        append_jsonl(self.path(COMMITMENTS), record)

    def append_proof(self, record: dict[str, Any]) -> None:
        append_jsonl(self.path(PROOFS), record)


def save_model(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    from safetensors import SafetensorError

    with atomic_path(path) as tmp:
        try:
            save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp), metadata=metadata)
        except SafetensorError as error:  # safetensors reports a full disk as its own error
            raise StorageError(path, error) from error
