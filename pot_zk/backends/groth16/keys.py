"""Groth16 keys of a circuit: made once, cached by circuit id, opened by whoever names them.

A key directory holds ``circuit.circom`` (the source the keys were made for), ``pk.bin``
(the proving key: CRS, constraints and witness program), ``vk.bin`` and ``vk.json`` (the
verifying key, arkworks and snarkjs encodings) and ``provenance.json``:

    {"provenance": "dev" | "auditor" | "zkey", "circuit_id": ..., "circuit_sha256": ...,
     "vk_sha256": ..., "engine": "groth16py", "engine_version": ..., "constraints": {...}, ...}

Provenance is the whole trust question for Groth16 (docs/groth16.md): whoever ran a
single-party setup (``dev``: the prover; ``auditor``: the verifier) knows the trapdoor and can
forge proofs; ``zkey`` keys come from a snarkjs phase-2 ceremony. A directory is written
under a temporary name and renamed into place, so a crash leaves no half-written keys and a
second run finds a complete directory or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from pot_zk.backends.groth16 import adapter, zkey
from pot_zk.backends.groth16.statement import Groth16Statement
from pot_zk.exceptions import ConfigurationError
from pot_zk.core.digest import file_sha256
from pot_zk.core.small_files import SMALL_FILE_BYTES, read_small_bytes, read_small_file
from pot_zk.core.prover_processes import owner_tag, tag_of_a_gone_process

PROVENANCES = ("dev", "auditor", "zkey")
SETUP_PROVENANCES = ("dev", "auditor")


@dataclass(frozen=True)
class KeyDirectory:
    """An opened, checked key directory of one circuit."""

    path: Path
    circuit_id: str
    record: dict[str, Any]
    created: bool = False
    """True when this call ran the setup (or the import); False for a cache hit."""

    @property
    def provenance(self) -> str:
        return str(self.record["provenance"])

    def load_proving_key(self) -> adapter.ProvingKey:
        path = self.path / "pk.bin"
        if not path.is_file():
            raise ConfigurationError(f"key directory {self.path} has no proving key (pk.bin)", key="keys_dir")
        return adapter.load_proving_key(path)

    def load_verifying_key(self) -> adapter.VerifyingKey:
        return adapter.load_verifying_key(self.path / "vk.bin")


@dataclass(frozen=True)
class CircuitVerifyingKey:
    """A verifying key together with the circuit it was checked to belong to."""

    circuit_id: str
    provenance: str
    directory: Path
    key: adapter.VerifyingKey
    vk_sha256: str


def key_directory(cache_dir: Path, spec: Groth16Statement) -> Path:
    """Where ``ensure_keys`` caches the keys of ``spec``."""
    return Path(cache_dir) / "groth16" / spec.circuit_id()


def ensure_keys(spec: Groth16Statement, cache_dir: Path, *, provenance: str = "dev") -> KeyDirectory:
    """The cached keys of ``spec``, running the setup only if there are none yet."""
    directory = key_directory(cache_dir, spec)
    if not directory.exists():
        locks = Path(cache_dir) / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(locks / f"groth16-{directory.name}.lock"):  # one setup per circuit at a time: a second process waits, then opens it
            if not directory.exists():
                return create_keys(spec, directory, provenance=provenance)
    keys = open_keys(spec, directory)
    if keys.provenance != provenance:
        raise ConfigurationError(
            f"the cached keys in {directory} have provenance {keys.provenance!r}, not {provenance!r}",
            key="keys.provenance",
        )
    return keys


def create_keys(spec: Groth16Statement, directory: Path, *, provenance: str = "dev") -> KeyDirectory:
    """Run groth16py's single-party setup for ``spec`` into ``directory`` (which must not exist).

    ``provenance`` says who runs it: ``dev`` (the prover itself; refused in production) or
    ``auditor`` (the verifier, who then hands the proving key to the prover)."""
    if provenance not in SETUP_PROVENANCES:
        raise ConfigurationError(f"a setup has provenance {SETUP_PROVENANCES}, not {provenance!r}", key="keys.provenance")

    def make(source: Path) -> tuple[Any, Any, adapter.CompileReport, dict[str, Any]]:
        return (*adapter.setup(source), {})

    return _write_keys(spec, Path(directory), provenance, make)


def import_zkey_keys(spec: Groth16Statement, zkey_path: Path, directory: Path) -> KeyDirectory:
    """Keys of a snarkjs phase-2 ceremony (a ``.zkey`` made for ``spec.circuit_source()``
    compiled with circom ``--O2``) into ``directory`` (which must not exist), labelled ``zkey``.

    Refused with a ConfigurationError (key ``zkey``), nothing written, unless the zkey's header
    fits the circuit (protocol, curve, public values, wires, domain: :mod:`.zkey`) and an honest
    sample step proven with it verifies under it. That is not proof that the zkey was made for
    exactly this circuit: ``snarkjs zkey verify`` against the r1cs and the powers of tau is."""
    zkey_path = Path(zkey_path)
    if not zkey_path.is_file():
        raise ConfigurationError(f"zkey file {zkey_path} does not exist", key="zkey")
    header = zkey.read_header(zkey_path)
    zkey.check_header(header, spec, zkey_path)

    def make(source: Path) -> tuple[Any, Any, adapter.CompileReport, dict[str, Any]]:
        pk, vk, report = adapter.import_zkey(zkey_path, source)
        zkey.check_compiled(header, report, zkey_path)
        zkey.check_trial_proof(spec, pk, vk, zkey_path)
        return pk, vk, report, {"zkey_path": str(zkey_path.absolute()), "zkey_sha256": file_sha256(zkey_path)}

    return _write_keys(spec, Path(directory), "zkey", make)


def _spec_difference(made_for: Any, wanted: dict[str, Any]) -> str:
    """``; they differ in KEY: A (the keys) vs B (this statement), ...``: which settings of the
    statement the keys were made for are not this one's (review27: the message named circuit ids
    only); empty when the keys' record has no statement to compare."""
    if not isinstance(made_for, dict):
        return ""

    def flat(value: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): value}

    theirs, ours = flat(made_for), flat(wanted)
    differ = [f"{key}: {theirs.get(key, 'absent')} (the keys) vs {ours.get(key, 'absent')} (this statement)"
              for key in sorted(set(theirs) | set(ours)) if theirs.get(key) != ours.get(key)]
    return f"; they differ in {', '.join(differ[:4])}" if differ else ""


