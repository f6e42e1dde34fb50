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
import re
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
    EXPORT_INVENTORY,
    FINAL_MODEL,
    INITIAL_MODEL,
    MANIFEST,
    PROOFS,
    BundleReader,
    complete_records,
    load_model,
    open_session,
    read_jsonl,
    training_ends,
)
from pot_zk.core.atomic import StorageError, append_line, atomic_path, write_json_atomic

if TYPE_CHECKING:
    import torch

__all__ = [
    "AUDIT", "CHECKPOINT", "COMMITMENTS", "CONFIG", "DATASET", "EVALUATIONS", "EXPORT_INVENTORY", "FINAL_MODEL", "INITIAL_MODEL", "MANIFEST", "PROOFS",
    "RunBundle", "append_jsonl", "complete_records", "discard_incomplete_tail", "load_model", "open_session", "read_jsonl", "save_model", "training_ends",
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


LOCK_FILES = frozenset({".pot-zk.lock", ".pot-zk.lock.json"})
"""The run directory's lock (:mod:`pot_zk.runs.lock`), which the command creating a run holds."""


def _atomic_leftover(name: str, ours: set[str] | frozenset[str]) -> bool:
    """Whether ``name`` is the temporary file of an atomic write of one of ``ours``
    (:func:`pot_zk.core.atomic.atomic_path`: ``.NAME.XXXXXXXX.tmp``) that a kill left behind."""
    return any(re.fullmatch(rf"\.{re.escape(own)}\.\w+\.tmp", name) for own in ours)


def check_new_run_dir(run_dir: Path, hint: str, allowed: frozenset[str] = LOCK_FILES) -> None:
    """ConfigurationError unless ``run_dir`` can take a new run: it holds no run (``hint``: what
    to do instead) and no files but ``allowed`` ones (its lock; inside ``pot-zk train``'s Hydra
    app also the record and log Hydra just wrote): a run would write over anything else (an
    empty ``run_dir=`` is the current directory)."""
    from pot_zk.exceptions import ConfigurationError

    run_dir = Path(run_dir).absolute()
    if (run_dir / MANIFEST).exists():
        raise ConfigurationError(f"{run_dir} already holds a run; {hint}", key="run_dir")
    if run_dir.is_dir():
        foreign = sorted(entry.name for entry in run_dir.iterdir() if entry.name not in allowed)
        started = {DATASET, CONFIG, INITIAL_MODEL, ".hydra", "train.log"}  # what pot-zk train writes before its manifest
        ours = started | LOCK_FILES | {MANIFEST}
        unfinished = {name for name in foreign if _atomic_leftover(name, ours)}  # a kill during an atomic write (a review)
        if foreign and set(foreign) - unfinished <= started and (unfinished or DATASET in foreign or ".hydra" in foreign):
            raise ConfigurationError(
                f"{run_dir} holds the files of a run that never started ({', '.join(foreign)}, no {MANIFEST}: killed while it was "
                "prepared?); remove them, or give a new run_dir",
                key="run_dir",
            )
        if foreign:
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise ConfigurationError(
                f"{run_dir} holds files that are not a pot-zk run ({shown}): a run would write over them; give a new or empty run_dir",
                key="run_dir",
            )


def remove_launch_files(run_dir: Path, names: tuple[str, ...]) -> None:
    """After a ``pot-zk train`` that failed before its run started (no manifest), holding the
    run's lock: remove ``names``, what its Hydra app wrote into the directory (which held none
    of them: :func:`check_new_run_dir`). The lock's release removes a directory it created."""
    import shutil

    run_dir = Path(run_dir)
    if not run_dir.is_dir() or (run_dir / MANIFEST).exists():
        return
    for name in names:
        target = run_dir / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


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
