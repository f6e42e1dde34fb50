"""Circuit witnesses computed by circom's own witness program under wasmtime (a JIT compiler).

groth16py's ``prove(pk, inputs)`` runs the witness ``.wasm`` that circom compiled for the circuit
under wasmi, an interpreter: about half of a digits cross-entropy prove call. Here the same
``.wasm`` (read out of the proving key file, :func:`~pot_zk.backends.groth16.adapter.read_witness_wasm`,
so it is byte for byte the program groth16py would run) is compiled once by wasmtime and driven
with the protocol of circom's ``witness_calculator.js``: inputs are set signal by signal (by
the 64-bit FNV-1a hash of their names), the program computes every wire, and the wires are
written as a snarkjs ``.wtns`` file for ``groth16py.prove_wtns``. A small helper module
(:data:`_HELPER_WAT`) moves the field elements between the program and one buffer, so Python
makes one call per input signal and one for the whole witness, not one per 32-bit limb.

A witness computed here is not trusted more than one computed by wasmi: the prover verifies
its proof under the key's verifying key before answering (:mod:`pot_zk.backends.groth16.prove`).
One :class:`WitnessProgram` serves many threads (each has its own wasmtime store and instance);
wasmtime releases the GIL while the program runs. Without the ``wasmtime`` package,
:func:`witness_engine` says so and the prover falls back to groth16py's wasmi.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Mapping

from pot_zk.backends.groth16 import adapter
from pot_zk.exceptions import WitnessBuilderError

try:
    import wasmtime
except ImportError:  # the fallback: groth16py's interpreter
    wasmtime = None

CIRCOM_ERRORS = {
    1: "signal not found",
    2: "too many signals set",
    3: "signal already set",
    4: "assert failed",
    5: "not enough memory",
    6: "input signal array access exceeds the size",
}
"""circom's ``exceptionHandler`` codes, as its ``witness_calculator.js`` words them."""

_HELPER_WAT = """
(module
  (import "circom" "writeSharedRWMemory" (func $write (param i32 i32)))
  (import "circom" "setInputSignal" (func $set (param i32 i32 i32)))
  (import "circom" "getWitness" (func $get (param i32)))
  (import "circom" "readSharedRWMemory" (func $read (param i32) (result i32)))
  (memory (export "buffer") 1)
  ;; the input signal (hi, lo) gets `count` values: n32 little-endian 32-bit limbs each, from offset 0
  (func (export "setInputs") (param $hi i32) (param $lo i32) (param $count i32) (param $n32 i32)
    (local $i i32) (local $j i32) (local $at i32)
    (block $values_done (loop $values
      (br_if $values_done (i32.ge_u (local.get $i) (local.get $count)))
      (local.set $j (i32.const 0))
      (block $limbs_done (loop $limbs
        (br_if $limbs_done (i32.ge_u (local.get $j) (local.get $n32)))
        (call $write (local.get $j) (i32.load (local.get $at)))
        (local.set $at (i32.add (local.get $at) (i32.const 4)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $limbs)))
      (call $set (local.get $hi) (local.get $lo) (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $values))))
  ;; wires 0 .. size-1 into the buffer from offset 0, n32 little-endian 32-bit limbs each
  (func (export "getWitness") (param $size i32) (param $n32 i32)
    (local $i i32) (local $j i32) (local $at i32)
    (block $wires_done (loop $wires
      (br_if $wires_done (i32.ge_u (local.get $i) (local.get $size)))
      (call $get (local.get $i))
      (local.set $j (i32.const 0))
      (block $limbs_done (loop $limbs
        (br_if $limbs_done (i32.ge_u (local.get $j) (local.get $n32)))
        (i32.store (local.get $at) (call $read (local.get $j)))
        (local.set $at (i32.add (local.get $at) (i32.const 4)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $limbs)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $wires)))))
"""