def open_keys(spec: Groth16Statement, directory: Path) -> KeyDirectory:
    """Open a key directory after checking it belongs to ``spec``: its provenance record
    names this circuit id and its ``circuit.circom`` is exactly the source this code
    generates for ``spec`` (stale or foreign keys are refused, not used)."""
    directory = Path(directory)
    expected_source = spec.circuit_source()
    source_limit = max(SMALL_FILE_BYTES, 4 * len(expected_source.encode()))
    said = read_small_file(directory / "provenance.json")
    source = read_small_file(directory / "circuit.circom", limit=source_limit)  # review49: a pipe hung verify --srs DIR
    if said is None or source is None:
        raise ConfigurationError(
            f"{directory} is not a groth16 key directory: its provenance.json and circuit.circom must be regular files (not links or pipes), "
            f"of at most {SMALL_FILE_BYTES:,} bytes (the source: {source_limit:,})",
            key="keys_dir",
        )
    try:
        record = json.loads(said)
    except ValueError as exc:
        raise ConfigurationError(f"{directory} is not a groth16 key directory: provenance.json: {exc}", key="keys_dir") from exc
    if not isinstance(record, dict) or record.get("provenance") not in PROVENANCES:
        raise ConfigurationError(f"{directory}/provenance.json has no valid provenance", key="keys_dir")
    if record.get("circuit_id") != spec.circuit_id():
        raise ConfigurationError(
            f"the keys in {directory} were made for another circuit (id {record.get('circuit_id')!r}), "
            f"not {spec.circuit_id()} ({spec.circuit_version}){_spec_difference(record.get('spec'), spec.to_dict())}",
            key="keys_dir",
            expected=spec.circuit_id(),
            actual=record.get("circuit_id"),
        )
    if source != expected_source:
        raise ConfigurationError(
            f"{directory}/circuit.circom is not the source this pot-zk generates for circuit {spec.circuit_id()}: "
            "the keys are stale (made by another version) or were tampered with",
            key="keys_dir",
        )
    vk = directory / "vk.bin"
    if not _small_regular(vk) or file_sha256(vk) != record.get("vk_sha256"):
        raise ConfigurationError(f"{directory}/vk.bin is missing or not the key its provenance record names", key="keys_dir")
    return KeyDirectory(directory, spec.circuit_id(), record)


