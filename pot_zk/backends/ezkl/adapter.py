"""The one module that talks to ezkl (pinned: 23.0.5).

It normalises ezkl's API (paths as strings, which calls are async, exceptions instead of
False) and owns the on-disk cache of circuit artefacts and keys, keyed by content hash:

    CACHE/srs/dev-kzg{k}.srs                      locally generated SRS (provenance dev-srs)
    CACHE/circuits/{circuit_id}/model.onnx, settings.json, model.compiled
    CACHE/circuits/{circuit_id}/keys-{srs_sha[:16]}/vk.key, pk.key

Every artefact is written to a temporary name and renamed into place, under a per-directory
file lock, so two processes building the same circuit at once both end up with one complete
copy and a crash never leaves a half-written key behind.
"""

from __future__ import annotations

import fcntl
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import ezkl

from pot_zk.core.native_output import captured_fds
from pot_zk.exceptions import ConfigurationError, ProofGenerationError, ProofVerificationError
from pot_zk.core.atomic import atomic_path, publish, staging_directory
from pot_zk.core.digest import file_sha256

EZKL_VERSION = "23.0.5"
_FIELD_MODULUS = 0x30644E72E131A029B85045B68181585D2833E84879B9709143E1F593F0000001  # BN254 scalar field

# ezkl logs a "Numerical Fidelity Report" table on every calibration; pot-zk runs its own
# decode check instead, so only ezkl's errors reach the user.
logging.getLogger("ezkl").setLevel(logging.ERROR)

if getattr(ezkl, "__version__", EZKL_VERSION) not in (EZKL_VERSION, "0.0.0"):
    raise ConfigurationError(f"pot-zk needs ezkl=={EZKL_VERSION}, found {ezkl.__version__}")


@dataclass(frozen=True)
class SrsRef:
    path: Path
    logrows: int
    provenance: str
    """``dev-srs`` (generated here; its maker knows the trapdoor) or ``configured``."""
    sha256: str


@dataclass(frozen=True)
class CompiledCircuit:
    circuit_id: str
    directory: Path
    logrows: int

    @property
    def onnx(self) -> Path:
        return self.directory / "model.onnx"

    @property
    def settings(self) -> Path:
        return self.directory / "settings.json"

    @property
    def compiled(self) -> Path:
        return self.directory / "model.compiled"

    def settings_dict(self) -> dict:
        return json.loads(self.settings.read_text())


@dataclass(frozen=True)
class CircuitKeys:
    vk: Path
    pk: Path


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (its ``.lock`` file) for the duration."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def dev_srs_path(cache_dir: Path, logrows: int) -> Path:
    """Where :func:`dev_srs` caches the SRS for ``logrows``."""
    return Path(cache_dir) / "srs" / f"dev-kzg{logrows}.srs"


def dev_srs(cache_dir: Path, logrows: int) -> SrsRef:
    """A locally generated SRS for ``logrows``, made once and cached (provenance ``dev-srs``)."""
    path = dev_srs_path(cache_dir, logrows)
    directory = path.parent
    with directory_lock(directory):
        if not path.exists():
            with staging_directory(directory) as tmp:
                ezkl.gen_srs(str(tmp / "srs"), logrows)
                publish(tmp / "srs", path)
    return SrsRef(path=path, logrows=logrows, provenance="dev-srs", sha256=file_sha256(path))


def generate_srs(path: Path, logrows: int) -> str:
    """Write a fresh KZG SRS for ``logrows`` to ``path`` (atomically); return its SHA-256.
    Whoever runs this could know the trapdoor: it is the verifier's to run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with staging_directory(path.parent) as tmp:
        _call("gen_srs", ezkl.gen_srs, str(tmp / "srs"), logrows)
        publish(tmp / "srs", path)
    return file_sha256(path)


def configured_srs(path: Path, logrows: int) -> SrsRef:
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"SRS file {path} does not exist; set srs.path to a KZG SRS file", key="srs.path")
    _check_srs_file(path, logrows)
    return SrsRef(path=path, logrows=logrows, provenance="configured", sha256=file_sha256(path))


def srs_logrows(path: Path) -> int:
    """The ``k`` of a KZG SRS file (halo2 format: ``k`` as a little-endian u32, then at least
    2**k G1 points): the most rows, 2**k, of a circuit it proves. ConfigurationError for a file
    that is not one."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(4)
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigurationError(f"SRS file {path} is not readable: {exc}", key="srs.path") from exc
    k = int.from_bytes(header, "little") if len(header) == 4 else -1
    if not 1 <= k <= 28 or size < 4 + 32 * (1 << k):
        raise ConfigurationError(f"{path} is not a KZG SRS file (header k={k}, {size} bytes)", key="srs.path")
    return k