def signal_hash(name: str) -> tuple[int, int]:
    """circom's input-signal key: the 64-bit FNV-1a hash of the name, as (high, low) 32-bit halves."""
    digest = 0xCBF29CE484222325
    for byte in name.encode():
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return digest >> 32, digest & 0xFFFFFFFF


class _CircomError(Exception):
    def __init__(self, code: int, messages: list[str]) -> None:
        super().__init__(code)
        self.code = code
        self.messages = messages


class WitnessProgram:
    """A circom witness ``.wasm`` compiled once; :meth:`write_wtns` may run on many threads."""

    def __init__(self, wasm: bytes, wires: int | None = None) -> None:
        """``wires``: the key's wire count; a program that computes another number is refused."""
        if wasmtime is None:
            raise RuntimeError("the wasmtime package is not installed")
        config = wasmtime.Config()
        config.cranelift_opt_level = "none"  # measured: compiles in 2/3 of the time, the witness no slower
        self._engine = wasmtime.Engine(config)
        self._module = wasmtime.Module(self._engine, wasm)
        self._helper = wasmtime.Module(self._engine, wasmtime.wat2wasm(_HELPER_WAT))
        self._local = threading.local()
        self.prime, self.field_words, self.wires = self._instance().header
        if wires is not None and wires != self.wires:
            raise WitnessBuilderError("the witness program does not fit the proving key", expected=wires, actual=self.wires)

    def write_wtns(self, inputs: Mapping[str, Any], path: Path) -> None:
        """Compute the witness of ``inputs`` (signal name -> field element or nested lists of
        them, each in [0, p)) and write it to ``path`` as a snarkjs ``.wtns`` (version 2)."""
        wires = self._instance().compute(inputs)
        n8 = self.field_words * 4
        header = b"wtns" + struct.pack("<II", 2, 2)
        header += struct.pack("<IQI", 1, 8 + n8, n8) + self.prime.to_bytes(n8, "little") + struct.pack("<I", self.wires)
        header += struct.pack("<IQ", 2, n8 * self.wires)
        with open(path, "wb") as handle:
            handle.write(header)
            handle.write(wires)

    def _instance(self) -> "_Instance":
        instance = getattr(self._local, "instance", None)
        if instance is None:
            instance = self._local.instance = _Instance(self._engine, self._module, self._helper)
        return instance