VK_BYTES = 1 << 20
"""The largest ``vk.bin`` opened: a verifying key is its constants and one point per public
value (a few KB); review49: the trainer's record names the hash of whatever file is there."""


def _small_regular(path: Path) -> bool:
    try:
        status = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(status.st_mode) and status.st_size <= VK_BYTES


def load_verifying_key(spec: Groth16Statement, directory: Path) -> CircuitVerifyingKey:
    """The verifying key in a directory the verifier names, checked against ``spec``. The key
    loaded is the bytes whose SHA-256 is checked, read once: ``vk.bin`` replaced between a hash
    and a second read would have had another key used under the recorded one's name (review56)."""
    keys = open_keys(spec, directory)
    data = read_small_bytes(keys.path / "vk.bin", VK_BYTES)
    if data is None or hashlib.sha256(data).hexdigest() != keys.record.get("vk_sha256"):
        raise ConfigurationError(f"{directory}/vk.bin changed as it was read: it is not the key its provenance record names", key="keys_dir")
    vk = adapter.verifying_key_from_bytes(data)
    if adapter.public_count(vk) != len(spec.public_order):
        raise ConfigurationError(f"{directory}/vk.bin expects {adapter.public_count(vk)} public values, not {len(spec.public_order)}", key="keys_dir")
    return CircuitVerifyingKey(keys.circuit_id, keys.provenance, keys.path, vk, str(keys.record["vk_sha256"]))


def _write_keys(
    spec: Groth16Statement,
    directory: Path,
    provenance: str,
    make: Callable[[Path], tuple[Any, Any, adapter.CompileReport, dict[str, Any]]],
) -> KeyDirectory:
    if directory.exists():
        raise ConfigurationError(f"key directory {directory} already exists", key="keys_dir")
    directory.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_scratch(directory)  # before this process adds its own
    scratch = Path(tempfile.mkdtemp(prefix=f".{directory.name}.{owner_tag() or 'setup'}.", dir=directory.parent))
    try:
        source = spec.circuit_source()
        (scratch / "circuit.circom").write_text(source)
        started = time.perf_counter()
        pk, vk, report, extra = make(scratch / "circuit.circom")
        seconds = time.perf_counter() - started
        adapter.save_keys(pk, vk, scratch)
        record = {
            "provenance": provenance,
            "circuit_id": spec.circuit_id(),
            "circuit_version": spec.circuit_version,
            "spec": spec.to_dict(),
            "circuit_sha256": hashlib.sha256(source.encode()).hexdigest(),
            "vk_sha256": file_sha256(scratch / "vk.bin"),
            "engine": "groth16py",
            "engine_version": adapter.ENGINE_VERSION,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "setup_s": round(seconds, 3),
            "constraints": report.to_dict(),
            **extra,
        }
        (scratch / "provenance.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        _fsync_tree(scratch)
        try:
            os.rename(scratch, directory)
        except OSError:
            if not directory.exists():
                raise
            shutil.rmtree(scratch, ignore_errors=True)  # another process finished first: use its keys
            return open_keys(spec, directory)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return KeyDirectory(directory, spec.circuit_id(), record, created=True)


def _remove_abandoned_scratch(directory: Path) -> None:
    """Remove the scratch directories beside ``directory`` of key setups on this host whose process
    is gone (killed mid-setup: a partial proving key of up to hundreds of MB). A scratch directory
    is named ``.NAME.TAG.XXXX`` (TAG: :func:`~pot_zk.core.prover_processes.owner_tag`); one of a
    process still running, or of another host (a shared cache), stays."""
    for scratch in directory.parent.glob(".*.*-*-*.*"):
        parts = scratch.name[1:].split(".")
        if len(parts) == 3 and scratch.is_dir() and not scratch.is_symlink() and tag_of_a_gone_process(parts[1]):
            shutil.rmtree(scratch, ignore_errors=True)


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


