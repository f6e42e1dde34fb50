"""Verifier-owned key material (designated verifier): ``pot-zk keys new`` and ``keys.json``.

The auditor generates, for the declared statement(s), whatever the proof system's soundness
rests on (ezkl: the KZG SRS, whose trapdoor its generator could know; Groth16: the setup's
proving and verifying keys), hands the trainer what proving needs, and verifies with its own
copy. The statements' backend generates the material
(:meth:`~pot_zk.backends.base.ProverBackend.new_keys`): it writes its files into ``out_dir`` (never elsewhere except its own ``cache_dir``) and says
which of them the trainer receives (``handover``) and with which config overrides the trainer
proves (``trainer_overrides``). :func:`new_keys` adds the manifest ``keys.json``: format, proof
type, statements (circuit id and spec), the learning-rate schedule declared with them (a
statement whose rate is public proves any schedule up to its rate: the keys pin the one agreed,
``keys-schedule-mismatch``), the files with their SHA-256, who generated them, on which host and
when.
"""

from __future__ import annotations

import getpass
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from pot_zk.core.atomic import write_json_atomic
from pot_zk.exceptions import ConfigurationError
from pot_zk.core.digest import file_sha256

if TYPE_CHECKING:  # imports torch: reading a key set (a trust store, `pot-zk challenge`) needs none
    from pot_zk.backends.base import GeneratedKeys, Statement

KEYS_FORMAT = "pot-zk-keys/1"
KEYS_FILE = "keys.json"


@dataclass(frozen=True)
class KeySet:
    """A keys directory made by ``pot-zk keys new``, its files checked against keys.json."""

    directory: Path
    proof_type: str
    backend: str
    circuit_ids: tuple[str, ...]
    files: Mapping[str, str]
    sha256: Mapping[str, str]
    handover: tuple[str, ...]
    trainer_overrides: tuple[str, ...]
    generated_by: str
    generated_at: str
    details: Mapping[str, Any]
    schedule: Mapping[str, Any] | None = None
    """The learning-rate schedule the keys were made for (``training.schedule`` of a run's
    manifest); None: a constant rate, the statement's."""

    def path(self, role: str) -> Path:
        if role not in self.files:
            raise ConfigurationError(f"the keys in {self.directory} have no {role!r} file (they hold {sorted(self.files)})", key="keys")
        return self.directory / self.files[role]

    @classmethod
    def load(cls, directory: Path) -> "KeySet":
        directory = Path(directory)
        try:
            data = json.loads((directory / KEYS_FILE).read_text())
            if data.get("format") != KEYS_FORMAT:
                raise ValueError(f"format {data.get('format')!r} is not {KEYS_FORMAT}")
            keys = cls(
                directory=directory,
                proof_type=str(data["proof_type"]),
                backend=str(data["backend"]),
                circuit_ids=tuple(str(s["circuit_id"]) for s in data["statements"]),
                files=dict(data["files"]),
                sha256=dict(data["sha256"]),
                handover=tuple(data["handover"]),
                trainer_overrides=tuple(data["trainer_overrides"]),
                generated_by=str(data["generated_by"]),
                generated_at=str(data["generated_at"]),
                details=dict(data.get("details") or {}),
                schedule=data.get("schedule"),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"{directory} is not a keys directory made by `pot-zk keys new`: {exc}", key="keys") from exc
        for role in keys.files:
            path = keys.path(role)
            if not path.is_file() or file_sha256(path) != keys.sha256.get(role):
                raise ConfigurationError(f"{path} is missing or differs from the SHA-256 {KEYS_FILE} recorded for it", key="keys")
        return keys


def new_keys(statements: Sequence[Statement], out_dir: Path, cache_dir: Path, schedule: Mapping[str, Any] | None = None) -> KeySet:
    """Generate key material for ``statements`` (of one backend, trained at ``schedule``) into
    ``out_dir`` (which must not hold keys yet), with their backend's
    :meth:`~pot_zk.backends.base.ProverBackend.new_keys`."""
    from pot_zk.backends.registry import backend_of

    backends = {spec.backend for spec in statements}
    if len(backends) != 1:
        raise ConfigurationError(f"keys new needs statements of one backend, not {sorted(backends)}", key="keys")
    backend = backend_of(statements[0])
    return write_key_set(backend.proof_type, statements, out_dir, lambda directory: backend.new_keys(statements, directory, Path(cache_dir)), schedule)


def write_key_set(
    proof_type: str, statements: Sequence[Statement], out_dir: Path, generate: Callable[[Path], GeneratedKeys], schedule: Mapping[str, Any] | None = None,
) -> KeySet:
    """Let ``generate`` write key material for ``statements`` (trained at ``schedule``) into
    ``out_dir`` (which must not hold keys yet), then add ``keys.json``. ``new_keys`` generates; a backend's import (e.g. a
    Groth16 ceremony zkey) brings key material made elsewhere into the same format."""
    out_dir = Path(out_dir)
    if (out_dir / KEYS_FILE).exists():
        raise ConfigurationError(f"{out_dir} already holds keys ({KEYS_FILE}); choose a new directory", key="keys")
    if not statements:
        raise ConfigurationError("keys new needs at least one statement", key="keys")
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        generated = generate(out_dir)
    except BaseException:  # a failed import, Ctrl-C: leave no directory the command made (an empty one blocks nothing, but misleads)
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    write_json_atomic(
        out_dir / KEYS_FILE,
        {
            "format": KEYS_FORMAT,
            "proof_type": proof_type,
            "backend": generated.backend,
            "statements": [{"circuit_id": spec.circuit_id(), "circuit": spec.to_dict()} for spec in statements],
            "schedule": None if schedule is None else dict(schedule),
            "files": dict(generated.files),
            "sha256": {role: file_sha256(out_dir / name) for role, name in generated.files.items()},
            "handover": list(generated.handover),
            "trainer_overrides": list(generated.trainer_overrides),
            "details": dict(generated.details),
            "generated_by": f"{getpass.getuser()}@{socket.gethostname()}",
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    return KeySet.load(out_dir)
