"""Groth16's part of ``pot-zk keys new``, ``pot-zk keys import-zkey`` and ``pot-zk verify --keys
DIR`` (pot_zk/backends/keys.py).

``keys new``: the auditor runs the single-party setup for the declared statement (provenance
``auditor``): the trapdoor is the auditor's, so proofs made with the proving key it hands over
are sound *for the auditor*. ``keys import-zkey``: the keys of a snarkjs phase-2 ceremony
(provenance ``zkey``; :func:`~pot_zk.backends.groth16.keys.import_zkey_keys` checks the zkey
against the circuit), sound for anyone who trusts one contributor of the ceremony; whoever
verifies imports the same public zkey and gets the same verifying key. The key directory (``<out>/<circuit id>/``: ``circuit.circom``, ``pk.bin``,
``vk.bin``, ``vk.json``, ``provenance.json``) goes to the trainer, who proves with
``srs.path=<that directory>``; the auditor keeps its own copy and verifies with it, so a run
proven with any other key fails (``foreign-keys`` here, ``invalid-proof`` in the proofs check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pot_zk.backends.groth16.keys import create_keys, import_zkey_keys
from pot_zk.backends.groth16.prove import PROOF_TYPE
from pot_zk.backends.base import GeneratedKeys
from pot_zk.backends.keys import KeySet
from pot_zk.exceptions import ConfigurationError

KEY_FILES = {"pk": "pk.bin", "vk": "vk.bin", "vk_json": "vk.json", "circuit": "circuit.circom", "provenance": "provenance.json"}


def new_keys(statements: Sequence[Any], out_dir: Path, cache_dir: Path) -> GeneratedKeys:
    """One auditor setup per statement, each into ``out_dir/<circuit id>``. With one
    statement the roles are ``pk``, ``vk``, ...; with several, ``pk:<circuit id>``, ..."""
    directories = [create_keys(spec, Path(out_dir) / spec.circuit_id(), provenance="auditor").path for spec in statements]
    return _generated(statements, directories, {"setup": "groth16py single-party setup run by the auditor", "provenance": "auditor"})


def import_zkey(spec: Any, zkey_path: Path, out_dir: Path) -> GeneratedKeys:
    """The keys of a ceremony's ``zkey`` for ``spec``, into ``out_dir/<circuit id>``."""
    made = import_zkey_keys(spec, Path(zkey_path), Path(out_dir) / spec.circuit_id())
    details = {"setup": "snarkjs phase-2 ceremony, imported from a zkey", "provenance": "zkey", "zkey_sha256": made.record["zkey_sha256"]}
    return _generated([spec], [made.path], details)


def _generated(statements: Sequence[Any], directories: Sequence[Path], details: dict[str, Any]) -> GeneratedKeys:
    files: dict[str, str] = {}
    for spec in statements:
        suffix = "" if len(statements) == 1 else f":{spec.circuit_id()}"
        files.update({f"{role}{suffix}": f"{spec.circuit_id()}/{name}" for role, name in KEY_FILES.items()})
    handover = tuple(files)  # review25: provenance.json too (without it the trainer's srs.path is refused); it holds no secret
    return GeneratedKeys(
        backend="groth16",
        files=files,
        handover=handover,
        trainer_overrides=tuple(f"srs.path={directory.absolute()}" for directory in directories),
        details={**details, "directories": [d.name for d in directories]},
    )


def check_run_keys(report: Any, manifest: dict[str, Any], proofs: list[dict[str, Any]], keys: KeySet) -> dict[str, Path]:
    """The ``keys`` check for a zk-groth16 run: the run declares, and every proof record
    reports, the auditor's verifying key. Returns the auditor's key directory for the run's
    circuit (the proofs check verifies with it)."""
    circuit_id = str(manifest.get("circuit_id"))
    try:
        directory = key_path(keys, circuit_id)
    except ConfigurationError as error:
        report.fail("keys", "keys-layout", error.message)
        return {}
    if directory is None:
        return {}
    ours = keys.sha256[_vk_role(keys, circuit_id)]
    declared = (manifest.get("keys") or {}).get("vk_sha256")
    if declared != ours:
        report.fail("keys", "foreign-keys", f"the run was proven with verifying key {str(declared)[:16]}..., not yours ({ours[:16]}...)")
    for record in proofs:
        if record.get("status") != "proved" or record.get("proof_type") != PROOF_TYPE:
            continue
        used = ((record.get("public") or {}).get("keys") or {}).get("vk_sha256")
        if used != ours:
            report.fail("keys", "foreign-keys", f"the prover reports verifying key {str(used)[:16]}... for this proof, not yours", record.get("step"))
    return {"key_path": directory}


def key_path(keys: KeySet, circuit_id: str) -> Path | None:
    """The auditor's key directory for ``circuit_id`` in ``keys`` (None: they hold none). The
    verifier reads ``vk.bin`` and ``provenance.json`` there, so every role of the circuit must
    name its file at that place, as ``keys new`` writes them (a review: keys.json pointed ``vk`` at
    a copy of the auditor's key while a trainer's ``vk.bin`` beside it was the one read);
    ConfigurationError otherwise."""
    role = _vk_role(keys, circuit_id)
    if role not in keys.files:
        return None
    suffix = role[len("vk"):]
    # the files of the circuit the keys were made for (review25: a one-statement set of another
    # circuit was compared with the run's circuit id, a false keys-layout; it is foreign-keys)
    own = suffix[1:] if suffix else (keys.circuit_ids[0] if len(keys.circuit_ids) == 1 else circuit_id)
    for base, name in KEY_FILES.items():
        expected = f"{own}/{name}"
        if keys.files.get(f"{base}{suffix}") != expected:
            raise ConfigurationError(
                f"{keys.directory}/keys.json names {keys.files.get(base + suffix)!r} as the {base!r} file of {own}, not "
                f"{expected!r}: not the layout pot-zk keys new writes",
                key="keys",
            )
    return keys.path(role).parent


def _vk_role(keys: KeySet, circuit_id: str) -> str:
    return "vk" if "vk" in keys.files else f"vk:{circuit_id}"
