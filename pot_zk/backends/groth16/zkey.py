"""What pot-zk checks before it accepts a snarkjs Groth16 ``.zkey`` as the keys of a statement.

A zkey (snarkjs binary format: ``zkey`` magic, version 1, sections of (type u32, size u64,
data)) states in its header the protocol (section 1: Groth16 = 1) and, in section 2, the
curve's base and scalar moduli, ``nVars`` (the r1cs's wires), ``nPublic`` and ``domainSize``
(the smallest power of two above constraints + public values). :func:`read_header` parses it;
:func:`check_header` compares what needs no compiler (protocol, BN254, the statement's public
values) before anything else runs; :func:`check_compiled` compares the wires with what
groth16py's compiler reports for ``spec.circuit_source()``; and :func:`check_trial_proof` proves
one honest sample step of the statement with the imported proving key and verifies it with the
imported verifying key.

These catch a zkey made from an r1cs compiled with circom's default ``--O1`` (groth16py
compiles with ``--O2``: 3032 constraints and 2994 wires for the 4-3-2 test statement against
4286 and 4248), a zkey of another shape, and one of the same shape but other constants (a
learning rate, a scale: the trial proof fails). They do not show that the zkey's circuit is
exactly this one: a looser circuit with the same wires and the same public values would pass.
That is what the ceremony's ``snarkjs zkey verify circuit.r1cs pot.ptau circuit.zkey`` shows,
with the r1cs compiled from ``pot-zk keys circuit``'s source (docs/groth16.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from pot_zk.backends.groth16 import adapter
from pot_zk.backends.groth16.integers import FIELD_MODULUS
from pot_zk.backends.groth16.statement import Groth16Statement
from pot_zk.exceptions import ConfigurationError, ProofGenerationError

MAGIC = b"zkey"
VERSION = 1
GROTH16_PROTOCOL = 1
BN254_BASE_MODULUS = 21888242871839275222246405745257275088696311157297823662689037894645226208583
BN254_SCALAR_MODULUS = FIELD_MODULUS
COMPILE_HINT = "compile circuit.circom with `circom2 circuit.circom --r1cs --O2 ...` (pot-zk keys circuit prints the commands)"


@dataclass(frozen=True)
class ZkeyHeader:
    """Section 1 and the counts of section 2 of a snarkjs zkey."""

    version: int
    protocol: int
    base_modulus: int
    scalar_modulus: int
    n_vars: int
    n_public: int
    domain_size: int


def read_header(path: Path) -> ZkeyHeader:
    """The header of the zkey at ``path`` (ConfigurationError, key ``zkey``, if it is not one)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(1 << 16)
    except OSError as exc:
        raise ConfigurationError(f"cannot read zkey file {path}: {exc}", key="zkey") from exc
    try:
        return _parse(data)
    except (struct.error, ValueError) as exc:
        raise ConfigurationError(f"{path} is not a snarkjs zkey: {exc}", key="zkey") from exc


def check_header(header: ZkeyHeader, spec: Groth16Statement, path: Path) -> None:
    """Refuse a zkey that is not Groth16 over BN254 with the statement's public values."""
    _expect(header.protocol, GROTH16_PROTOCOL, "protocol id (1: Groth16)", path)
    _expect(header.base_modulus, BN254_BASE_MODULUS, "curve base-field modulus (BN254)", path)
    _expect(header.scalar_modulus, BN254_SCALAR_MODULUS, "curve scalar-field modulus (BN254)", path)
    _expect(header.n_public, len(spec.public_names), f"number of public values ({', '.join(spec.public_names)})", path)


def check_compiled(header: ZkeyHeader, report: adapter.CompileReport, path: Path) -> None:
    """Refuse a zkey whose wires differ from groth16py's compilation of the circuit. (A domain
    size that does not fit the zkey's own sections already fails groth16py's import.)"""
    if report.wires is None:
        raise ConfigurationError(f"groth16py's compiler did not report the circuit's wires: cannot check zkey {path} against it", key="zkey")
    _expect(header.n_vars, report.wires, "number of wires (nVars)", path, hint=COMPILE_HINT)


def check_trial_proof(spec: Groth16Statement, pk: adapter.ProvingKey, vk: adapter.VerifyingKey, path: Path) -> None:
    """Prove an honest sample step of ``spec`` with the imported keys; refuse them unless it verifies."""
    integers = spec.sample_step()
    inputs, commitments = spec.circuit_inputs(integers), spec.commitments(integers)
    try:
        proof = adapter.prove(pk, inputs)
    except ProofGenerationError as exc:
        raise ConfigurationError(f"zkey {path} is not for circuit {spec.circuit_id()}: {exc.message}", key="zkey", reason="trial-proof") from exc
    accepted, reason = adapter.verify(vk, proof, commitments.public_inputs())
    if not accepted:
        raise ConfigurationError(
            f"zkey {path} is not for circuit {spec.circuit_id()}: an honest step of the statement, proven with its proving key, "
            f"does not verify under its verifying key ({reason}); it was made for another statement (same shape, other constants)",
            key="zkey",
            reason="trial-proof",
        )


def _expect(actual: Any, expected: Any, what: str, path: Path, hint: str | None = None) -> None:
    if actual != expected:
        raise ConfigurationError(
            f"zkey {path} is not for this circuit: its {what} is {actual}, the circuit's is {expected}" + (f"; {hint}" if hint else ""),
            key="zkey",
            expected=expected,
            actual=actual,
        )


def _parse(data: bytes) -> ZkeyHeader:
    if data[:4] != MAGIC:
        raise ValueError("no 'zkey' magic")
    version, count = struct.unpack_from("<II", data, 4)
    if version != VERSION:
        raise ValueError(f"zkey format version {version}, not {VERSION}")
    sections: dict[int, bytes] = {}
    offset = 12
    for _ in range(count):
        kind, size = struct.unpack_from("<IQ", data, offset)
        offset += 12
        if kind in (1, 2):
            if offset + size > len(data):
                raise ValueError(f"header section {kind} is truncated")
            sections[kind] = data[offset : offset + size]
        if len(sections) == 2:
            break
        offset += size
    if set(sections) != {1, 2}:
        raise ValueError("no header sections 1 and 2")
    (protocol,) = struct.unpack_from("<I", sections[1], 0)
    if protocol != GROTH16_PROTOCOL:
        return ZkeyHeader(version, protocol, 0, 0, 0, 0, 0)
    body = sections[2]
    (n8q,) = struct.unpack_from("<I", body, 0)
    base = int.from_bytes(body[4 : 4 + n8q], "little")
    (n8r,) = struct.unpack_from("<I", body, 4 + n8q)
    scalar = int.from_bytes(body[8 + n8q : 8 + n8q + n8r], "little")
    n_vars, n_public, domain = struct.unpack_from("<III", body, 8 + n8q + n8r)
    return ZkeyHeader(version, protocol, base, scalar, n_vars, n_public, domain)