def _check_srs_file(path: Path, logrows: int) -> None:
    """Cheap sanity check of a KZG SRS file, so a wrong or truncated file fails before training,
    not at the first proof."""
    k = srs_logrows(path)
    if k < logrows:
        raise ConfigurationError(f"SRS file {path} has k={k}, the circuit needs logrows {logrows}", key="srs.path")


def compile_circuit(
    circuit_id: str,
    cache_dir: Path,
    write_onnx,
    calibration_inputs: Callable[[], Sequence[Sequence[float]]],
    run_args: dict,
) -> CompiledCircuit:
    """Export, calibrate and compile a circuit once; later calls return the cached one.

    ``write_onnx(path)`` writes the ONNX graph and ``calibration_inputs()`` gives the
    calibration data; neither runs on a cache hit. ``run_args`` sets ezkl's PyRunArgs fields;
    calibration only ever tries the given ``input_scale`` and ``scale_rebase_multiplier=1``
    (a larger multiplier can overflow i64 on decode while the proof still verifies).
    """
    directory = Path(cache_dir) / "circuits" / circuit_id
    if not (directory / "settings.json").exists():
        with directory_lock(directory.parent), staging_directory(directory.parent) as tmp:
            if not (directory / "settings.json").exists():
                _build_circuit(tmp, write_onnx, calibration_inputs, run_args)
                (tmp / ".lock").touch()
                publish(tmp, directory)
    settings = json.loads((directory / "settings.json").read_text())
    return CompiledCircuit(circuit_id=circuit_id, directory=directory, logrows=int(settings["run_args"]["logrows"]))


def _build_circuit(tmp: Path, write_onnx, calibration_inputs, run_args: dict) -> None:
    """Calibrate at the fixed input scale for the number of rows, then write the final
    settings with the requested ``param_scale`` (and ``lookup_range``, when the graph looks
    values up in a table, e.g. softmax's exp) at that size: calibration would otherwise force
    param_scale to the input scale and size the tables by the calibration data alone. ezkl
    spreads a table longer than the rows over several columns."""
    write_onnx(tmp / "model.onnx")
    data = tmp / "calibration.json"
    data.write_text(json.dumps({"input_data": [list(map(float, x)) for x in calibration_inputs()]}))
    settings = str(tmp / "settings.json")
    _call("gen_settings", ezkl.gen_settings, str(tmp / "model.onnx"), settings, py_run_args=_run_args(run_args))
    with captured_fds() as printed:
        try:
            _call(
                "calibrate_settings",
                ezkl.calibrate_settings,
                str(data),
                str(tmp / "model.onnx"),
                settings,
                "resources",
                lookup_safety_margin=2,
                scales=[run_args["input_scale"]],
                scale_rebase_multiplier=[1],
            )
        except ProofGenerationError as exc:
            failure: ProofGenerationError | None = exc
        else:
            failure = None
    if failure is not None:
        # ezkl's calibration draws its own progress bar on fd 2: kept off the console, and
        # handed back with the error when calibration fails.
        raise ProofGenerationError(failure.message, retryable=False, stage="calibrate_settings", stderr=printed.text) from failure
    logrows = json.loads(Path(settings).read_text())["run_args"]["logrows"]
    final = _run_args({**run_args, "logrows": logrows})
    _call("gen_settings", ezkl.gen_settings, str(tmp / "model.onnx"), settings, py_run_args=final)
    _canonicalise_settings(Path(settings))
    _call("compile_circuit", ezkl.compile_circuit, str(tmp / "model.onnx"), str(tmp / "model.compiled"), settings)


def _canonicalise_settings(path: Path) -> None:
    """Sort the set-like lists ezkl writes in hash-map order. Without this, two compilations
    of the same graph order their range-check columns differently and get different
    verifying keys, so a verifier could not re-derive the prover's circuit."""
    settings = json.loads(path.read_text())
    settings["required_range_checks"] = sorted(settings.get("required_range_checks", []))
    settings["required_lookups"] = sorted(settings.get("required_lookups", []), key=json.dumps)
    path.write_text(json.dumps(settings))