class _Instance:
    """One thread's store with the witness program and the helper linked to it."""

    def __init__(self, engine: Any, module: Any, helper: Any) -> None:
        self.store = wasmtime.Store(engine)
        self.messages: list[str] = []
        linker = wasmtime.Linker(engine)
        no_result = wasmtime.FuncType([], [])
        linker.define_func("runtime", "exceptionHandler", wasmtime.FuncType([wasmtime.ValType.i32()], []), self._raise)
        linker.define_func("runtime", "printErrorMessage", no_result, self._keep_message, access_caller=True)
        linker.define_func("runtime", "writeBufferMessage", no_result, lambda: None)  # circom log(): nothing is printed
        linker.define_func("runtime", "showSharedRWMemory", no_result, lambda: None)
        circom = linker.instantiate(self.store, module)
        linker.define_instance(self.store, "circom", circom)
        self.exports = circom.exports(self.store)
        helper_exports = linker.instantiate(self.store, helper).exports(self.store)
        self.buffer, self.set_inputs, self.get_witness = helper_exports["buffer"], helper_exports["setInputs"], helper_exports["getWitness"]
        self.field_words = self.exports["getFieldNumLen32"](self.store)
        self.exports["getRawPrime"](self.store)
        prime = sum((self.exports["readSharedRWMemory"](self.store, j) & 0xFFFFFFFF) << (32 * j) for j in range(self.field_words))
        self.header = (prime, self.field_words, self.exports["getWitnessSize"](self.store))

    def _raise(self, code: int) -> None:
        raise _CircomError(code, self.messages)

    def _keep_message(self, caller: Any) -> None:
        read = caller.get("getMessageChar")
        characters = []
        while (character := read(caller)) != 0:
            characters.append(chr(character))
        self.messages.append("".join(characters))

    def compute(self, inputs: Mapping[str, Any]) -> bytes:
        prime, field_words, wires = self.header
        n8 = field_words * 4
        self.messages = []
        try:
            self.exports["init"](self.store, 1)
            for name, value in inputs.items():
                values = _flat(value)
                high, low = signal_hash(name)
                expected = self.exports["getInputSignalSize"](self.store, high, low)
                if expected < 0 or expected != len(values):
                    raise WitnessBuilderError(
                        f"circuit input {name!r} has {len(values)} value(s); the circuit takes {max(expected, 0)}",
                        expected=max(expected, 0), actual=len(values), signal=name,
                    )
                if any(not 0 <= v < prime for v in values):
                    raise WitnessBuilderError(f"circuit input {name!r} has a value outside the field", expected="0 <= v < p", signal=name)
                self._reserve(len(values) * n8)
                self.buffer.write(self.store, b"".join(v.to_bytes(n8, "little") for v in values), 0)
                self.set_inputs(self.store, high, low, len(values), field_words)
            self._reserve(wires * n8)
            self.get_witness(self.store, wires, field_words)
        except _CircomError as error:
            raise _witness_error(error) from error
        except wasmtime.WasmtimeError as error:  # a trap: an exceptionHandler call, or the program itself
            cause = error.__cause__ or error.__context__
            raise (_witness_error(cause) if isinstance(cause, _CircomError) else WitnessBuilderError(
                f"circom's witness program stopped: {error}", expected="a witness", actual=str(error)
            )) from error
        return bytes(self.buffer.read(self.store, 0, wires * n8))

    def _reserve(self, size: int) -> None:
        missing = size - self.buffer.data_len(self.store)
        if missing > 0:
            self.buffer.grow(self.store, -(-missing // 65536))


def _flat(value: Any) -> list[int]:
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _flat(item)]
    return [int(value)]


def _witness_error(error: _CircomError) -> WitnessBuilderError:
    what = CIRCOM_ERRORS.get(error.code, f"error {error.code}")
    detail = "; ".join(m for m in error.messages if m)
    return WitnessBuilderError(
        f"circom's witness program refused the inputs: {what}" + (f" ({detail})" if detail else ""),
        expected="inputs that satisfy the circuit's witness code", actual=what, circom_code=error.code,
    )


@dataclass(frozen=True)
class WitnessEngine:
    """What computes a key's witnesses: a compiled :class:`WitnessProgram`, or None for
    groth16py's own wasmi; ``name`` says which (and, for the fallback, why)."""

    program: WitnessProgram | None
    name: str


def witness_engine(pk_path: Path, *, compile_program: bool = True) -> WitnessEngine:
    """The engine for the proving key file at ``pk_path``: its witness program under wasmtime,
    else (no wasmtime package, a key file this code cannot read the program from, or
    ``compile_program`` False: one proof only, where compiling costs more than it saves)
    groth16py's wasmi, with the reason in the name."""
    fallback = f"wasmi (groth16py {adapter.ENGINE_VERSION})"
    if not compile_program:
        return WitnessEngine(None, f"{fallback}: one proof per key load (compiling the witness program would cost more than it saves)")
    if wasmtime is None:
        return WitnessEngine(None, f"{fallback}: the wasmtime package is not installed")
    try:
        wasm, wires = adapter.read_witness_wasm(pk_path)
    except ValueError as exc:
        return WitnessEngine(None, f"{fallback}: {exc}")
    return WitnessEngine(WitnessProgram(wasm, wires), f"wasmtime {_wasmtime_version()}")


def _wasmtime_version() -> str:
    try:
        return version("wasmtime")
    except PackageNotFoundError:
        return "(version unknown)"
