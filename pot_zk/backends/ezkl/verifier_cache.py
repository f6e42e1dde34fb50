"""The circuit and verifying key that zk-halo2 verification derived itself, kept in the
verifier's own cache so that the next ``pot-zk verify`` of the statement does not compile and
run ezkl's setup again (minutes and GBs for the digits circuit).

    <cache>/verifier/ezkl/<circuit id>/circuit/        settings.json, model.compiled, derived.json
    <cache>/verifier/ezkl/<circuit id>/<SRS SHA-256>/  vk.key, derived.json

``<cache>`` is the verifier's cache (``pot-zk verify --cache-dir``; its trust store is
``<cache>/trust/``). Only verification writes here: training and the prover programs keep
their circuits and keys under ``<cache>/circuits/``, which verification never reads. Each
entry is derived in a private staging directory and renamed into place whole, under a lock.
``derived.json`` records what the entry was derived from (the statement and its circuit id,
ezkl's version; for a key, the SRS's SHA-256 and the SHA-256s of the circuit files) and the
SHA-256 of every file. An entry is reused only when every directory from ``<cache>/verifier``
down is this user's and writable by nobody else, and the record and every file's SHA-256
match; otherwise the entry is derived afresh (and replaced) and a note says why. Whoever can
write to the verifier's cache as this user can still plant a consistent entry: docs/runs.md,
"Circuits and keys", says what that changes.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pot_zk.backends.ezkl import adapter as ezkl_adapter
from pot_zk.backends.ezkl import halo2
from pot_zk.backends.ezkl.adapter import CompiledCircuit, SrsRef
from pot_zk.backends.ezkl.statement import FixedPointCheck
from pot_zk.core.atomic import publish, staging_directory
from pot_zk.core.digest import file_sha256

VERIFIER_DIR = "verifier"
RECORD = "derived.json"
FORMAT = "pot-zk-verifier-derivation/1"
CIRCUIT_FILES = ("settings.json", "model.compiled")
KEY_FILES = ("vk.key",)


@dataclass(frozen=True)
class DerivedVerifier:
    """What checking zk-halo2 proofs of one statement under one SRS needs, derived by the verifier."""

    circuit: CompiledCircuit
    srs: SrsRef
    vk: Path | None
    """None when the SRS has fewer rows than the circuit needs (each proof is then ``srs-mismatch``)."""
    source: str
    """``derived`` (by this process, now) or ``verifier-cache`` (by an earlier verify, checked)."""
    derive_s: float
    """Seconds this process spent compiling and deriving (0 when reused)."""
    notes: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "directory": str(self.vk.parent if self.vk is not None else self.circuit.directory),
            "vk_sha256": file_sha256(self.vk) if self.vk is not None else None,
            "derive_s": round(self.derive_s, 3),
        }


class VerifierCache:
    """Derives circuits and verifying keys, reusing and filling ``root`` (None: derive afresh
    into ``workdir``, a directory of this process's own, every time)."""

    def __init__(self, root: Path | None, workdir: Path, notes: tuple[str, ...] = ()) -> None:
        self.root = root
        self.workdir = Path(workdir)
        self._notes = notes

    @classmethod
    def open(cls, cache_dir: Path, workdir: Path, enabled: bool = True) -> "VerifierCache":
        """The cache under ``cache_dir`` (created mode 0700), or none when ``enabled`` is false or
        the directory is not private to this user (a note says so)."""
        if not enabled:
            return cls(None, workdir)
        top = Path(cache_dir) / VERIFIER_DIR
        for directory in (top, top / "ezkl"):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            why = _not_private(directory)
            if why is not None:
                return cls(None, workdir, (f"the verifier cache was not used ({why}): circuit and verifying key derived afresh",))
        return cls(top / "ezkl", workdir)

    def circuit(self, spec: FixedPointCheck) -> tuple[CompiledCircuit, float, tuple[str, ...]]:
        """The compiled circuit of ``spec``, seconds spent compiling it now, notes."""
        if self.root is None:
            started = time.perf_counter()
            return halo2.compiled_circuit(spec, self.workdir), time.perf_counter() - started, self._notes
        with ezkl_adapter.directory_lock(self._home(spec)):
            return self._circuit(spec)

    def verifier(self, spec: FixedPointCheck, srs: SrsRef) -> DerivedVerifier:
        """The circuit of ``spec`` and its verifying key under ``srs``."""
        if self.root is None:
            circuit, derive_s, notes = self.circuit(spec)
            started = time.perf_counter()
            vk = ezkl_adapter.verifying_key(circuit, srs) if circuit.logrows <= srs.logrows else None
            return DerivedVerifier(circuit, srs, vk, "derived", derive_s + time.perf_counter() - started, notes)
        with ezkl_adapter.directory_lock(self._home(spec)):
            circuit, derive_s, notes = self._circuit(spec)
            if circuit.logrows > srs.logrows:
                return DerivedVerifier(circuit, srs, None, _source(derive_s), derive_s, notes)
            entry = self._home(spec) / srs.sha256
            expected = {"circuit_id": spec.circuit_id(), "srs_sha256": srs.sha256, "circuit_sha256": _recorded(circuit.directory)}
            why = _rejected(entry, expected, KEY_FILES)
            if why is None:
                return DerivedVerifier(circuit, srs, entry / "vk.key", _source(derive_s), derive_s, notes)
            started = time.perf_counter()
            with staging_directory(entry.parent) as staged:
                ezkl_adapter.setup_verifying_key(circuit, srs, staged)
                _seal(staged, KEY_FILES, {**expected, "statement": spec.to_dict()}, time.perf_counter() - started)
                publish(staged, entry)
            notes = notes + _rejection_note(entry, why)
            return DerivedVerifier(circuit, srs, entry / "vk.key", "derived", derive_s + time.perf_counter() - started, notes)

    def _home(self, spec: FixedPointCheck) -> Path:
        assert self.root is not None
        home = self.root / spec.circuit_id()
        home.mkdir(mode=0o700, exist_ok=True)
        return home

    def _circuit(self, spec: FixedPointCheck) -> tuple[CompiledCircuit, float, tuple[str, ...]]:
        entry = self._home(spec) / "circuit"
        expected = {"circuit_id": spec.circuit_id(), "statement": spec.to_dict()}
        why = _rejected(entry, expected, CIRCUIT_FILES)
        if why is None:
            return _compiled(spec, entry), 0.0, self._notes
        started = time.perf_counter()
        with staging_directory(entry.parent) as staged:
            built = halo2.compiled_circuit(spec, staged / "build")
            for name in CIRCUIT_FILES:
                os.replace(built.directory / name, staged / name)
            shutil.rmtree(staged / "build")
            _seal(staged, CIRCUIT_FILES, expected, time.perf_counter() - started)
            publish(staged, entry)
        return _compiled(spec, entry), time.perf_counter() - started, self._notes + _rejection_note(entry, why)


def _source(derive_s: float) -> str:
    """A derivation takes time; a reused entry none."""
    return "derived" if derive_s > 0 else "verifier-cache"


def _compiled(spec: FixedPointCheck, directory: Path) -> CompiledCircuit:
    settings = json.loads((directory / "settings.json").read_text())
    return CompiledCircuit(circuit_id=spec.circuit_id(), directory=directory, logrows=int(settings["run_args"]["logrows"]))


def _recorded(directory: Path) -> dict[str, str]:
    """The SHA-256s a checked entry's record gives its files."""
    return dict(json.loads((directory / RECORD).read_text())["sha256"])


def _not_private(path: Path) -> str | None:
    """Why ``path`` could hold what someone else put there (None: it is this user's, writable by no one else)."""
    status = os.stat(path)
    if status.st_uid != os.getuid():
        return f"{path} belongs to uid {status.st_uid}, not to this user"
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by others (mode {stat.S_IMODE(status.st_mode):o})"
    return None


def _rejected(entry: Path, expected: Mapping[str, Any], files: tuple[str, ...]) -> str | None:
    """Why the entry cannot be reused (``absent`` when there is none); None when it can."""
    if not entry.is_dir():
        return "absent"
    for path in (entry.parent, entry, *(entry / name for name in (RECORD, *files) if (entry / name).exists())):
        why = _not_private(path)
        if why is not None:
            return why
    try:
        record = json.loads((entry / RECORD).read_text())
    except (OSError, ValueError):
        return f"its {RECORD} is missing or unreadable"
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("ezkl") != ezkl_adapter.EZKL_VERSION:
        return f"its {RECORD} is not a record of this verifier (format, ezkl version)"
    for key, value in expected.items():
        if record.get(key) != value:
            return f"its {RECORD} records another {key}"
    digests = record.get("sha256") if isinstance(record.get("sha256"), dict) else {}
    for name in files:
        if not (entry / name).is_file() or file_sha256(entry / name) != digests.get(name):
            return f"{name} does not have the SHA-256 recorded beside it"
    return None


def _rejection_note(entry: Path, why: str) -> tuple[str, ...]:
    if why == "absent":
        return ()
    return (f"the verifier cache entry {entry} was not used ({why}): derived afresh and replaced",)


def _seal(staged: Path, files: tuple[str, ...], derived_from: Mapping[str, Any], derive_s: float) -> None:
    record = {
        "format": FORMAT,
        "ezkl": ezkl_adapter.EZKL_VERSION,
        **derived_from,
        "sha256": {name: file_sha256(staged / name) for name in files},
        "derived_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "derive_s": round(derive_s, 3),
    }
    (staged / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    for name in (*files, RECORD):
        os.chmod(staged / name, 0o600)
