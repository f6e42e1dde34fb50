"""The one module that talks to groth16py 0.2.0 (arkworks Groth16 on BN254, in-process circom 2),
which compiles the circuit and with it Groth16-proves ("the engine").

Everything engine-specific stays here: input encoding (negative integers as p - |v|; groth16py
refuses negatives and silently reduces values >= p, so none is ever passed), capturing the
compiler's console output (it prints to fd 1, which a prover program reserves for its response;
the capture redirects the process's fds 1 and 2 while ``setup``/``import_zkey`` run, so those
two must not run concurrently with other threads that write to them), and mapping the engine's
exceptions to pot-zk errors. Known traps (DESIGN.md): ``prove``
returns a proof for a witness that violates the constraints (it then fails ``verify``), a
second setup of the same source gives keys that reject the first setup's proofs, and a proving
key imported from a zkey made for another constraint system (e.g. circom's default ``--O1``
instead of the ``--O2`` groth16py compiles with) imports without error and then makes ``prove``
panic in Rust (pyo3's ``PanicException``, a ``BaseException``): mapped to a non-retryable
ProofGenerationError here.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import groth16py

from pot_zk.backends.groth16.integers import FIELD_MODULUS
from pot_zk.core.native_output import captured_fds
from pot_zk.exceptions import ConfigurationError, ProofGenerationError, WitnessBuilderError

ENGINE_VERSION = groth16py.__version__
PROOF_BYTES = 256

ProvingKey = groth16py.ProvingKey
VerifyingKey = groth16py.VerifyingKey


@dataclass(frozen=True)
class CompileReport:
    """What the circom compiler said about a circuit."""

    non_linear_constraints: int | None
    linear_constraints: int | None
    wires: int | None
    public_outputs: int | None
    console: str

    @property
    def constraints(self) -> int | None:
        if self.non_linear_constraints is None or self.linear_constraints is None:
            return None
        return self.non_linear_constraints + self.linear_constraints

    def to_dict(self) -> dict[str, int | None]:
        return {
            "constraints": self.constraints,
            "non_linear_constraints": self.non_linear_constraints,
            "linear_constraints": self.linear_constraints,
            "wires": self.wires,
            "public_outputs": self.public_outputs,
        }


def circomlib_dir() -> str:
    """The circomlib (circom 2 generation) vendored in groth16py."""
    return groth16py.circomlib_path(2)


def setup(circom_path: Path) -> tuple[ProvingKey, VerifyingKey, CompileReport]:
    """Compile a circom 2 source and run groth16py's single-party setup (a ``dev`` key: whoever
    runs it knows the trapdoor)."""
    with captured_fds() as console:
        try:
            pk, vk = groth16py.setup_circom(str(circom_path), [circomlib_dir()])
        except (groth16py.SetupError, groth16py.WitnessError) as exc:
            error = exc
        else:
            error = None
    if error is not None:
        raise ProofGenerationError(
            f"groth16py could not compile or set up {circom_path}: {error}", retryable=False, stderr=_ANSI.sub("", console.text)
        ) from error
    return pk, vk, _compile_report(console.text)


def import_zkey(zkey_path: Path, circom_path: Path) -> tuple[ProvingKey, VerifyingKey, CompileReport]:
    """Keys from a snarkjs Groth16 ``.zkey`` (a ceremony's phase 2), with the circuit compiled
    so ``prove`` works in-process. The zkey must have been made for exactly this source."""
    with captured_fds() as console:
        try:
            pk, vk = groth16py.import_zkey(str(zkey_path), str(circom_path), [circomlib_dir()])
        except (groth16py.SetupError, groth16py.WitnessError, groth16py.EncodingError, OSError, ValueError) as exc:
            error: BaseException | None = exc
        except BaseException as exc:
            if not is_engine_panic(exc):
                raise
            error = exc
        else:
            error = None
    if error is not None:
        raise ConfigurationError(f"cannot import zkey {zkey_path} for {circom_path}: {error}", key="zkey", stderr=_ANSI.sub("", console.text)[-2000:]) from error
    return pk, vk, _compile_report(console.text)


def prove(pk: ProvingKey, inputs: dict[str, Any]) -> bytes:
    """A proof (256 bytes) for the given input signals (nested lists of signed ints). The proof
    is NOT checked here: groth16py proves violating witnesses too."""
    try:
        return bytes(groth16py.prove(pk, field_inputs(inputs)))
    except groth16py.WitnessError as exc:
        raise WitnessBuilderError(f"groth16py could not build the witness: {exc}", expected="circuit inputs", actual=str(exc)) from exc
    except BaseException as exc:
        if not is_engine_panic(exc):
            raise
        raise _panic_error(exc) from exc


def _panic_error(exc: BaseException) -> ProofGenerationError:
    return ProofGenerationError(
        f"groth16py panicked while proving ({exc}): the proving key does not fit the circuit's constraint system "
        "(a zkey made from an r1cs compiled otherwise than groth16py compiles, e.g. without circom --O2)",
        retryable=False,
        reason="engine-panic",
    )


def is_engine_panic(exc: BaseException) -> bool:
    """A Rust panic inside groth16py (pyo3's ``PanicException``, which pyo3 does not export)."""
    kind = type(exc)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"


def verify(vk: VerifyingKey, proof: bytes, public_inputs: Sequence[int]) -> tuple[bool, str | None]:
    """(accepted, reason if not). A malformed proof or the wrong number of public values is a
    rejection with a reason, never an exception."""
    try:
        accepted = groth16py.Verifier(vk).verify(bytes(proof), [int(v) for v in public_inputs])
    except groth16py.EncodingError as exc:
        return False, f"malformed-proof: {exc}"
    except groth16py.VerificationError as exc:
        return False, f"wrong-circuit: {exc}"
    except (OverflowError, TypeError, ValueError) as exc:
        return False, f"malformed-public-inputs: {exc}"
    return bool(accepted), None if accepted else "invalid-proof"


def snarkjs_proof(proof: bytes) -> dict[str, Any]:
    """The proof in snarkjs's JSON form (``snarkjs groth16 verify vk.json public.json proof.json``).
    groth16py's blob is eight big-endian 32-byte words: A.x A.y B.x.c1 B.x.c0 B.y.c1 B.y.c0 C.x C.y."""
    if len(proof) != PROOF_BYTES:
        raise ValueError(f"a Groth16 proof is {PROOF_BYTES} bytes, got {len(proof)}")
    w = [str(int.from_bytes(proof[i : i + 32], "big")) for i in range(0, PROOF_BYTES, 32)]
    return {"pi_a": [w[0], w[1], "1"], "pi_b": [[w[3], w[2]], [w[5], w[4]], ["1", "0"]], "pi_c": [w[6], w[7], "1"], "protocol": "groth16", "curve": "bn128"}


def save_keys(pk: ProvingKey, vk: VerifyingKey, directory: Path) -> None:
    pk.save(str(directory / "pk.bin"))
    vk.save(str(directory / "vk.bin"))
    (directory / "vk.json").write_text(vk.to_json())


def load_proving_key(path: Path) -> ProvingKey:
    return groth16py.ProvingKey.load(str(path))


_PK_MAGIC = b"g16pk1"
_G1, _G2 = 64, 128  # BN254 points in arkworks' uncompressed encoding
_PK_LAYOUT = (
    ("alpha_g1", _G1, False), ("beta_g2", _G2, False), ("gamma_g2", _G2, False), ("delta_g2", _G2, False),
    ("gamma_abc_g1", _G1, True), ("beta_g1", _G1, False), ("delta_g1", _G1, False), ("a_query", _G1, True),
    ("b_g1_query", _G1, True), ("b_g2_query", _G2, True), ("h_query", _G1, True), ("l_query", _G1, True),
)
"""groth16py 0.2.0's ``ProvingKey.save`` file: the magic, then arkworks' ``ProvingKey`` (these
fields in order; a vector is its length as a little-endian u64, then its points), then the
witness ``.wasm`` as an option (a tag byte, 1: present; a u64 length; the bytes), then the
constraints. ``a_query`` has one point per wire."""


def read_witness_wasm(path: Path) -> tuple[bytes, int]:
    """(circom's witness ``.wasm`` stored in a proving key file, the key's wire count): the
    program ``prove(pk, inputs)`` runs under wasmi. ValueError if the file is not laid out as
    groth16py 0.2.0 writes it, or holds no program."""
    counts: dict[str, int] = {}
    with open(path, "rb") as handle:
        if handle.read(len(_PK_MAGIC)) != _PK_MAGIC:
            raise ValueError(f"{path} does not start with groth16py's proving-key magic")
        for name, point_bytes, is_vector in _PK_LAYOUT:
            counts[name] = _read_u64(handle) if is_vector else 1
            handle.seek(counts[name] * point_bytes, 1)
        if handle.read(1) != b"\x01":
            raise ValueError(f"{path} holds no witness program (the key was saved without one)")
        size = _read_u64(handle)
        wasm = handle.read(size)
    if len(wasm) != size or not wasm.startswith(b"\0asm"):
        raise ValueError(f"{path} has no readable witness program where groth16py 0.2.0 puts it")
    return wasm, counts["a_query"]


def _read_u64(handle: BinaryIO) -> int:
    data = handle.read(8)
    if len(data) != 8:
        raise ValueError("the proving key file ends early")
    return int.from_bytes(data, "little")


def prove_wtns(pk: ProvingKey, wtns_path: Path) -> bytes:
    """A proof from a witness file (snarkjs ``.wtns``); groth16py releases the GIL meanwhile.
    Like :func:`prove`, NOT checked: a witness that violates the constraints gives a proof too."""
    try:
        return bytes(groth16py.prove_wtns(pk, str(wtns_path)))
    except (groth16py.WitnessError, groth16py.EncodingError, OSError, ValueError) as exc:
        raise WitnessBuilderError(f"groth16py could not read the witness {wtns_path}: {exc}", expected="a .wtns of the key's circuit", actual=str(exc)) from exc
    except BaseException as exc:
        if not is_engine_panic(exc):
            raise
        raise _panic_error(exc) from exc


def load_verifying_key(path: Path) -> VerifyingKey:
    return groth16py.VerifyingKey.load(str(path))


def verifying_key_from_bytes(data: bytes) -> VerifyingKey:
    """A verifying key from the bytes of a ``vk.bin`` (groth16py loads from a path only: they go
    through a file of this process's own, mode 0600, removed at once)."""
    with tempfile.NamedTemporaryFile(prefix="pot-zk-vk-", suffix=".bin") as copy:
        copy.write(data)
        copy.flush()
        return groth16py.VerifyingKey.load(copy.name)


def public_count(vk: VerifyingKey) -> int:
    return int(vk.n_public)


def field_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """Input signals (nested lists of signed ints) as field elements in [0, p): a negative v as p - |v|."""
    return {name: _to_field(value) for name, value in inputs.items()}


def _to_field(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_to_field(v) for v in value]
    number = int(value)
    if not -FIELD_MODULUS < number < FIELD_MODULUS:
        raise WitnessBuilderError("a circuit input is not a field element", expected="|v| < p", actual=number.bit_length())
    return number % FIELD_MODULUS


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _compile_report(console: str) -> CompileReport:
    text = _ANSI.sub("", console)

    def count(label: str) -> int | None:
        match = re.search(rf"^{label}: (\d+)$", text, re.MULTILINE)
        return None if match is None else int(match.group(1))

    return CompileReport(count("non-linear constraints"), count("linear constraints"), count("wires"), count("public outputs"), text)