def _run_args(values: dict) -> "ezkl.PyRunArgs":
    args = ezkl.PyRunArgs()
    for key, value in values.items():
        setattr(args, key, value)
    args.scale_rebase_multiplier = 1
    return args


def ensure_keys(circuit: CompiledCircuit, srs: SrsRef) -> CircuitKeys:
    """Proving and verifying keys for ``circuit`` under ``srs``, generated once and cached."""
    directory = circuit.directory / f"keys-{srs.sha256[:16]}"
    keys = CircuitKeys(vk=directory / "vk.key", pk=directory / "pk.key")
    if not keys.pk.exists():
        with directory_lock(circuit.directory), staging_directory(circuit.directory) as tmp:
            if not keys.pk.exists():
                _call("setup", ezkl.setup, str(circuit.compiled), str(tmp / "vk.key"), str(tmp / "pk.key"), srs_path=str(srs.path))
                publish(tmp, directory)
    return keys


def verifying_key(circuit: CompiledCircuit, srs: SrsRef) -> Path:
    return ensure_keys(circuit, srs).vk


def setup_verifying_key(circuit: CompiledCircuit, srs: SrsRef, directory: Path) -> Path:
    """Run ezkl's setup of ``circuit`` under ``srs`` into ``directory`` and keep only the
    verifying key (ezkl writes the proving key too, which a verifier has no use for)."""
    vk, pk = Path(directory) / "vk.key", Path(directory) / "pk.key"
    try:
        _call("setup", ezkl.setup, str(circuit.compiled), str(vk), str(pk), srs_path=str(srs.path))
    finally:
        pk.unlink(missing_ok=True)
    return vk


def gen_witness(circuit: CompiledCircuit, inputs: Sequence[Sequence[float]], srs: SrsRef, out_dir: Path) -> Path:
    data = Path(out_dir) / "input.json"
    data.write_text(json.dumps({"input_data": [list(map(float, x)) for x in inputs]}))
    witness = Path(out_dir) / "witness.json"
    _call("gen_witness", ezkl.gen_witness, str(data), str(circuit.compiled), str(witness), srs_path=str(srs.path))
    return witness


def prove(circuit: CompiledCircuit, witness: Path, keys: CircuitKeys, srs: SrsRef, proof_path: Path) -> Path:
    with atomic_path(proof_path) as staged:  # renamed into place whole: a prover killed meanwhile leaves no torn proof (review40)
        _call("prove", ezkl.prove, str(witness), str(circuit.compiled), str(keys.pk), str(staged), srs_path=str(srs.path))
    return proof_path


def verify(proof_path: Path, circuit: CompiledCircuit, vk: Path, srs: SrsRef) -> None:
    """Check a proof; an invalid or malformed proof raises ProofVerificationError."""
    try:
        ok = ezkl.verify(str(proof_path), str(circuit.settings), str(vk), srs_path=str(srs.path))
    except Exception as exc:  # ezkl raises on bad proofs/instances instead of returning False
        raise ProofVerificationError(f"ezkl rejected the proof: {exc}", reason="invalid-proof") from exc
    if not ok:
        raise ProofVerificationError("ezkl rejected the proof", reason="invalid-proof")


def _call(name: str, fn, *args, **kwargs):
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        raise ProofGenerationError(f"ezkl {name} failed: {exc}", retryable=False, stage=name) from exc
    if result is False:
        raise ProofGenerationError(f"ezkl {name} returned failure", retryable=False, stage=name)
    return result


def felt_to_int(felt: str) -> int:
    """A field element (ezkl's little-endian hex) as a signed integer (p - x for x > p/2)."""
    value = int.from_bytes(bytes.fromhex(felt), "little")
    return value - _FIELD_MODULUS if value > _FIELD_MODULUS // 2 else value


def int_to_felt(value: int) -> str:
    return (value % _FIELD_MODULUS).to_bytes(32, "little").hex()


def poseidon_commit(fixed_point_values: Sequence[int]) -> str:
    """ezkl's Poseidon hash of a sequence of fixed-point integers, as the circuit computes it
    for a ``hashed`` input."""
    return ezkl.poseidon_hash([int_to_felt(int(v)) for v in fixed_point_values])[0]
